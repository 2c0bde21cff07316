"""Clear failures of the sds command: one line saying what to do (no traceback, non-zero status) for a database
that is missing, unmigrated or unreachable, a mistyped setting, and a second instance on the same ports."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sds_registry.cli import main

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
COMMANDS = [["seed"], ["resolve", "A20047", METADATA], ["import", "<file>"], ["export"]]


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _args(command: list[str], tmp_path: Path) -> list[str]:
    dump = tmp_path / "dump.json"
    dump.write_text("{}")
    return [str(dump) if a == "<file>" else a for a in command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    url = f"postgresql+psycopg://sds:secret@127.0.0.1:{_free_port()}/sds"
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


def _serve(env: dict[str, str], capture: bool = True) -> subprocess.Popen[str]:
    out = subprocess.PIPE if capture else subprocess.DEVNULL  # a long-running server's logs would fill a pipe
    return subprocess.Popen([sys.executable, "-m", "sds_registry.cli", "serve"], env={**os.environ, **env},
                            stdout=out, stderr=out, text=True)


def test_serve_on_an_unmigrated_database_exits_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()
    proc = _serve({"SDS_DATABASE_URL": f"sqlite:///{path}", "SDS_HTTP_BIND": f"127.0.0.1:{_free_port()}",
                   "SDS_LDAP_BIND": "", "SDS_SSP_BIND": ""})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == f"Error: the database sqlite:///{path} is not migrated: run 'sds db upgrade'"
    assert "Traceback" not in err


def _wait_for(url: str, proc: subprocess.Popen[str], ports: list[int]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
            for port in ports:
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    pass
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.2)


@pytest.mark.timeout(180)
def test_a_second_instance_fails_fast_naming_the_facade_and_the_first_keeps_serving(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sds.sqlite3'}"
    assert run({"SDS_DATABASE_URL": url}, "db", "upgrade").exit_code == 0
    http, ldap, ssp = (f"127.0.0.1:{_free_port()}" for _ in range(3))
    binds = {"SDS_HTTP_BIND": http, "SDS_LDAP_BIND": ldap, "SDS_SSP_BIND": ssp}
    # The first instance's SSP runs two workers sharing its port (SO_REUSEPORT): that must keep working.
    first = _serve({"SDS_DATABASE_URL": url, **binds, "SDS_HTTP_WORKERS": "1", "SDS_SSP_WORKERS": "2"},
                   capture=False)
    try:
        health = f"http://{http}/healthcheck"
        _wait_for(health, first, [int(ldap.rsplit(":", 1)[1]), int(ssp.rsplit(":", 1)[1])])
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
        with urllib.request.urlopen(health, timeout=5) as response:
            assert response.status == 200
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
