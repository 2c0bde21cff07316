"""Clear failures of the sds command: one line saying what to do (no traceback, non-zero status) for a database
that is missing, unmigrated or unreachable, a mistyped setting, and a second instance on the same ports."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sds_registry.cli import main
from tests.support.serving import free_port, sds_serve

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
COMMANDS = [["seed"], ["resolve", "A20047", METADATA], ["import", "<file>"], ["export"]]


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _args(command: list[str], tmp_path: Path) -> list[str]:
    dump = tmp_path / "dump.json"
    dump.write_text("{}")
    return [str(dump) if a == "<file>" else a for a in command]


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_version_and_short_help() -> None:
    version = CliRunner().invoke(main, ["--version"], prog_name="sds")
    assert version.exit_code == 0 and version.output.startswith("sds, version ")
    for args in (["-h"], ["seed", "-h"]):
        helped = CliRunner().invoke(main, args, prog_name="sds")
        assert helped.exit_code == 0 and helped.output.startswith("Usage: sds ")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_unmigrated_database_says_run_db_upgrade(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()  # a database file without our tables
    line = _one_error_line(run({"SDS_DATABASE_URL": f"sqlite:///{path}"}, *_args(command, tmp_path)))
    assert line == f"Error: the database sqlite:///{path} is not migrated: run 'sds db upgrade'"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_missing_sqlite_file_is_not_created(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "typo.sqlite3"
    line = _one_error_line(run({"SDS_DATABASE_URL": f"sqlite:///{path}"}, *_args(command, tmp_path)))
    assert "does not exist yet: run 'sds db upgrade'" in line
    assert not path.exists()


def test_a_sqlite_url_in_a_missing_folder_is_refused_and_nothing_created(tmp_path: Path) -> None:
    path = tmp_path / "instnace" / "sds.sqlite3"
    line = _one_error_line(run({"SDS_DATABASE_URL": f"sqlite:///{path}"}, "db", "upgrade"))
    assert "SDS_DATABASE_URL" in line and "does not exist" in line
    assert not path.parent.exists()


@pytest.mark.parametrize("command", [*COMMANDS, ["db", "upgrade"]], ids=lambda c: " ".join(c[:2]))
def test_an_unreachable_database_server_is_one_line(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql+psycopg://sds:secret@127.0.0.1:{free_port()}/sds"
    line = _one_error_line(run({"SDS_DATABASE_URL": url}, *_args(command, tmp_path)))
    assert line.startswith("Error: cannot reach the database postgresql+psycopg://sds:***@127.0.0.1:")
    assert "secret" not in line and "SDS_DATABASE_URL" in line


def test_a_bad_log_level_is_refused(tmp_path: Path) -> None:
    line = _one_error_line(run({"SDS_LOG_LEVEL": "LOUD", "SDS_DATABASE_URL": f"sqlite:///{tmp_path}/x"}, "export"))
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in line


def test_an_unknown_variable_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"SDS_HTTP_BINDS": "127.0.0.1:1", "SDS_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"}
    with caplog.at_level(logging.WARNING, logger="sds.config"):
        run(env, "export")
    assert "SDS_HTTP_BINDS is not a setting and is ignored; did you mean SDS_HTTP_BIND?" in caplog.messages


def _serve(env: dict[str, str]) -> subprocess.Popen[str]:
    """``sds serve`` expected to exit at once: its output in pipes."""
    return subprocess.Popen([sys.executable, "-m", "sds_registry.cli", "serve"], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_serve_on_an_unmigrated_database_exits_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()
    proc = _serve({"SDS_DATABASE_URL": f"sqlite:///{path}", "SDS_HTTP_BIND": f"127.0.0.1:{free_port()}",
                   "SDS_LDAP_BIND": "", "SDS_SSP_BIND": ""})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == f"Error: the database sqlite:///{path} is not migrated: run 'sds db upgrade'"
    assert "Traceback" not in err


@pytest.mark.timeout(180)
def test_a_second_instance_fails_fast_naming_the_facade_and_the_first_keeps_serving(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sds.sqlite3'}"
    assert run({"SDS_DATABASE_URL": url}, "db", "upgrade").exit_code == 0
    # The first instance's SSP runs two workers sharing its port (SO_REUSEPORT): that must keep working.
    with sds_serve(url, tmp_path, env={"SDS_SSP_WORKERS": "2"}) as first:
        http, ldap, ssp = (f"127.0.0.1:{port}" for port in (first.http, first.ldap, first.ssp))
        binds = {"SDS_HTTP_BIND": http, "SDS_LDAP_BIND": ldap, "SDS_SSP_BIND": ssp}
        for facade, variable in (("SSP", "SDS_SSP_BIND"), ("LDAP", "SDS_LDAP_BIND"), ("HTTP", "SDS_HTTP_BIND")):
            only = {name: (value if name == variable else "") for name, value in binds.items()}
            started = time.monotonic()
            second = _serve({"SDS_DATABASE_URL": url, **only})
            _, err = second.communicate(timeout=30)
            assert second.returncode != 0
            assert time.monotonic() - started < 15
            assert err.strip().splitlines() == [f"Error: address in use: {facade} {binds[variable]} ({variable})"]
        everything = _serve({"SDS_DATABASE_URL": url, **binds})
        _, err = everything.communicate(timeout=30)
        assert everything.returncode != 0 and err.strip() == f"Error: address in use: HTTP {http} (SDS_HTTP_BIND)"
        with urllib.request.urlopen(f"{first.http_url}/healthcheck", timeout=5) as response:
            assert response.status == 200
        assert first.proc.poll() is None
