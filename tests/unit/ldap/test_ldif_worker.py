"""LDIF checking in a worker process (ldif_worker.py): the same records, rejections and skips, in the same order,
as checking in this process; a stream's failure and an early stop end the worker."""

from __future__ import annotations

import io

import pytest

from sds_registry.ldap import ldif_worker
from sds_registry.ldap.ldif import _validate
from sds_registry.ldap.ldif_store import ImportReport

GPC = "urn:nhs:names:services:gpconnect:"


def _mhs(n: int, endpoint: str) -> str:
    cpa = f"{n:032x}"
    return (f"dn: uniqueIdentifier={cpa},ou=Services,o=nhs\nobjectClass: top\nobjectClass: nhsMhs\n"
            f"uniqueIdentifier: {cpa}\nnhsIDCode: A12345\nnhsMHSPartyKey: A12345-{n:07d}\n"
            f"nhsMhsSvcIA: {GPC}fhir:rest:read:metadata-1\nnhsMHSEndPoint: {endpoint}\n"
            "nhsProductName:: U3lzdG1PbmUgw6k=\nnhsMhsFQDN: gpc.example\n nhs.uk\n\n")


def _text(count: int) -> str:
    parts = ["version: 1\n\ndn: o=nhs\nobjectClass: organization\no: nhs\n\n"]
    for n in range(count):
        if n % 97 == 5:
            parts.append(_mhs(n, "http://not-https.example/A12345/STU3/1/gpconnect"))  # rejected
        elif n % 131 == 7:
            parts.append(f"dn: cn=person{n},o=nhs\nobjectClass: person\ncn: person{n}\n\n")  # skipped
        elif n % 151 == 9:
            parts.append(f"dn: uniqueIdentifier=x{n},ou=Services,o=nhs\nnot a line\n\n")  # broken
        else:
            parts.append(_mhs(n, "https://gpc.example.nhs.uk/A12345/STU3/1/gpconnect"))
    return "".join(parts)


def _run(check: object, text: str, lenient: bool = False) -> tuple[list[tuple[object, ...]], ImportReport]:
    """(every record and report note in the order they came, the report)."""
    report = ImportReport()
    seen: list[tuple[object, ...]] = []
    for p in check(io.StringIO(text), report, lenient):  # type: ignore[operator]
        seen += [("rejected", r.dn, r.line, tuple(r.reasons)) for r in report.rejected]
        seen += [("skipped", *s) for s in report.skipped]
        report.rejected.clear()
        report.skipped.clear()
        seen.append((p.cls.name, p.dn, p.values, p.flags, p.line))
    seen += [("rejected", r.dn, r.line, tuple(r.reasons)) for r in report.rejected]
    seen += [("skipped", *s) for s in report.skipped]
    return seen, report


@pytest.mark.parametrize("lenient", [False, True])
def test_worker_gives_what_checking_here_gives(monkeypatch: pytest.MonkeyPatch, lenient: bool) -> None:
    monkeypatch.setattr(ldif_worker, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(ldif_worker, "BATCH", 50)  # many messages, notes falling inside and between them
    text = _text(3000)
    here, _ = _run(_validate, text, lenient)
    there, _ = _run(ldif_worker.validated, text, lenient)
    assert there == here
    assert {s[0] for s in here} >= {"rejected", "skipped", "nhsMhs"}


def test_small_input_is_checked_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_worker(*_: object) -> None:
        raise AssertionError("no worker for a small input")

    monkeypatch.setattr(ldif_worker, "_in_worker", no_worker)
    seen, _ = _run(ldif_worker.validated, _text(20))
    assert len(seen) == 21  # o=nhs and a person skipped, 17 records, one rejected, one broken


class _Failing(io.StringIO):
    """A stream whose reading fails after its first blocks."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.reads = 0

    def read(self, size: int | None = -1) -> str:
        self.reads += 1
        if self.reads > 3:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        return super().read(size)


def test_stream_failure_is_raised_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ldif_worker, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(ldif_worker, "READ", 4096)
    with pytest.raises(UnicodeDecodeError):
        for _ in ldif_worker.validated(_Failing(_text(3000)), ImportReport(), False):
            pass


def test_stopping_early_ends_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ldif_worker, "PARALLEL_MIN_BYTES", 1)
    started: list[object] = []
    popen = ldif_worker.subprocess.Popen

    def spy(*args: object, **kwargs: object) -> object:
        started.append(popen(*args, **kwargs))  # type: ignore[call-overload]
        return started[-1]

    monkeypatch.setattr(ldif_worker.subprocess, "Popen", spy)
    records = ldif_worker.validated(io.StringIO(_text(3000)), ImportReport(), False)
    next(records)
    records.close()
    assert started and started[0].poll() is not None  # type: ignore[attr-defined]
