"""LDIF checking in worker processes (ldif_worker.py): the same records, rejections and skips, in the same order
and with the same line numbers, as checking in this process, with one worker or two and the text cut into many
blocks; a stream's failure, a worker's death and an early stop end every worker and thread."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest

from sds_registry.ldap import ldif_worker
from sds_registry.ldap.ldif import _validate, read_records
from sds_registry.ldap.ldif_store import ImportReport

GPC = "urn:nhs:names:services:gpconnect:"
GOOD = "https://gpc.example.nhs.uk/A12345/STU3/1/gpconnect"


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


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """WORKERS set to 1 and to 2; afterwards no checking thread is left."""
    monkeypatch.setattr(ldif_worker, "WORKERS", request.param)
    yield request.param
    assert not [t.name for t in threading.enumerate() if t.name.startswith("sds-ldif")]


def _spy_popen(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The worker processes started, as they start."""
    started: list[object] = []
    popen = ldif_worker.subprocess.Popen

    def spy(*args: object, **kwargs: object) -> object:
        started.append(popen(*args, **kwargs))  # type: ignore[call-overload]
        return started[-1]

    monkeypatch.setattr(ldif_worker.subprocess, "Popen", spy)
    return started


@pytest.mark.parametrize("lenient", [False, True])
def test_worker_gives_what_checking_here_gives(monkeypatch: pytest.MonkeyPatch, workers: int, lenient: bool) -> None:
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

    monkeypatch.setattr(ldif_worker, "_in_workers", no_worker)
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


def test_stream_failure_is_raised_to_the_caller(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    monkeypatch.setattr(ldif_worker, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(ldif_worker, "READ", 4096)
    with pytest.raises(UnicodeDecodeError):
        for _ in ldif_worker.validated(_Failing(_text(3000)), ImportReport(), False):
            pass


def test_stopping_early_ends_the_workers(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    monkeypatch.setattr(ldif_worker, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(ldif_worker, "READ", 4096)
    started = _spy_popen(monkeypatch)
    records = ldif_worker.validated(io.StringIO(_text(3000)), ImportReport(), False)
    next(records)
    records.close()
    assert len(started) == workers
    assert all(w.poll() is not None for w in started)  # type: ignore[attr-defined]


@pytest.mark.parametrize("victim", [0, 1])
def test_a_worker_killed_midway_is_an_error(monkeypatch: pytest.MonkeyPatch, victim: int) -> None:
    monkeypatch.setattr(ldif_worker, "WORKERS", 2)
    monkeypatch.setattr(ldif_worker, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(ldif_worker, "READ", 4096)  # hundreds of blocks: the workers are far from the end
    monkeypatch.setattr(ldif_worker, "BATCH", 20)
    started = _spy_popen(monkeypatch)
    records = ldif_worker.validated(io.StringIO(_text(5000)), ImportReport(), False)
    next(records)
    started[victim].kill()  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match=f"LDIF checking process {victim + 1} of 2 ended early"):
        for _ in records:
            pass
    assert all(w.poll() is not None for w in started)  # type: ignore[attr-defined]
    assert not [t.name for t in threading.enumerate() if t.name.startswith("sds-ldif")]


def _awkward() -> str:
    """Records of every shape the reader knows, and empty lines where a cut must not go."""
    parts = ["# a dump\n#  folded comment\n  goes on\nversion: 1\n\n",
             "dn: o=nhs\nobjectClass: organization\no: nhs\n\n"]
    for n in range(400):
        shape = n % 9
        if shape == 0:
            parts.append(_mhs(n, GOOD))
        elif shape == 1:
            parts.append(_mhs(n, "http://not-https.example/A12345/STU3/1/gpconnect"))  # rejected
        elif shape == 2:
            parts.append(f"dn: cn=person{n},o=nhs\n# a comment inside\nobjectClass: person\ncn: pers\n on{n}\n\n\n\n")
        elif shape == 3:  # a folded DN, a bad base64 value: rejected with the DN
            parts.append(f"dn: uniqueIdentifier={n:032x},ou=Se\n rvices,o=nhs\nobjectClass: nhsMhs\n"
                         "nhsIDCode:: !!!\n\n")
        elif shape == 4:  # an empty line, then a continuation: the same record goes on (no cut here)
            parts.append(f"dn: cn=p{n},o=nhs\nobjectClass: person\ndescription: {'x' * (n * 7 % 400)}\n\n"
                         " folded after an empty line\ncn: x\n\n")
        elif shape == 5:  # no dn first; a whitespace-only line ends it
            parts.append(f"objectClass: person\ncn: nodn{n}\n \t\n")
        elif shape == 6:
            parts.append(f"dn:: {'dWlkPTEsbz1uaHM='}\nobjectClass: person\nchangetype: add\n\n")
        elif shape == 7:  # an attribute the registry does not hold: rejected, or flagged when lenient
            parts.append(_mhs(n, GOOD).replace("nhsMhsFQDN", "nhsBogus"))
        else:
            parts.append(f"\n# between records {n}\n\n")
    parts.append("# search result\nsearch: 2\nresult: 0 Success\n\n")
    parts.append(_mhs(9999, GOOD).rstrip("\n"))  # the last record: no empty line, no line end
    return "".join(parts)


@pytest.mark.parametrize("read", [64, 300, 4096])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_blocks_read_as_the_whole_text(monkeypatch: pytest.MonkeyPatch, workers: int, read: int,
                                       line_end: str) -> None:
    monkeypatch.setattr(ldif_worker, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(ldif_worker, "READ", read)  # many blocks: records end near every cut
    monkeypatch.setattr(ldif_worker, "BATCH", 7)
    text = _awkward().replace("\n", line_end)
    cuts = list(ldif_worker._blocks_of(io.StringIO(text).read))
    assert "".join(b for _, b in cuts) == text and len(cuts) > 10
    assert not any(b.startswith(" ") for _, b in cuts)
    for lenient in (False, True):
        here, _ = _run(_validate, text, lenient)
        there, _ = _run(ldif_worker.validated, text, lenient)
        assert there == here
        assert {s[0] for s in here} >= {"rejected", "skipped", "nhsMhs"}


def test_block_line_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ldif_worker, "READ", 50)
    text = _awkward()
    at = 0
    for line, block in ldif_worker._blocks_of(io.StringIO(text).read):
        assert text.startswith(block, at) and line == text.count("\n", 0, at) + 1
        at += len(block)
    assert at == len(text)


class _Chunks(io.TextIOBase):
    """A stream giving its text in the pieces given."""

    def __init__(self, pieces: list[str]) -> None:
        super().__init__()
        self.pieces = pieces

    def read(self, size: int | None = -1) -> str:
        return self.pieces.pop(0) if self.pieces else ""


def test_reading_does_not_depend_on_where_reads_end() -> None:
    one = list(read_records(io.StringIO("dn: o=nhs\r\no: nhs\r\n\r\n"), first_line=41))
    two = list(read_records(_Chunks(["dn: o=nhs\r\no: nhs\r", "\n", "\r", "\n"]), first_line=41))
    assert one == two
    assert one[0].line == 41 and one[0].attrs == [("o", "nhs", 42)]
