"""sds mirror against a real slapd loaded with bench/ldapkit's national-shaped data: a full mirror equals the
source entry by entry, a re-run changes nothing, upstream changes show in --dry-run and are then applied,
--ods leaves other records alone, pages are really used, binds need the right password. Runs on both
database backends. Needs slapd (skipped without it, as the slapd differential test)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ldap3
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.ldapkit import data, slapd
from bench.ldapkit.searches import Search
from sds_registry.mirror.fetch import FetchStats, Source, fetch
from sds_registry.models import AccreditedSystem, AuditEvent, MessageHandlingSystem
from tests.functional.mirror.support import (
    EVERY_RECORD,
    ROOT_DN,
    ROOT_PASSWORD,
    audit_rows,
    count,
    differences,
    facade,
    run,
    summary,
    writable_slapd,
)
from tests.support.terminal import on_a_terminal

pytestmark = pytest.mark.skipif(not slapd.available(), reason="slapd is not installed")

PRACTICES = 30


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    records = data.generate(PRACTICES)
    ldif, _ = data.write(records, tmp_path_factory.mktemp("mirror_data"))
    return {"ldif": ldif, "records": records}


@pytest.fixture
def source(kit: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """A fresh slapd per test: tests change it."""
    with writable_slapd(kit["ldif"], tmp_path / "slapd") as url:
        yield url


@contextmanager
def _root(url: str) -> Iterator[ldap3.Connection]:
    """Bound as slapd's root DN, to change the source; unbound on exit (ldap3's own ``with`` would not)."""
    conn = ldap3.Connection(ldap3.Server(url, get_info=ldap3.NONE), ROOT_DN, ROOT_PASSWORD, auto_bind=True)
    try:
        yield conn
    finally:
        conn.unbind()


def _practice(kit: dict[str, Any], n: int) -> tuple[str, list[Any]]:
    """The n-th practice's ODS code and its records (AS first)."""
    codes = list(dict.fromkeys(r.first("nhsIDCode") for r in kit["records"] if r.kind == "mhs"))
    ods = codes[n]
    return ods, [r for r in kit["records"] if r.first("nhsIDCode") == ods]


def test_full_mirror_equals_the_source_and_a_rerun_changes_nothing(kit: dict[str, Any], source: str, db: Engine,
                                                                   database_url: str) -> None:
    first = run(database_url, source)
    assert first.exit_code == 0, first.output
    entries = len(kit["records"])
    assert summary(first) == f"{entries} created, 0 updated, 0 deleted"
    assert audit_rows(db, source) == entries  # one audit row per record, the source as actor
    with facade(db) as server:
        ours = server.uri
        assert count(ours) == entries
        assert differences(source, ours) == []
    again = run(database_url, source)
    assert again.exit_code == 0, again.output
    assert summary(again) == "0 created, 0 updated, 0 deleted"
    assert audit_rows(db) == entries


def test_upstream_changes_show_in_dry_run_then_apply(kit: dict[str, Any], source: str, db: Engine,
                                                     database_url: str, tmp_path: Path) -> None:
    assert run(database_url, source).exit_code == 0
    ods, mine = _practice(kit, 3)
    mhs, as_entry = mine[1], mine[0]
    new_url = mhs.first("nhsMHSEndPoint").replace("https://", "https://moved.")
    with _root(source) as conn:
        assert conn.modify(mhs.dn, {"nhsMHSEndPoint": [(ldap3.MODIFY_REPLACE, [new_url])]}), conn.result
        assert conn.delete(as_entry.dn), conn.result
    password = tmp_path / "password"
    password.write_text(ROOT_PASSWORD + "\n")
    bound = ("--bind-dn", ROOT_DN, "--password-file", str(password))
    dry = run(database_url, source, "--dry-run", *bound)
    assert dry.exit_code == 0, dry.output
    assert summary(dry) == "0 created, 1 updated, 1 deleted (dry run: nothing changed)"
    assert f"update nhsMhs {mhs.dn}: nhsMHSEndPoint" in dry.stdout
    assert f"delete nhsAs {as_entry.dn}" in dry.stdout
    with Session(db) as s:  # nothing changed
        assert s.scalar(select(AccreditedSystem.id).where(AccreditedSystem.asid == as_entry.first("uniqueIdentifier")))
    with facade(db) as server:
        ours = server.uri
        assert len(differences(source, ours)) > 0
    applied = run(database_url, source, *bound)
    assert applied.exit_code == 0, applied.output
    assert summary(applied) == "0 created, 1 updated, 1 deleted"
    with Session(db) as s:
        row = s.scalars(select(MessageHandlingSystem).where(
            MessageHandlingSystem.unique_identifier == mhs.first("uniqueIdentifier"))).one()
        assert row.endpoints == [new_url]
        actions = {(e.action, e.record_key) for e in s.scalars(select(AuditEvent).where(AuditEvent.actor == source))}
        assert ("update", mhs.first("uniqueIdentifier")) in actions
        assert ("delete", as_entry.first("uniqueIdentifier")) in actions
    with facade(db) as server:
        ours = server.uri
        assert differences(source, ours) == []
    from_env = run(database_url, source, "--bind-dn", ROOT_DN, env={"SDS_MIRROR_PASSWORD": ROOT_PASSWORD})
    assert summary(from_env) == "0 created, 0 updated, 0 deleted"


