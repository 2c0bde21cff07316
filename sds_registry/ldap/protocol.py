"""One LDAP connection as a sans-IO state machine (in the manner of h11): bytes in -> events, work -> bytes out.

No sockets, threads or event loop here. ``receive_data`` answers what needs no directory (bind, unbind,
WhoAmI, StartTLS, writes, malformed requests) and returns work items for searches and compares; the I/O
layer runs ``perform`` on each wherever it likes (on the loop, in a thread) and writes the bytes, in order.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from dataclasses import dataclass, field

from sds_registry.config import Settings
from sds_registry.errors import Unavailable
from sds_registry.ldap import access, codec, responses
from sds_registry.ldap.answers import AnswerCache, Ticket
from sds_registry.ldap.ast import Control, Result, SearchEntry, SearchRequest
from sds_registry.ldap.backend import DirectoryLike as DirectoryLike
from sds_registry.ldap.codec import (
    AbandonRequest,
    BindRequest,
    CompareRequest,
    DecodeError,
    ExtendedRequest,
    FramingError,
    RequestError,
    UnbindRequest,
    UpdateRequest,
)
from sds_registry.ldap.results import READ_ONLY_MESSAGE, ResultCode, result_for_error

log = logging.getLogger(__name__)

WHO_AM_I = "1.3.6.1.4.1.4203.1.11.3"
START_TLS = "1.3.6.1.4.1.1466.20037"
MANAGE_DSA_IT = "2.16.840.1.113730.3.4.2"
#: Controls we honour (paged results) or for which ignoring is the right behaviour (no referrals here).
SUPPORTED_CONTROLS = frozenset({codec.PAGED_RESULTS, MANAGE_DSA_IT})
SUPPORTED_EXTENSIONS = (WHO_AM_I, START_TLS)
#: Paged searches kept per connection; the oldest is dropped beyond this.
MAX_PAGED_SEARCHES = 8


# ---- Events returned by receive_data -----------------------------------------------------------------------


@dataclass(slots=True)
class Send:
    """Bytes to write now."""

    data: bytes


@dataclass(slots=True)
class SearchWork:
    """A search to run with ``perform``; limits already combine the client's and the server's (0 = none)."""

    message_id: int
    request: SearchRequest
    size_limit: int
    time_limit: float
    page_size: int | None = None
    cookie: bytes = b""
    ticket: Ticket | None = None  # the answer cache's, when it may keep this search's answer


@dataclass(slots=True)
class CompareWork:
    message_id: int
    request: CompareRequest


@dataclass(slots=True)
class Abandon:
    """Drop the answer of this message if it is still running (perform() also checks)."""

    message_id: int


@dataclass(slots=True)
class StartTLS:
    """Write ``data`` (the success response), then wrap the transport in TLS before reading more."""

    data: bytes


@dataclass(slots=True)
class Close:
    """Write ``data`` (maybe empty) and close the connection. Nothing follows it."""

    data: bytes = b""


Event = Send | SearchWork | CompareWork | Abandon | StartTLS | Close
Work = SearchWork | CompareWork


@dataclass(slots=True)
class _PagedSearch:
    key: tuple[object, ...]
    entries: list[SearchEntry]
    final: Result


def _failed(operation: str, exc: Exception) -> Result:
    """A failed operation's answer; a database that cannot be used (52) is logged in one line, else with a traceback."""
    quiet = isinstance(exc, Unavailable)
    log.log(logging.WARNING if quiet else logging.ERROR, "LDAP %s failed: %s", operation, exc, exc_info=not quiet)
    return result_for_error(exc)


def _combine(client: int, server: int) -> int:
    """The stricter of two limits where 0 means none (RFC 4511 §4.5.1.4/5)."""
    if client and server:
        return min(client, server)
    return client or server


def _normalise_dn(dn: str) -> str:
    return ",".join(part.strip().lower() for part in dn.split(","))


