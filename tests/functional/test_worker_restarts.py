"""A real ``sds serve`` whose processes are killed with SIGKILL: a dead worker (HTTP, LDAP, SSP) or a dead facade
process is replaced, every facade keeps answering, the replacement is logged and counted in
``sds_worker_restarts_total``, and SIGTERM still stops everything with status 0. A facade that dies at every
start (a bad setting only it reads) is given up on after a few tries, and ``sds serve`` exits 1."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from sds_registry.workers import MAX_QUICK_DEATHS, RestartGuard
from tests.functional.test_metrics import METADATA, scrape
from tests.support.ldap import ldapsearch
from tests.support.serving import Running, clean_environment, free_port, sds_serve, start

REPLACED_WITHIN = 30.0


def answers(running: Running) -> dict[str, bool]:
    """Whether each facade answers one request now (a new connection each): a resolve, a search, a health check."""
    out = {}
    try:
        response = httpx.get(f"{running.http_url}/api/resolve", params={"ods": "A20047", "interaction": METADATA},
                             timeout=5)
        out["http"] = response.status_code == 200
    except httpx.HTTPError:
        out["http"] = False
    out["ldap"] = ldapsearch(["-H", f"ldap://127.0.0.1:{running.ldap}", "-b", "o=nhs",
                              "(nhsIDCode=A20047)", "dn"]).returncode == 0
    try:
        out["ssp"] = httpx.get(f"http://127.0.0.1:{running.ssp}/healthcheck", timeout=5).status_code == 200
    except httpx.HTTPError:
        out["ssp"] = False
    return out


def wait_until(predicate: object, timeout: float = REPLACED_WITHIN) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def restarts(running: Running) -> dict[str, float]:
    return {dict(labels)["facade"]: value for (name, labels), value in scrape(running).items()
            if name == "sds_worker_restarts_total"}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_killed_workers_are_replaced_and_every_facade_keeps_serving(seeded: Engine, database_url: str,
                                                                     tmp_path: Path) -> None:
    env = {"SDS_HTTP_WORKERS": "2", "SDS_LDAP_WORKERS": "2", "SDS_SSP_WORKERS": "2",
           "SDS_METRICS_DIR": str(tmp_path / "metrics")}
    with sds_serve(database_url, tmp_path, env=env) as running:
        facades = running.facades()
        assert sorted(facades) == ["http", "ldap", "ssp"]
        for name in ("ldap", "ssp", "http"):
            wait_until(lambda name=name: len(running.workers(name)) == 2)  # type: ignore[misc]
            victim = running.workers(name)[0]
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda name=name, victim=victim: (  # type: ignore[misc]
                victim not in running.workers(name) and len(running.workers(name)) == 2))
            wait_until(lambda: all(answers(running).values()))
        assert running.facades() == facades  # the facade processes themselves lived on
        assert restarts(running) == {"http": 1.0, "ldap": 1.0, "ssp": 1.0}
    log = running.output()
    assert "stopping the others" not in log
    assert "the ldap worker" in log and "ended (signal SIGKILL); starting another" in log
    assert "the ssp worker" in log


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_facade_process_is_started_again(seeded: Engine, database_url: str, tmp_path: Path) -> None:
    env = {"SDS_LDAP_WORKERS": "2", "SDS_METRICS_DIR": str(tmp_path / "metrics")}
    with sds_serve(database_url, tmp_path, env=env) as running:
        before = running.facades()
        for name in ("ldap", "ssp", "http"):
            workers = running.workers(name)
            os.kill(before[name], signal.SIGKILL)
            wait_until(lambda name=name: running.facades().get(name, before[name]) != before[name])  # type: ignore[misc]
            wait_until(lambda workers=workers: not any(Path(f"/proc/{pid}/cmdline").is_file()  # type: ignore[misc]
                                                       and Path(f"/proc/{pid}/cmdline").read_bytes()
                                                       for pid in workers))  # the old workers stopped too
            wait_until(lambda: all(answers(running).values()))
        assert restarts(running) == {"http": 1.0, "ldap": 1.0, "ssp": 1.0}
    assert "the ldap facade process" in running.output()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_facade_dying_at_every_start_is_given_up_on(seeded: Engine, database_url: str, tmp_path: Path) -> None:
    """The SSP reads its certificate in its own process (the supervisor's start-up checks pass), so it exits 1
    at every start: after MAX_QUICK_DEATHS tries the supervisor stops HTTP too and exits 1."""
    http = free_port()
    env = clean_environment({
        "SDS_DATABASE_URL": database_url, "SDS_HTTP_BIND": f"127.0.0.1:{http}", "SDS_LDAP_BIND": "",
        "SDS_SSP_BIND": f"127.0.0.1:{free_port()}", "SDS_SSP_TLS_CERT": str(tmp_path / "missing.pem"),
        "SDS_SSP_TLS_KEY": str(tmp_path / "missing.key"), "SDS_HTTP_WORKERS": "1", "SDS_LOG_LEVEL": "WARNING",
    })
    proc = start([sys.executable, "-m", "sds_registry.cli", "serve"], env, tmp_path / "serve.log", (http,))
    try:
        assert proc.wait(timeout=90) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deaths = [line for line in (tmp_path / "serve.log").read_text().splitlines() if "the ssp facade process" in line]
    # at least MAX_QUICK_DEATHS: on a loaded machine one start can take longer than QUICK_DEATH_SECONDS, and a
    # process that lived that long resets the count (RestartGuard's unit tests pin the exact rule)
    assert len(deaths) >= MAX_QUICK_DEATHS
    assert all(line.endswith("starting another") for line in deaths[:-1])
    assert deaths[-1].endswith("it keeps dying soon after it starts: giving up")


def running_pid(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie nobody reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_supervisor_leaves_nothing_serving(seeded: Engine, database_url: str, tmp_path: Path) -> None:
    """Facade processes and workers stop with their parent (PR_SET_PDEATHSIG): none serves on, unsupervised."""
    env = {"SDS_LDAP_WORKERS": "2", "SDS_SSP_WORKERS": "2"}
    with sds_serve(database_url, tmp_path, env=env, expect_status=None) as running:
        pids = [pid for facade in ("http", "ldap", "ssp") for pid in [running.facades()[facade],
                                                                        *running.workers(facade)]]
        assert len(pids) == 3 + 1 + 2 + 2
        running.proc.kill()
        running.proc.wait()
        wait_until(lambda: not any(running_pid(pid) for pid in pids))
        for port in (running.http, running.ldap, running.ssp):  # nothing listens on them any more
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_restart_guard_counts_quick_deaths_in_a_row() -> None:
    guard = RestartGuard(limit=3, quick=5.0)
    assert guard.allow(0.5) and guard.allow(0.5)
    assert guard.allow(60.0)  # a process that lived long resets the count
    assert guard.allow(0.5) and guard.allow(0.5)
    assert not guard.allow(0.5)
