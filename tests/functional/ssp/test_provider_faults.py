"""A provider that resets every connection, or accepts and then stalls, many times over: the SSP answers each
call with its 502 or 504 within SDS_SSP_PROVIDER_TIMEOUT and keeps no connection or file descriptor from them
(its worker's /proc/<pid>/fd holds no more after than before, database pool connections apart, none towards
the provider, and the stalled provider sees every one of its connections closed by the SSP).
test_proxy.py has the single 502 (nothing listening) and 504 (slow answer)."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.functional.ssp.conftest import Pki, free_port, start_ssp, stop_ssp
from tests.support.procfs import open_descriptors
from tests.unit.ssp.fixtures import FOUNDATIONS, PROVIDER_FQDN, Directory, seed, ssp_headers

TIMEOUT = 1.0
CALLS = 40
WARM = 5


class HostileProvider:
    """A TLS provider on a loopback port that, per ``mode``, resets each connection at once (``reset``) or
    completes the handshake, reads the request and never answers (``stall``) until the SSP closes."""

    def __init__(self, pki: Pki) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(pki.provider[0]), str(pki.provider[1]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "reset"
        self.accepted = 0
        self.closed_by_peer = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            if self.mode == "reset":
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raw.close()  # RST, not FIN
            else:
                threading.Thread(target=self._stall, args=(raw,), daemon=True).start()

    def _stall(self, raw: socket.socket) -> None:
        raw.settimeout(30)
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                while conn.recv(65536):  # the request, then nothing sent back, until the SSP closes
                    pass
        except OSError:
            pass
        with self.lock:
            self.closed_by_peer += 1

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def hostile(pki: Pki) -> Iterator[HostileProvider]:
    provider = HostileProvider(pki)
    yield provider
    provider.close()


def workers_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_reset_and_stalled_providers_get_502_and_504_and_leak_no_descriptors(
        pki: Pki, hostile: HostileProvider, database_url: str, committed_session: object, tmp_path: Path) -> None:
    directory: Directory = seed(committed_session)  # type: ignore[arg-type]
    assert directory.provider_party_key
    port = free_port()
    process = start_ssp({
        "SDS_DATABASE_URL": database_url, "SDS_SSP_BIND": f"127.0.0.1:{port}", "SDS_SSP_WORKERS": "1",
        "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{hostile.port}",
        "SDS_SSP_PROVIDER_CA": str(pki.ca), "SDS_SSP_PROVIDER_TIMEOUT": str(TIMEOUT),
        "SDS_SSP_CLIENT_CERT": str(pki.ssp_client[0]), "SDS_SSP_CLIENT_KEY": str(pki.ssp_client[1]),
        "SDS_LOG_LEVEL": "WARNING",
    }, tmp_path / "ssp.log", port)
    try:
        (worker,) = workers_of(process.pid)
        url = f"http://127.0.0.1:{port}/{FOUNDATIONS}/metadata"
        headers = {**ssp_headers(), "Accept": "application/fhir+json"}
        with httpx.Client(timeout=10) as client:
            for mode in ("reset", "stall"):  # warm: pools, the audit writer's connection, lazy imports
                hostile.mode = mode
                for _ in range(WARM):
                    assert client.get(url, headers={**headers, "Ssp-TraceID": str(uuid.uuid4())}).status_code >= 502
            time.sleep(1)
            before = open_descriptors(worker)
            statuses: dict[str, list[int]] = {"reset": [], "stall": []}
            slowest = 0.0
            for mode in ("reset", "stall"):
                hostile.mode = mode
                for _ in range(CALLS):
                    started = time.monotonic()
                    response = client.get(url, headers={**ssp_headers(), "Accept": "application/fhir+json"})
                    slowest = max(slowest, time.monotonic() - started)
                    statuses[mode].append(response.status_code)
                    assert "COMMUNICATING_TO_ENDPOINT_URL" in response.text
            deadline = time.monotonic() + 10
            while len(open_descriptors(worker)) > len(before) and time.monotonic() < deadline:
                time.sleep(0.1)
            after = open_descriptors(worker)
    finally:
        stop_ssp(process)
    assert statuses == {"reset": [502] * CALLS, "stall": [504] * CALLS}
    assert slowest < TIMEOUT + 1.0
    # The database pool may open one more connection when the lookup and the audit writer overlap (bounded by
    # its size): counted apart. Everything else must be as before, and nothing left towards the provider.
    database = f"tcp:{make_url(database_url).port}"
    assert list(after.values()).count(f"tcp:{hostile.port}") == 0
    assert list(after.values()).count(database) <= 5
    grown = {fd: what for fd, what in after.items() if before.get(fd) != what and what != database}
    others = [what for what in after.values() if what != database]
    assert len(others) <= len([w for w in before.values() if w != database]), (
        f"the SSP worker holds more descriptors after {2 * CALLS} faults: {grown}")
    deadline = time.monotonic() + 10
    while hostile.closed_by_peer < CALLS + WARM and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hostile.closed_by_peer == CALLS + WARM  # every stalled connection was closed by the SSP