@dataclass
class LDAPConnection:
    """State of one client connection: framing buffer, bind identity, TLS state, paged searches."""

    directory: DirectoryLike
    settings: Settings
    answers: AnswerCache | None = None  # the process's answer cache (answers.py); None: no cache
    tls_available: bool = False
    tls_active: bool = False
    bound_dn: str = ""
    closed: bool = False
    _buffer: bytearray = field(default_factory=bytearray)
    _needed: int = 0  # size of the message being buffered, once its header is in
    _in_progress: set[int] = field(default_factory=set)  # message IDs handed out as work, not yet performed
    _abandoned: set[int] = field(default_factory=set)
    _paged: dict[bytes, _PagedSearch] = field(default_factory=dict)
    conn_id: str = field(default_factory=access.next_connection_id)

    # ---- input ----------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns what to do, in order. After a Close nothing more is returned."""
        if self.closed:
            return []
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._needed:
                return []  # still inside one message: no re-scan, so trickled bytes cost O(n) in all
            data = bytes(self._buffer)
            self._buffer.clear()
        try:
            messages, used = codec.split_messages(data, self.settings.ldap_max_message_bytes)
        except FramingError as exc:  # MessageTooLarge included
            return [self._disconnect(str(exc))]
        if used < len(data):
            self._buffer += data[used:]
            self._needed = codec.message_length(self._buffer)
        events: list[Event] = []
        for raw in messages:
            event = self._handle(raw)
            if event is None:
                continue
            events.append(event)
            if isinstance(event, Close):
                break
            if isinstance(event, StartTLS):
                if self._buffer or raw is not messages[-1]:
                    # The client must wait for the StartTLS response before its TLS handshake.
                    events.append(self._disconnect("data received after a StartTLS request"))
                break
        return events

    def _disconnect(self, reason: str, code: int = ResultCode.PROTOCOL_ERROR) -> Close:
        self.closed = True
        self._buffer.clear()
        access.answered(self.conn_id, 0, "disconnect", reason, None, int(code), None, time.perf_counter())
        return Close(responses.encode_notice_of_disconnection(int(code), reason))

    def _handle(self, raw: bytes) -> Event | None:
        started = time.perf_counter()
        ticket = self.answers.check(raw, self.conn_id, started) if self.answers is not None else None
        if isinstance(ticket, bytes):
            return Send(ticket)
        try:
            msg = codec.decode_message(raw)
        except RequestError as exc:
            response_tag = codec.RESPONSE_TAG.get(exc.request_tag)
            if response_tag is None:  # unbind/abandon have no response to carry the error
                return self._disconnect(f"malformed request: {exc}")
            return self._answer("malformed", exc.message_id, "", started, responses.encode_result(
                exc.message_id, response_tag, ResultCode.PROTOCOL_ERROR, "", f"decoding error: {exc}"))
        except DecodeError as exc:
            return self._disconnect(f"malformed message: {exc}")
        op = msg.op
        mid = msg.message_id
        if isinstance(op, SearchRequest):
            event = self._search(mid, op, msg.controls)
            if type(event) is SearchWork:
                event.ticket = ticket if event.page_size is None else None
                self._in_progress.add(mid)
                self._abandoned.discard(mid)  # an abandon for an earlier use of this ID is stale
            elif isinstance(event, Send):  # refused before any directory work (a control)
                access.answered(self.conn_id, mid, "search", op.base, op.filter, access.result_code(event.data), 0,
                                started)
            return event
        if isinstance(op, BindRequest):  # the access line has the DN and the result code; never the password
            return self._answer("bind", mid, op.name, started, self._bind(mid, op))
        if isinstance(op, UnbindRequest):
            self.closed = True
            self._buffer.clear()
            access.answered(self.conn_id, mid, "unbind", "", None, None, None, started)
            return Close()
        if isinstance(op, AbandonRequest):
            # Only a request still in progress can be abandoned; a finished one's ID may be reused later.
            if op.message_id in self._in_progress:
                self._abandoned.add(op.message_id)
            access.answered(self.conn_id, mid, "abandon", str(op.message_id), None, None, None, started)
            return Abandon(op.message_id)
        if isinstance(op, CompareRequest):
            if (bad := self._unsupported_critical(msg.controls, ())) is not None:
                return self._answer("compare", mid, op.dn, started,
                                    responses.encode_result(mid, 0x6F, bad.code, "", bad.message))
            self._in_progress.add(mid)
            self._abandoned.discard(mid)
            return CompareWork(mid, op)
        if isinstance(op, ExtendedRequest):
            event = self._extended(mid, op)
            name = {START_TLS: "starttls", WHO_AM_I: "whoami"}.get(op.name, "extended")
            access.answered(self.conn_id, mid, name, "", None, access.result_code(event.data), None, started)
            return event
        assert isinstance(op, UpdateRequest)
        return self._answer(op.kind, mid, op.dn, started, responses.encode_result(
            mid, codec.RESPONSE_TAG[op.tag], ResultCode.UNWILLING_TO_PERFORM, "", READ_ONLY_MESSAGE))

    def _answer(self, operation: str, mid: int, base: str, started: float, data: bytes) -> Send:
        """Send an answer that needed no directory work, counted and logged with its result code."""
        access.answered(self.conn_id, mid, operation, base, None, access.result_code(data), None, started)
        return Send(data)

    @staticmethod
    def _unsupported_critical(controls: tuple[Control, ...], allowed: tuple[str, ...]) -> Result | None:
        for c in controls:
            if c.critical and c.oid not in allowed and c.oid != MANAGE_DSA_IT:
                return Result(ResultCode.UNAVAILABLE_CRITICAL_EXTENSION, "", f"critical control {c.oid} is unsupported")
        return None

    def _search(self, mid: int, req: SearchRequest, controls: tuple[Control, ...]) -> Event:
        s = self.settings
        work = SearchWork(
            mid, req, _combine(req.size_limit, s.ldap_size_limit), float(_combine(req.time_limit, s.ldap_time_limit))
        )
        if controls:
            if (bad := self._unsupported_critical(controls, (codec.PAGED_RESULTS,))) is not None:
                return Send(responses.encode_search_done(mid, bad.code, "", bad.message))
            for c in controls:
                if c.oid == codec.PAGED_RESULTS:
                    try:
                        work.page_size, work.cookie = codec.decode_paged_control(c.value)
                    except DecodeError as exc:
                        return Send(responses.encode_search_done(mid, ResultCode.PROTOCOL_ERROR, "", str(exc)))
        return work

    def _bind(self, mid: int, req: BindRequest) -> bytes:
        self.bound_dn = ""  # RFC 4511 §4.2.1: a bind first moves the connection to anonymous
        if req.version != 3:
            return responses.encode_result(mid, 0x61, ResultCode.PROTOCOL_ERROR, "", "only LDAPv3 is supported")
        if req.password is None:
            return responses.encode_result(mid, 0x61, ResultCode.AUTH_METHOD_NOT_SUPPORTED, "",
                                           f"SASL ({req.sasl_mechanism}) is not supported; use a simple bind")
        if req.name and not req.password:
            return responses.encode_result(mid, 0x61, ResultCode.UNWILLING_TO_PERFORM, "",
                                           "unauthenticated bind (DN with no password) is not allowed")
        s = self.settings
        if req.name and s.ldap_bind_dn:
            dn_ok = _normalise_dn(req.name) == _normalise_dn(s.ldap_bind_dn)
            pw_ok = hmac.compare_digest(req.password, s.ldap_bind_password.encode("utf-8"))
            if not (dn_ok and pw_ok):
                return responses.encode_result(mid, 0x61, ResultCode.INVALID_CREDENTIALS)
            self.bound_dn = s.ldap_bind_dn
        # Without a configured account any simple bind gives anonymous read access, as SDS does.
        return responses.encode_result(mid, 0x61, ResultCode.SUCCESS)

    def _extended(self, mid: int, req: ExtendedRequest) -> Send | StartTLS:
        if req.name == WHO_AM_I:
            authz = f"dn:{self.bound_dn}" if self.bound_dn else ""
            return Send(responses.encode_extended_response(mid, ResultCode.SUCCESS, value=authz.encode("utf-8")))
        if req.name == START_TLS:
            if self.tls_active:
                return Send(
                    responses.encode_extended_response(
                        mid, ResultCode.OPERATIONS_ERROR, "", "TLS is already active", START_TLS
                    )
                )
            if not self.tls_available:
                return Send(
                    responses.encode_extended_response(
                        mid, ResultCode.UNAVAILABLE, "", "TLS is not configured on this server", START_TLS
                    )
                )
            self.tls_active = True
            return StartTLS(responses.encode_extended_response(mid, ResultCode.SUCCESS, name=START_TLS))
        return Send(
            responses.encode_extended_response(
                mid, ResultCode.PROTOCOL_ERROR, "", f"unsupported extended operation {req.name}"
            )
        )

    # ---- work ------------------------------------------------------------------------------------------

    def perform(self, work: Work) -> bytes:
        """Run one search or compare against the directory and encode the answer (b"" when abandoned).

        Safe to call from a worker thread: an Abandon that receive_data sees meanwhile drops the answer.
        """
        mid = work.message_id
        started = time.perf_counter()
        try:
            if mid in self._abandoned:
                return b""
            if isinstance(work, CompareWork):
                r = work.request
                started = time.perf_counter()
                try:
                    result = self.directory.compare(r.dn, r.attr, r.value)
                except Exception as exc:  # noqa: BLE001 - one failing request must not end the connection
                    result = _failed("compare", exc)
                access.answered(self.conn_id, mid, "compare", r.dn, None, result.code, None, started,
                                time.perf_counter() - started)
                return responses.encode_result(mid, 0x6F, result.code, result.matched_dn, result.message)
            if work.page_size is not None:
                return self._paged_search(work)
            started = time.perf_counter()
            if work.ticket is not None and (kept := work.ticket.recall(self.conn_id, started)) is not None:
                return kept
            try:
                entries, result = self.directory.search(work.request, work.size_limit, work.time_limit)
            except Exception as exc:  # noqa: BLE001
                entries, result = [], _failed("search", exc)
            access.answered(self.conn_id, mid, "search", work.request.base, work.request.filter, result.code,
                            len(entries), started, time.perf_counter() - started)
            if mid in self._abandoned:
                return b""
            data = responses.encode_search_response(mid, entries, result.code, result.matched_dn, result.message)
            if work.ticket is not None:
                work.ticket.keep(data, work.request, result.code, len(entries))
            return data
        finally:
            self._in_progress.discard(mid)
            self._abandoned.discard(mid)

    def _paged_search(self, work: SearchWork) -> bytes:
        """RFC 2696 over a snapshot: the first page runs the search, later pages slice what it returned.
        Every page is one operation answered (counted and logged; directory time only on the first)."""
        mid, req = work.message_id, work.request
        started = time.perf_counter()
        data, code, sent, seconds = self._page(work)
        access.answered(self.conn_id, mid, "search", req.base, req.filter, code, sent, started, seconds)
        return b"" if mid in self._abandoned else data

    def _page(self, work: SearchWork) -> tuple[bytes, int, int, float | None]:
        """(the page's messages, its result code, entries in it, seconds of directory work or None)."""
        mid, req, size = work.message_id, work.request, work.page_size or 0
        key = (req.base, req.scope, req.deref, req.types_only, req.filter, req.attributes)
        seconds = None
        if work.cookie:
            state = self._paged.pop(work.cookie, None)
            if state is None or state.key != key:
                return responses.encode_search_done(
                    mid, ResultCode.UNWILLING_TO_PERFORM, "", "paged results cookie is invalid or expired"
                ), ResultCode.UNWILLING_TO_PERFORM, 0, None
            if size == 0:  # the client abandons the paged search
                return responses.encode_search_done(mid, controls=[responses.paged_control(0, b"")]), 0, 0, None
            entries, final = state.entries, state.final
        else:
            started = time.perf_counter()
            try:
                entries, final = self.directory.search(req, work.size_limit, work.time_limit)
            except Exception as exc:  # noqa: BLE001
                entries, final = [], _failed("search", exc)
            seconds = time.perf_counter() - started
            if size == 0:
                return responses.encode_search_done(
                    mid, final.code, final.matched_dn, final.message, [responses.paged_control(len(entries), b"")]
                ), final.code, 0, seconds
        page, rest = entries[:size], entries[size:]
        if not rest:
            return responses.encode_search_response(
                mid, page, final.code, final.matched_dn, final.message, [responses.paged_control(0, b"")]
            ), final.code, len(page), seconds
        cookie = os.urandom(12)
        if len(self._paged) >= MAX_PAGED_SEARCHES:
            self._paged.pop(next(iter(self._paged)))
        self._paged[cookie] = _PagedSearch(key, rest, final)
        data = responses.encode_search_response(mid, page, controls=[responses.paged_control(len(entries), cookie)])
        return data, ResultCode.SUCCESS, len(page), seconds
