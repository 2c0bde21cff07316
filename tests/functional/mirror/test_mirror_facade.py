"""sds mirror from another sds-registry: our own LDAP facade (on a second database) as the source, over
StartTLS and LDAPS with a client certificate, paged. The target is the test database (both backends)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.ldapkit.searches import Search
from sds_registry.db import make_engine
from sds_registry.mirror.fetch import FetchStats, MirrorError, Source, fetch
from sds_registry.models import AccreditedSystem, DataSharingAgreement, MessageHandlingSystem, Organisation
from tests.functional.mirror.support import audit_rows, differences, facade, run, summary
from tests.support.ldap import Pki, RunningServer, base_settings, make_pki, sample_sqlite_database

SAMPLE_RECORDS = 27  # tests.support.ldap.load_sample: the T99999 worked example (AS + MHS) and 25 AS records


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("mirror_pki"))


@pytest.fixture
def upstream(tmp_path: Path, pki: Pki) -> Iterator[RunningServer]:
    """Another registry's LDAP facade with StartTLS and LDAPS, client certificates required."""
    engine = make_engine(sample_sqlite_database(tmp_path))
    settings = base_settings(ldaps_bind="127.0.0.1:0", ldap_tls_cert=str(pki.server_cert),
                             ldap_tls_key=str(pki.server_key), ldap_tls_client_ca=str(pki.ca))
    try:
        with facade(engine, settings) as server:
            yield server
    finally:
        engine.dispose()


def _tls(pki: Pki) -> tuple[str, ...]:
    return ("--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key))


def test_start_tls_with_a_client_certificate(upstream: RunningServer, pki: Pki, db: Engine,
                                             database_url: str) -> None:
    url = f"ldap://127.0.0.1:{upstream.port}"
    first = run(database_url, url, "--start-tls", *_tls(pki))
    assert first.exit_code == 0, first.output
    assert summary(first) == f"{SAMPLE_RECORDS} created, 0 updated, 0 deleted"
    assert audit_rows(db, url) == SAMPLE_RECORDS
    with facade(db) as ours:
        assert differences(upstream.uri, ours.uri) == []
    assert summary(run(database_url, url, *_tls(pki))) == "0 created, 0 updated, 0 deleted"  # --ca implies StartTLS


def test_ldaps_with_a_client_certificate_paged(upstream: RunningServer, pki: Pki, db: Engine,
                                               database_url: str) -> None:
    assert upstream.ldaps_port is not None
    url = f"ldaps://127.0.0.1:{upstream.ldaps_port}"
    stats = FetchStats()
    tls = Source(url, ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key), page_size=5)
    assert len(list(fetch(tls, stats))) == SAMPLE_RECORDS
    assert stats.pages == 6 and max(stats.page_sizes) == 5
    first = run(database_url, url, "--page-size", "5", *_tls(pki))
    assert first.exit_code == 0, first.output
    assert f"{SAMPLE_RECORDS} entries read in 6 page(s)" in first.stderr
    with facade(db) as ours:
        assert differences(upstream.uri, ours.uri) == []
    again = run(database_url, url, *_tls(pki))
    assert summary(again) == "0 created, 0 updated, 0 deleted"


@pytest.mark.parametrize("who", ["no certificate", "certificate from another CA"])
def test_without_a_trusted_client_certificate_nothing_changes(upstream: RunningServer, pki: Pki, db: Engine,
                                                              database_url: str, who: str) -> None:
    assert upstream.ldaps_port is not None
    url = f"ldaps://127.0.0.1:{upstream.ldaps_port}"
    cert = () if who == "no certificate" else ("--cert", str(pki.rogue_cert), "--key", str(pki.rogue_key))
    result = run(database_url, url, "--ca", str(pki.ca), "--timeout", "5", *cert)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and "DeprecationWarning" not in result.output
    assert audit_rows(db) == 0
    with pytest.raises(MirrorError):
        list(fetch(Source(url, ca=str(pki.ca), timeout=5)))


def test_the_command_prints_no_library_warnings(upstream: RunningServer, pki: Pki, db: Engine,
                                                database_url: str) -> None:
    """ldap3 2.9's DeprecationWarnings (pyasn1 names, ssl.match_hostname) are not the user's business, even
    with every DeprecationWarning shown (-W default)."""
    url = f"ldaps://127.0.0.1:{upstream.ldaps_port}"
    done = subprocess.run([sys.executable, "-W", "default", "-m", "sds_registry.cli", "mirror", url, *_tls(pki)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SDS_DATABASE_URL": database_url})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"{SAMPLE_RECORDS} created, 0 updated, 0 deleted"
    assert "Warning" not in done.stderr, done.stderr


def _other_records(engine: Engine, mirrored: tuple[str, ...]) -> dict[str, list[tuple[str, int]]]:
    """Organisations, agreements, and the AS/MHS records of organisations outside ``mirrored``, with versions."""
    with Session(engine) as s:
        return {
            "organisations": [(r.ods_code, r.version)
                              for r in s.scalars(select(Organisation).order_by(Organisation.id))],
            "agreements": [(f"{r.consumer_ods}->{r.provider_ods}", r.version)
                           for r in s.scalars(select(DataSharingAgreement).order_by(DataSharingAgreement.id))],
            "as": [(r.asid, r.version) for r in s.scalars(select(AccreditedSystem).where(
                AccreditedSystem.ods_code.not_in(mirrored)).order_by(AccreditedSystem.id))],
            "mhs": [(r.unique_identifier, r.version) for r in s.scalars(select(MessageHandlingSystem).where(
                MessageHandlingSystem.ods_code.not_in(mirrored)).order_by(MessageHandlingSystem.id))],
        }


def test_records_outside_the_scope_are_untouched(upstream: RunningServer, pki: Pki, seeded: Engine,
                                                 database_url: str) -> None:
    """A registry holding the seed directory (its own T99999 records among them) mirrors T99999 and B81001 only:
    organisations, agreements and every other organisation's records keep their rows and versions."""
    mirrored = ("T99999", "B81001")
    before = _other_records(seeded, mirrored)
    assert before["organisations"] and before["agreements"] and before["as"] and before["mhs"]
    url = f"ldap://127.0.0.1:{upstream.port}"
    result = run(database_url, url, *_tls(pki), "--ods", "T99999", "--ods", "B81001")
    assert result.exit_code == 0, result.output
    assert _other_records(seeded, mirrored) == before
    in_scope = Search("scope", "ou=Services,o=nhs", "sub", "(|(nhsIDCode=T99999)(nhsIDCode=B81001))")
    with facade(seeded) as ours:
        assert differences(upstream.uri, ours.uri, in_scope) == []
    assert summary(run(database_url, url, *_tls(pki), "--ods", "T99999", "--ods", "B81001")) == \
        "0 created, 0 updated, 0 deleted"
