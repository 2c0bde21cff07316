"""``sds import`` fed mutated real exports (the short version of bench/import_fuzz.py) and hand-picked hostile
files: no crash, no hang, bounded memory, an error naming the line, and a failed import leaves the database as
it was (on SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from bench.import_fuzz import MUTATORS, print_report, run
from sds_registry.cli import main
from tests.functional.security.snapshot import database_snapshot


def test_mutated_exports_fail_cleanly(tmp_path: Path) -> None:
    report = run(cases=2 * len(MUTATORS), seed_value=20261204, seconds=300, folder=tmp_path, timeout=60,
                 log=lambda _: None)
    print_report(report)
    assert report.cases == 2 * len(MUTATORS)
    assert report.ok, (report.crashes, report.hangs, report.changed, report.too_big)
    assert not report.unlocated, report.unlocated
    assert any(outcome.startswith("exit 1") for _, outcome in report.outcomes)


HOSTILE = {
    "deep.json": b'{"organisations": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
    "latin1.json": '{"organisations": [{"ods_code": "A20047", "name": "Caf\u00e9"}]}'.encode("latin-1"),
    "truncated.json": b'{"organisations": [{"ods_code": "A2004',
    "nan.json": b'{"organisations": [{"ods_code": NaN, "name": 1e999999}]}',
    "url.ldif": b"dn: uniqueIdentifier=1,ou=Services,o=nhs\nobjectClass: nhsAs\ndescription:< file:///etc/passwd\n",
    "badbase64.ldif": b"dn:: !!!\nobjectClass: nhsAs\n",
    "utf16.ldif": "dn: uniqueIdentifier=1,ou=Services,o=nhs\nobjectClass: nhsAs\n".encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_refused_naming_the_line_and_nothing_changes(seeded: Engine, database_url: str,
                                                                       tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(HOSTILE[name])
    before = database_snapshot(seeded)
    result = CliRunner().invoke(main, ["import", str(path), "--mode", "sync"],
                                env={"SDS_DATABASE_URL": database_url})
    assert result.exit_code == 1, (result.output, result.exception)
    assert "line " in result.output and "nothing was stored" in result.output, result.output
    assert database_snapshot(seeded) == before
