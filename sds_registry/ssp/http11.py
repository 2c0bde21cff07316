"""The SSP's HTTP/1.1 framing, sans-IO: request bytes in, events out; response pieces out as bytes. No I/O.

``RequestParser`` wraps httptools (a pure parser) the way h11 is used: ``feed`` takes whatever arrived and
returns the events it completed, in order: a ``RequestHead`` (method, target, headers as spelled, version,
keep-alive, whether a body follows, ``Expect: 100-continue``), the body's ``Data`` (already de-chunked), an
``EndOfMessage``; pipelined requests simply follow one another. Malformed input, a head over
``MAX_HEADER_BYTES``, a Transfer-Encoding other than exactly ``chunked`` (no head event for it) and an
``Upgrade`` end the stream with a ``ProtocolError`` (events completed before it are kept); the parser then
takes nothing more. The response side builds heads, chunks and the last chunk.
No asyncio, no sockets, no logging here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate

import httptools

MAX_HEADER_BYTES = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    #: As the client spelled them, in order, duplicates kept.
    headers: list[tuple[str, str]]
    version: str
    keep_alive: bool
    #: A body follows (chunked, or a Content-Length above 0).
    has_body: bool
    chunked: bool
    #: ``Expect: 100-continue`` on a request with a body: the server owes an interim 100 before reading it.
    expect_continue: bool


@dataclass(frozen=True, slots=True)
class Data:
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    pass


@dataclass(frozen=True, slots=True)
class ProtocolError:
    reason: str
    #: The request asked to switch protocols: the SSP relays HTTP/1.1 only.
    upgrade: bool = False


Event = RequestHead | Data | EndOfMessage | ProtocolError
_END = EndOfMessage()


class RequestParser:
    """Requests on one connection, as events. Feed it bytes; it never reads or writes anything itself."""

    def __init__(self, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.max_header_bytes = max_header_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self.failed = False
        self.in_head = False  #: a request head has begun and is not complete yet

    def feed(self, data: bytes) -> list[Event]:
        """The events ``data`` completed (a ProtocolError last if it broke the stream; nothing once broken)."""
        if self.failed:
            return []
        events = self._events = []
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # not an HttpParserError subclass
            self.failed = True
            events.append(ProtocolError("upgrade", upgrade=True))
        except httptools.HttpParserError as exc:  # malformed, or a head too large (raised by on_header)
            self.failed = True
            events.append(ProtocolError(str(exc) or type(exc).__name__))
        return events

    # ---- httptools callbacks ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._header_bytes = [], [], 0
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.max_header_bytes:
            raise ValueError("request head too large")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser, headers = self._parser, self._headers
        codings = [c.strip().lower() for k, v in headers if k.lower() == "transfer-encoding" for c in v.split(",")]
        if codings and codings != ["chunked"]:
            # llhttp reports a bad Transfer-Encoding only after this callback, when the head would already be
            # out as an event (and forwarded); and a coding besides chunked would be lost in re-chunking.
            raise ValueError("Transfer-Encoding other than 'chunked'")
        chunked = bool(codings)
        length = next((v for k, v in headers if k.lower() == "content-length"), "0").strip()
        has_body = chunked or (length.isdigit() and int(length) > 0)
        expect = has_body and any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers)
        self._events.append(RequestHead(
            method=parser.get_method().decode("latin-1"), target=b"".join(self._url).decode("latin-1"),
            headers=headers, version=parser.get_http_version(), keep_alive=bool(parser.should_keep_alive()),
            has_body=has_body, chunked=chunked, expect_continue=expect,
        ))

    def on_body(self, body: bytes) -> None:
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._events.append(_END)


# ---- the response side -----------------------------------------------------------------------------------


class _Date:
    """The Date header value, formatted once a second."""

    second = -1
    value = ""


def http_date() -> str:
    """Now, as an HTTP date (formatted at most once a second)."""
    second = int(time.time())
    if second != _Date.second:
        _Date.second, _Date.value = second, formatdate(second, usegmt=True)
    return _Date.value


def response_head(status: int, reason: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The status line and header lines, in the order given, and the blank line."""
    return (f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
            + "\r\n").encode("latin-1")


def request_head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    return (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
            + "\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body (never empty: an empty chunk would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def request_timeout(server: str) -> bytes:
    """The answer to a request head that took too long to arrive; the connection closes after it."""
    return response_head(408, "Request Timeout", [("Content-Length", "0"), ("Connection", "close"),
                                                  ("Date", http_date()), ("Server", server)])


def bad_request(server: str) -> bytes:
    """The answer to bytes that are not an HTTP/1.1 request; the connection closes after it."""
    return response_head(400, "Bad Request", [("Content-Length", "0"), ("Connection", "close"),
                                              ("Date", http_date()), ("Server", server)])