def test_ods_scope_leaves_other_records_untouched(kit: dict[str, Any], source: str, db: Engine,
                                                  database_url: str) -> None:
    assert run(database_url, source).exit_code == 0
    ods_a, records_a = _practice(kit, 0)
    ods_b, records_b = _practice(kit, 1)
    ods_c, records_c = _practice(kit, 2)
    with _root(source) as conn:  # upstream: A's MHS changes, C loses an MHS entry
        assert conn.modify(records_a[1].dn, {"nhsMhsFQDN": [(ldap3.MODIFY_REPLACE, ["elsewhere.nhs.uk"])]})
        assert conn.delete(records_c[1].dn)
    result = run(database_url, source, "--ods", ods_a, "--ods", ods_b)
    assert result.exit_code == 0, result.output
    assert summary(result) == "0 created, 1 updated, 0 deleted"
    assert f"update nhsMhs {records_a[1].dn}: nhsMhsFQDN" in result.stdout
    with Session(db) as s:  # C's record, deleted upstream but outside the scope, is still here
        assert s.scalar(select(MessageHandlingSystem.fqdn).where(
            MessageHandlingSystem.unique_identifier == records_c[1].first("uniqueIdentifier"))) is not None
    with facade(db) as server:
        ours = server.uri
        in_scope = Search("ab", "ou=Services,o=nhs", "sub", f"(|(nhsIDCode={ods_a})(nhsIDCode={ods_b}))")
        assert differences(source, ours, in_scope) == []
        assert differences(source, ours) != []  # C differs: out of scope
    whole = run(database_url, source, "--filter", f"(nhsIDCode={ods_c})")
    assert summary(whole) == "0 created, 0 updated, 1 deleted"


def test_pages_smaller_than_the_directory_are_used(kit: dict[str, Any], source: str, db: Engine,
                                                   database_url: str) -> None:
    total = len(kit["records"])
    stats = FetchStats()
    entries = list(fetch(Source(source, page_size=7), stats))
    assert len(entries) == total
    assert stats.pages == math.ceil(total / 7) and max(stats.page_sizes) == 7
    result = run(database_url, source, "--page-size", "7")
    assert result.exit_code == 0, result.output
    assert re.search(rf"{total} entries read in {math.ceil(total / 7)} page\(s\)", result.stderr)
    with facade(db) as server:
        ours = server.uri
        assert differences(source, ours) == []


def test_wrong_password_changes_nothing(source: str, db: Engine, database_url: str) -> None:
    result = run(database_url, source, "--bind-dn", ROOT_DN, env={"SDS_MIRROR_PASSWORD": "wrong"})
    assert result.exit_code == 1 and "bind refused" in result.output
    assert audit_rows(db) == 0
    missing = run(database_url, source, "--bind-dn", ROOT_DN)
    assert missing.exit_code == 1 and "needs a password" in missing.output


@pytest.mark.slow
def test_a_thousand_practices_round_trip(tmp_path: Path, db: Engine, database_url: str) -> None:
    records = data.generate(1000)
    ldif, _ = data.write(records, tmp_path / "data")
    with writable_slapd(ldif, tmp_path / "slapd") as url:
        started = time.monotonic()
        first = run(database_url, url)
        took = time.monotonic() - started
        assert first.exit_code == 0, first.output[-2000:]
        assert summary(first) == f"{len(records)} created, 0 updated, 0 deleted"
        with facade(db) as server:
            assert differences(url, server.uri, EVERY_RECORD) == []
        started = time.monotonic()
        again = run(database_url, url)
        took_again = time.monotonic() - started
        assert summary(again) == "0 created, 0 updated, 0 deleted"
    print(f"\nmirror of {len(records)} entries: first run {took:.1f}s ({first.stderr.strip().splitlines()[-1]}), "
          f"re-run {took_again:.1f}s ({again.stderr.strip().splitlines()[-1]})")


def test_real_world_values_are_flagged_not_dropped(kit: dict[str, Any], source: str, db: Engine,
                                                   database_url: str) -> None:
    """An endpoint with a trailing '/' breaks our service root rules: the mirror stores it with a flag."""
    _, mine = _practice(kit, 4)
    mhs = mine[1]
    odd = mhs.first("nhsMHSEndPoint") + "/"
    with _root(source) as conn:
        assert conn.modify(mhs.dn, {"nhsMHSEndPoint": [(ldap3.MODIFY_REPLACE, [odd])]}), conn.result
    result = run(database_url, source)
    assert result.exit_code == 0, result.output
    assert "lenient: 1 record(s) with flags" in result.stdout
    with Session(db) as s:
        row = s.scalars(select(MessageHandlingSystem).where(
            MessageHandlingSystem.unique_identifier == mhs.first("uniqueIdentifier"))).one()
        assert row.endpoints == [odd] and row.flags
    assert summary(run(database_url, source)) == "0 created, 0 updated, 0 deleted"


def test_an_unreachable_source_changes_nothing(db: Engine, database_url: str) -> None:
    result = run(database_url, f"ldap://127.0.0.1:{slapd.free_port()}", "--timeout", "2")
    assert result.exit_code == 1 and "Error: ldap://127.0.0.1:" in result.output
    assert audit_rows(db) == 0


def test_progress_on_a_terminal_only(kit: dict[str, Any], source: str, db: Engine, database_url: str) -> None:
    piped = run(database_url, source, "--dry-run")
    assert "reading" not in piped.output  # not a terminal: no progress line
    shown = on_a_terminal(database_url, "mirror", source, "--dry-run")
    assert f"reading {source}".encode() in shown and str(len(kit["records"])).encode() in shown
