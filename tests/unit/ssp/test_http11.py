"""The SSP's sans-IO HTTP/1.1 layer: bytes in, events out (split anywhere, pipelined, chunked, 100-continue,
malformed, Upgrade), and the response framing helpers' exact bytes."""

from __future__ import annotations

import re

import pytest

from sds_registry.ssp import http11
from sds_registry.ssp.http11 import Data, EndOfMessage, Event, ProtocolError, RequestHead, RequestParser

GET = (b"GET /https://provider.test/A11111/STU3/1/gpconnect/metadata?x=1 HTTP/1.1\r\n"
       b"Host: ssp.test\r\nSsp-TraceID: abc\r\nssp-from: 200000000359\r\n\r\n")
POST = (b"POST /https://provider.test/A11111/STU3/1/gpconnect/Appointment HTTP/1.1\r\nHost: ssp.test\r\n"
        b"Content-Type: application/fhir+json\r\nContent-Length: 11\r\n\r\n{\"a\": true}")
CHUNKED = (b"POST /x HTTP/1.1\r\nHost: ssp.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")


def _merged(events: list[Event]) -> list[Event]:
    """Adjacent Data events joined (where a body splits depends on how the bytes arrived)."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def _feed(*pieces: bytes) -> list[Event]:
    parser = RequestParser()
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    return _merged(events)


def test_a_get_gives_its_head_and_its_end() -> None:
    head, end = _feed(GET)
    assert isinstance(head, RequestHead) and isinstance(end, EndOfMessage)
    assert head.method == "GET"
    assert head.target == "/https://provider.test/A11111/STU3/1/gpconnect/metadata?x=1"
    assert head.headers == [("Host", "ssp.test"), ("Ssp-TraceID", "abc"), ("ssp-from", "200000000359")]
    assert (head.version, head.keep_alive, head.has_body, head.chunked, head.expect_continue) == (
        "1.1", True, False, False, False)


def test_a_post_gives_its_body() -> None:
    head, data, end = _feed(POST)
    assert isinstance(head, RequestHead) and head.has_body and not head.chunked
    assert data == Data(b'{"a": true}') and isinstance(end, EndOfMessage)


@pytest.mark.parametrize("message", [GET, POST, CHUNKED], ids=["get", "post", "chunked"])
def test_split_at_every_position_the_events_are_the_same(message: bytes) -> None:
    whole = _feed(message)
    for at in range(1, len(message)):
        assert _feed(message[:at], message[at:]) == whole, at


def test_byte_by_byte() -> None:
    assert _feed(*(bytes([b]) for b in CHUNKED)) == _feed(CHUNKED)


def test_a_chunked_body_arrives_de_chunked() -> None:
    head, data, end = _feed(CHUNKED)
    assert isinstance(head, RequestHead) and head.chunked and head.has_body
    assert data == Data(b"hello world") and isinstance(end, EndOfMessage)


def test_pipelined_requests_come_out_in_order() -> None:
    events = _feed(GET + POST + GET.replace(b"GET", b"DELETE", 1))
    heads = [e.method for e in events if isinstance(e, RequestHead)]
    assert heads == ["GET", "POST", "DELETE"]
    assert [type(e).__name__ for e in events] == ["RequestHead", "EndOfMessage", "RequestHead", "Data",
                                                  "EndOfMessage", "RequestHead", "EndOfMessage"]


@pytest.mark.parametrize("at", [1, len(GET) - 1, len(GET), len(GET) + 10, len(GET) + len(POST) - 1])
def test_a_pipelined_pair_split_anywhere(at: int) -> None:
    pair = GET + POST
    assert _feed(pair[:at], pair[at:]) == _feed(pair)


def test_expect_100_continue_is_flagged_on_a_request_with_a_body() -> None:
    with_body = POST.replace(b"Content-Length", b"Expect: 100-continue\r\nContent-Length")
    head = _feed(with_body.partition(b"\r\n\r\n")[0] + b"\r\n\r\n")[0]
    assert isinstance(head, RequestHead) and head.expect_continue
    bodiless = _feed(GET.replace(b"Host", b"Expect: 100-continue\r\nHost"))[0]
    assert isinstance(bodiless, RequestHead) and not bodiless.expect_continue


@pytest.mark.parametrize(("message", "keep_alive"), [
    (GET, True),
    (GET.replace(b"Host", b"Connection: close\r\nHost"), False),
    (GET.replace(b"HTTP/1.1", b"HTTP/1.0"), False),
    (GET.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"Host", b"Connection: keep-alive\r\nHost"), True),
])
def test_keep_alive(message: bytes, keep_alive: bool) -> None:
    head = _feed(message)[0]
    assert isinstance(head, RequestHead) and head.keep_alive is keep_alive


@pytest.mark.parametrize("garbage", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_malformed_input_ends_with_a_protocol_error(garbage: bytes) -> None:
    parser = RequestParser()
    events = parser.feed(garbage)
    assert isinstance(events[-1], ProtocolError) and not events[-1].upgrade
    assert parser.failed
    assert parser.feed(GET) == []  # a broken stream takes nothing more


def test_events_before_the_error_are_kept() -> None:
    events = RequestParser().feed(GET + b"NOT HTTP\r\n\r\n")
    assert [type(e).__name__ for e in events] == ["RequestHead", "EndOfMessage", "ProtocolError"]


def test_an_upgrade_is_an_error_after_its_head() -> None:
    upgrade = (b"GET /x HTTP/1.1\r\nHost: ssp.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
               b"\x81\x05hello")
    events = RequestParser().feed(upgrade)
    assert isinstance(events[0], RequestHead) and events[0].method == "GET"
    assert events[-1] == ProtocolError("upgrade", upgrade=True)


def test_a_head_just_under_the_limit_passes() -> None:
    parser = RequestParser(max_header_bytes=100)
    assert isinstance(parser.feed(b"GET /" + b"a" * 10 + b" HTTP/1.1\r\nX: " + b"b" * 80 + b"\r\n\r\n")[0],
                      RequestHead)
    parser = RequestParser(max_header_bytes=100)
    assert isinstance(parser.feed(b"GET /" + b"a" * 10 + b" HTTP/1.1\r\nX: " + b"b" * 90 + b"\r\n\r\n")[-1],
                      ProtocolError)


# ---- the response side ---------------------------------------------------------------------------------


def test_response_head_bytes() -> None:
    assert http11.response_head(200, "OK", [("Content-Length", "2"), ("X-A", "b")]) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n")


def test_request_head_bytes() -> None:
    assert http11.request_head("GET", "/a?b=1", [("Host", "p.test")]) == b"GET /a?b=1 HTTP/1.1\r\nHost: p.test\r\n\r\n"


def test_chunk_framing() -> None:
    assert http11.chunk(b"hello") == b"5\r\nhello\r\n"
    assert http11.chunk(b"x" * 4096) == b"1000\r\n" + b"x" * 4096 + b"\r\n"
    assert http11.LAST_CHUNK == b"0\r\n\r\n"
    assert http11.CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_chunks_parse_back() -> None:
    framed = b"".join(http11.chunk(p) for p in (b"ab", b"c" * 300)) + http11.LAST_CHUNK
    events = _feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + framed)
    assert Data(b"ab" + b"c" * 300) in events


def test_bad_request_closes() -> None:
    answer = http11.bad_request("sds-ssp")
    assert re.fullmatch(rb"HTTP/1\.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n"
                        rb"Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\nServer: sds-ssp\r\n\r\n",
                        answer), answer


@pytest.mark.parametrize("coding", [b"xchunked", b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked;q=1",
                                    b'"chunked"', b"chunked, chunked"])
def test_a_transfer_encoding_other_than_chunked_is_an_error_before_any_head(coding: bytes) -> None:
    """llhttp flags some of these only after the head callback: the head must not come out (and be forwarded)."""
    events = RequestParser().feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n")
    assert len(events) == 1 and isinstance(events[0], ProtocolError), events


@pytest.mark.parametrize("coding", [b"chunked", b"Chunked", b" chunked "])
def test_chunked_in_any_case_is_chunked(coding: bytes) -> None:
    events = RequestParser().feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n")
    assert isinstance(events[0], RequestHead) and events[0].chunked
    assert isinstance(events[-1], EndOfMessage)
