"""The LDAP answer cache never answers stale: under a real `sds serve` with 2 LDAP workers, a registration through
/api and an `sds import` are seen by the very next search on every worker (connections kept open across the write,
their answers cached before it), on SQLite and PostgreSQL; with SDS_LDAP_CACHE_BYTES=0 the same holds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import ldap3
import pytest
from sqlalchemy.engine import Engine

from tests.support.serving import Running, clean_environment, sds_serve

GPC = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
STEP1 = "(&(nhsIDCode={ods})(objectClass=nhsMhs)(nhsMhsSvcIA=" + GPC + "))"
REGISTERED, IMPORTED = "Y61001", "Y61002"
IMPORT_FILE = json.dumps({
    "organisations": [{"ods_code": IMPORTED, "name": "Imported Practice"}],
    "message_handling_systems": [{"ods_code": IMPORTED, "party_key": "Y61002-610002", "interaction_id": GPC,
                                  "cpa_id": "imported0001",
                                  "endpoints": ["https://gpc.imported.example.nhs.uk/Y61002/STU3/1/gpconnect"]}]})


def endpoints(conn: ldap3.Connection, ods: str) -> list[str]:
    conn.search("ou=services,o=nhs", STEP1.format(ods=ods), attributes=["nhsMHSEndPoint"])
    assert conn.result["result"] == 0, conn.result
    return sorted(str(v) for e in conn.entries for v in e.nhsMHSEndPoint.values)


def scrape_hits(running: Running) -> float:
    """sds_ldap_answer_cache_total{outcome="hit"}, summed over the LDAP workers (/metrics)."""
    with urllib.request.urlopen(f"{running.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    hit = re.compile(r'^sds_ldap_answer_cache_total\{outcome="hit"\} (\S+)$', re.M)
    return sum(float(m.group(1)) for m in hit.finditer(text))


SEARCHED_BY = re.compile(r"conn (\d+)-\d+ msg \d+ search")


def new_search_line_pid(running: Running, seen: int) -> str:
    """The pid in the first search access line after the ``seen`` ones (access lines are written in batches, a
    fraction of a second after the answer)."""
    deadline = time.monotonic() + 10
    while len(found := SEARCHED_BY.findall(running.output())) <= seen:
        assert time.monotonic() < deadline, "no access line for the search"
        time.sleep(0.02)
    return str(found[seen])


def worker_of_each(running: Running) -> list[ldap3.Connection]:
    """Connections kept open until the access log shows both LDAP workers answered one (SO_REUSEPORT spreads
    new connections); one connection per worker pid, each having searched once already."""
    by_pid: dict[str, ldap3.Connection] = {}
    spare: list[ldap3.Connection] = []
    deadline = time.monotonic() + 60  # the second worker may still be starting
    while time.monotonic() < deadline:
        conn = ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{running.ldap}", get_info=ldap3.NONE),
                                auto_bind=True, read_only=True)
        seen = len(SEARCHED_BY.findall(running.output()))
        endpoints(conn, "ZZ0000")  # the access line names the answering process: "conn <pid>-<n> msg 2 search"
        pid = new_search_line_pid(running, seen)
        if pid in by_pid:
            spare.append(conn)
        else:
            by_pid[pid] = conn
        if len(by_pid) == 2:
            break
        time.sleep(0.05)
    for conn in spare:
        conn.unbind()
    assert len(by_pid) == 2, f"every connection went to one LDAP worker: {sorted(by_pid)}"
    return list(by_pid.values())


@pytest.fixture(params=["cache", "no-cache"])
def serve(request: pytest.FixtureRequest, seeded: Engine, database_url: str, tmp_path: Path) -> Iterator[Running]:
    env = {"SDS_LDAP_WORKERS": "2", "SDS_LOG_LEVEL": "INFO", "SDS_HTTP_WORKERS": "1"}
    if request.param == "no-cache":
        env["SDS_LDAP_CACHE_BYTES"] = "0"
    with sds_serve(database_url, tmp_path, ssp=False, env=env) as running:
        yield running


@pytest.mark.timeout(240)
def test_a_write_is_seen_by_the_very_next_search_on_every_worker(
    serve: Running, admin_token: str, database_url: str, tmp_path: Path
) -> None:
    conns = worker_of_each(serve)
    try:
        for conn in conns:  # twice each: the second answer comes from the cache when it is on
            assert endpoints(conn, REGISTERED) == [] and endpoints(conn, REGISTERED) == []
            assert endpoints(conn, IMPORTED) == [] and endpoints(conn, IMPORTED) == []

        response = httpx.post(f"{serve.http_url}/api/providers", headers={"Authorization": f"Bearer {admin_token}"},
                              json={"ods_code": REGISTERED, "fqdn": "gpc.registered.example.nhs.uk"}, timeout=30)
        assert response.status_code == 201, response.text
        expected = ["https://gpc.registered.example.nhs.uk/Y61001/STU3/1/gpconnect"]
        for conn in conns:
            assert endpoints(conn, REGISTERED) == expected

        source = tmp_path / "import.json"
        source.write_text(IMPORT_FILE)
        done = subprocess.run([sys.executable, "-m", "sds_registry.cli", "import", str(source)], capture_output=True,
                              text=True, timeout=120, env=clean_environment({"SDS_DATABASE_URL": database_url}))
        assert done.returncode == 0, done.stdout + done.stderr
        for conn in conns:
            assert endpoints(conn, IMPORTED) == ["https://gpc.imported.example.nhs.uk/Y61002/STU3/1/gpconnect"]
            assert endpoints(conn, REGISTERED) == expected
        hits = scrape_hits(serve)
        assert hits > 0 if serve.env.get("SDS_LDAP_CACHE_BYTES") != "0" else hits == 0
    finally:
        for conn in conns:
            conn.unbind()
