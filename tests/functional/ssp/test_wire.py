"""The SSP's HTTP/1.1 on the wire: registry facts kept SDS_SSP_CACHE_SECONDS, answers delimited by the provider
closing, Expect: 100-continue, pipelining, malformed requests, and keep-alive connections to providers."""

from __future__ import annotations

import itertools
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from sds_registry.models import DataSharingAgreement
from tests.functional.ssp.conftest import Pki, SspServer, free_port, start_ssp, stop_ssp
from tests.unit.ssp.fixtures import FOUNDATIONS, PROVIDER_FQDN, Directory, seed, ssp_headers

CACHE_SECONDS = 1.5
PROVIDER_TIMEOUT = 1.0
STALL_SECONDS = 6.0
CLOSE_BODY = b"answered until the connection closes\n" * 2000


@dataclass
class RawProvider:
    """A TLS provider that answers with no length and closes (the end is the close), or, for a request
    whose target has ``keepalive``, with a Content-Length body naming its connection, and keeps it open."""

    port: int
    requests: list[bytes] = field(default_factory=list)


def _read_request(conn: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            break
        body += piece
    return head + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def raw_provider(pki: Pki) -> Iterator[RawProvider]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.provider[0]), str(pki.provider[1]))
    listener = socket.create_server(("127.0.0.1", 0))
    provider = RawProvider(listener.getsockname()[1])

    def answer(raw: socket.socket, number: int) -> None:
        try:
            with context.wrap_socket(raw, server_side=True) as conn:
                while request := _read_request(conn):
                    provider.requests.append(request)
                    if b"stall" in request.split(b"\r\n", 1)[0]:  # a head, part of the body, then nothing
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
                        time.sleep(STALL_SECONDS)
                        return
                    if b"keepalive" not in request.split(b"\r\n", 1)[0]:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + CLOSE_BODY)
                        return
                    body = f"connection {number}".encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (OSError, ssl.SSLError):
            pass

    def serve() -> None:
        for number in itertools.count():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(raw, number), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield provider
    listener.close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def cached_ssp(database_url: str, pki: Pki, raw_provider: RawProvider,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[SspServer]:
    """Plain HTTP (raw sockets are simpler), the registry facts cache on, the raw provider behind it."""
    port = free_port()
    log = tmp_path_factory.mktemp("ssp-wire") / "ssp.log"
    process = start_ssp({
        "SDS_DATABASE_URL": database_url, "SDS_SSP_BIND": f"127.0.0.1:{port}", "SDS_SSP_WORKERS": "1",
        "SDS_SSP_PROVIDER_CA": str(pki.ca), "SDS_SSP_CACHE_SECONDS": str(CACHE_SECONDS),
        "SDS_SSP_PROVIDER_TIMEOUT": str(PROVIDER_TIMEOUT),
        "SDS_SSP_CLIENT_CERT": str(pki.ssp_client[0]), "SDS_SSP_CLIENT_KEY": str(pki.ssp_client[1]),
        "SDS_SSP_CONNECT_TO": f"{PROVIDER_FQDN}:443:127.0.0.1:{raw_provider.port}", "SDS_LOG_LEVEL": "WARNING",
    }, log, port)
    try:
        yield SspServer(f"http://127.0.0.1:{port}", process, log)
    finally:
        stop_ssp(process)


@pytest.fixture
def directory(committed_session: Session, audit_settled: None) -> Directory:
    return seed(committed_session)


def _port(server: SspServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _request_bytes(method: str = "GET", path: str = f"/{FOUNDATIONS}/metadata", body: bytes = b"",
                   extra: dict[str, str] | None = None) -> bytes:
    headers = {**ssp_headers(), "Host": "ssp.test", **(extra or {})}
    if body:
        headers["Content-Length"] = str(len(body))
    return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n").encode() + body


def _read_chunked_response(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """(head, de-chunked body, what was read beyond this response)."""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size + 2:
            rest += sock.recv(65536)
        body, rest = body + rest[:size], rest[size + 2:]
        if size == 0:
            return head, body, rest


def test_an_answer_ended_by_the_close_goes_on_chunked(cached_ssp: SspServer, directory: Directory) -> None:
    with httpx.Client() as client:
        response = client.get(f"{cached_ssp.url}/{FOUNDATIONS}/metadata", headers=ssp_headers())
    assert response.status_code == 200, response.text
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == CLOSE_BODY


def test_a_committed_write_reaches_the_very_next_decision(cached_ssp: SspServer, directory: Directory,
                                                          committed_session: Session) -> None:
    url = f"{cached_ssp.url}/{FOUNDATIONS}/metadata"
    with httpx.Client() as client:
        assert client.get(url, headers=ssp_headers()).status_code == 200  # the facts are now kept
        written_at = time.monotonic()
        committed_session.execute(delete(DataSharingAgreement))
        committed_session.commit()
        refused = client.get(url, headers={**ssp_headers(), "Accept": "application/fhir+json"})
        assert time.monotonic() - written_at < CACHE_SECONDS, "too slow to tell a fresh lookup from an expiry"
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["diagnostics"].startswith("FOT_CHECK_FAILED_MESSAGESENDER_")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_registry_facts_are_kept_for_the_cache_seconds(cached_ssp: SspServer, directory: Directory,
                                                       committed_session: Session) -> None:
    """Facts are kept while the directory's generation stands still. Only PostgreSQL can change a row without
    moving it (triggers off for the session, as a replica applies changes); SQLite counts every commit."""
    url = f"{cached_ssp.url}/{FOUNDATIONS}/metadata"
    with httpx.Client() as client:
        assert client.get(url, headers=ssp_headers()).status_code == 200
        first_at = time.monotonic()
        # SET LOCAL: ends with this transaction (a plain SET undone by a later rollback would stay on the
        # pooled connection and keep every later test's triggers off)
        committed_session.execute(text("SET LOCAL session_replication_role = replica"))
        committed_session.execute(delete(DataSharingAgreement))
        committed_session.commit()
        kept = client.get(url, headers=ssp_headers())
        assert time.monotonic() - first_at < CACHE_SECONDS, "too slow to observe the cache"
        assert kept.status_code == 200
        time.sleep(max(0.0, first_at + CACHE_SECONDS + 0.3 - time.monotonic()))
        refused = client.get(url, headers={**ssp_headers(), "Accept": "application/fhir+json"})
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["diagnostics"].startswith("FOT_CHECK_FAILED_MESSAGESENDER_")


def test_expect_100_continue_is_answered_by_the_ssp(cached_ssp: SspServer, directory: Directory,
                                                    raw_provider: RawProvider) -> None:
    from tests.unit.ssp.fixtures import STRUCTURED, STRUCTURED_RECORD, claims, make_jwt

    body = b'{"resourceType":"Parameters","parameter":[]}'
    token = make_jwt(claims(aud=STRUCTURED, scope="patient/*.read"))
    head = _request_bytes("POST", f"/{STRUCTURED}/Patient/$gpc.getstructuredrecord", extra={
        **ssp_headers(STRUCTURED_RECORD, token=token), "Expect": "100-continue",
        "Content-Type": "application/fhir+json", "Content-Length": str(len(body))})
    with socket.create_connection(("127.0.0.1", _port(cached_ssp)), timeout=10) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        sock.sendall(body)
        response_head, received, _ = _read_chunked_response(sock, interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
    assert response_head.startswith(b"HTTP/1.1 200 OK")
    assert received == CLOSE_BODY
    forwarded = raw_provider.requests[-1]
    assert forwarded.endswith(b"\r\n\r\n" + body)
    assert b"expect:" not in forwarded.lower()


def test_pipelined_requests_are_answered_in_order(cached_ssp: SspServer, directory: Directory) -> None:
    refused = _request_bytes(extra={"Ssp-To": "999999999990"})
    with socket.create_connection(("127.0.0.1", _port(cached_ssp)), timeout=10) as sock:
        sock.sendall(_request_bytes() + refused + _request_bytes())
        first_head, first, rest = _read_chunked_response(sock)
        while b"\r\n\r\n" not in rest:
            rest += sock.recv(65536)
        second_head, _, rest = rest.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in second_head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += sock.recv(65536)
        third_head, third, _ = _read_chunked_response(sock, rest[length:])
    assert first_head.startswith(b"HTTP/1.1 200") and first == CLOSE_BODY
    assert second_head.startswith(b"HTTP/1.1 403")
    assert third_head.startswith(b"HTTP/1.1 200") and third == CLOSE_BODY


@pytest.mark.parametrize("garbage", [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                                     b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"])
def test_malformed_requests_get_400_and_the_ssp_carries_on(cached_ssp: SspServer, directory: Directory,
                                                           garbage: bytes) -> None:
    with socket.create_connection(("127.0.0.1", _port(cached_ssp)), timeout=10) as sock:
        sock.sendall(garbage)
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    with httpx.Client() as client:
        assert client.get(f"{cached_ssp.url}/{FOUNDATIONS}/metadata", headers=ssp_headers()).status_code == 200
    assert cached_ssp.process.poll() is None


def test_provider_connections_are_kept_alive(cached_ssp: SspServer, directory: Directory) -> None:
    with httpx.Client() as client:
        answers = [client.get(f"{cached_ssp.url}/{FOUNDATIONS}/metadata?keepalive={n}", headers=ssp_headers())
                   for n in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.text for a in answers}) == 1, [a.text for a in answers]


def test_log_has_no_tracebacks(cached_ssp: SspServer) -> None:
    text = Path(cached_ssp.log).read_text()
    assert "Traceback" not in text, text


def test_random_bytes_never_take_the_ssp_down(cached_ssp: SspServer, directory: Directory) -> None:
    """Junk, truncated requests and junk after a valid head: each connection ends with 400 or a close."""
    rng = random.Random(20261127)
    valid = _request_bytes()
    samples = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600))) for _ in range(30)]
    samples += [valid[: rng.randint(1, len(valid) - 1)] for _ in range(10)]
    samples += [valid.replace(b"HTTP/1.1", b"HTTP/9.9"), b"GET /" + b"x" * 100_000 + b" HTTP/1.1\r\n\r\n",
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    for sample in samples:
        with socket.create_connection(("127.0.0.1", _port(cached_ssp)), timeout=10) as sock:
            sock.sendall(sample)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while piece := sock.recv(65536):
                answer += piece
        assert answer == b"" or answer.startswith(b"HTTP/1.1 "), (sample[:80], answer[:200])
    with httpx.Client() as client:
        assert client.get(f"{cached_ssp.url}/{FOUNDATIONS}/metadata", headers=ssp_headers()).status_code == 200
    assert cached_ssp.process.poll() is None
    assert "Traceback" not in Path(cached_ssp.log).read_text()


def test_a_provider_that_stops_mid_answer_is_cut_off(cached_ssp: SspServer, directory: Directory) -> None:
    """Head and 100 of 1000 bytes, then silence: after SDS_SSP_PROVIDER_TIMEOUT the SSP closes both sides."""
    started = time.monotonic()
    with httpx.Client(timeout=STALL_SECONDS * 2) as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(f"{cached_ssp.url}/{FOUNDATIONS}/metadata?stall=1", headers=ssp_headers()).read()
    elapsed = time.monotonic() - started
    assert PROVIDER_TIMEOUT <= elapsed < STALL_SECONDS - 1, elapsed
    assert cached_ssp.process.poll() is None


def test_an_upgrade_request_is_refused_not_proxied(cached_ssp: SspServer, directory: Directory) -> None:
    """A WebSocket-style Upgrade with bytes after the head: the SSP forwards only HTTP/1.1 requests."""
    head = (b"GET /" + FOUNDATIONS.encode() + b"/metadata HTTP/1.1\r\nHost: ssp.test\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n\x81\x05hello")
    with socket.create_connection(("127.0.0.1", _port(cached_ssp)), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    assert b"101 Switching" not in answer
    assert cached_ssp.process.poll() is None
    assert "Traceback" not in Path(cached_ssp.log).read_text()
