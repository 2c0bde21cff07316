"""The sans-IO LDAP connection: bytes in, events and bytes out, against a recording fake directory."""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # ldap3 2.9 imports names pyasn1 0.6 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3  # noqa: F401
from ldap3.operation.bind import bind_operation
from ldap3.operation.extended import extended_operation
from ldap3.operation.search import search_operation
from ldap3.protocol.rfc2696 import RealSearchControlValue, paged_search_control
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.ber import encoder as ber_encoder

from sds_registry.config import Settings
from sds_registry.errors import NotFound
from sds_registry.ldap import codec
from sds_registry.ldap.ast import Result, SearchEntry, SearchRequest
from sds_registry.ldap.protocol import (
    START_TLS,
    WHO_AM_I,
    Abandon,
    Close,
    CompareWork,
    LDAPConnection,
    SearchWork,
    Send,
    StartTLS,
)


class RecordingFakeDirectory:
    """A test-only stand-in for ldap.directory.Directory: returns canned entries and records each call."""

    def __init__(self, entries: list[SearchEntry] | None = None, result: Result | None = None) -> None:
        self.entries = entries if entries is not None else [SearchEntry("cn=a,o=nhs", [("cn", ["a"])])]
        self.result = result or Result(0)
        self.calls: list[tuple[SearchRequest, int, float]] = []
        self.error: Exception | None = None

    def search(self, request: SearchRequest, size_limit: int, time_limit: float) -> tuple[list[SearchEntry], Result]:
        self.calls.append((request, size_limit, time_limit))
        if self.error is not None:
            raise self.error
        return list(self.entries), self.result

    def compare(self, dn: str, attr: str, value: str) -> Result:
        return Result(6 if value == "yes" else 5)


def message(message_id: int, op_name: str, request: object, controls: list[object] | None = None) -> bytes:
    from ldap3.protocol.convert import build_controls_list

    msg = LDAPMessage()
    msg["messageID"] = MessageID(message_id)
    msg["protocolOp"] = ProtocolOp().setComponentByName(op_name, request)
    built = build_controls_list(controls)
    if built is not None:
        msg["controls"] = built
    return bytes(ber_encoder.encode(msg))


def search(
    message_id: int = 1,
    flt: str = "(objectClass=*)",
    size_limit: int = 0,
    time_limit: int = 0,
    controls: list[object] | None = None,
) -> bytes:
    req = search_operation("o=nhs", flt, "SUBTREE", "NEVER", ["cn"], size_limit, time_limit, False, True, False)
    return message(message_id, "searchRequest", req, controls)


def bind(message_id: int = 1, name: str = "", password: str = "") -> bytes:
    kind = "SIMPLE" if name or password else "ANONYMOUS"
    return message(message_id, "bindRequest", bind_operation(3, kind, name, password))


def responses(data: bytes) -> list[tuple[int, str, object]]:
    """Decode a stream of our responses with pyasn1."""
    out = []
    while data:
        msg, data = ber_decoder.decode(data, asn1Spec=LDAPMessage())
        op = msg["protocolOp"]
        out.append((int(msg["messageID"]), op.getName(), msg))
    return out


def code_of(msg: object) -> int:
    return int(msg["protocolOp"].getComponent()["resultCode"])  # type: ignore[index]


def connection(**settings: object) -> tuple[LDAPConnection, RecordingFakeDirectory]:
    directory = RecordingFakeDirectory()
    return LDAPConnection(directory, replace(Settings(), **settings)), directory  # type: ignore[arg-type]


def run(conn: LDAPConnection, data: bytes) -> tuple[bytes, list[object]]:
    """What a trivial I/O layer would write, and the raw events."""
    events = conn.receive_data(data)
    out = b""
    for ev in events:
        if isinstance(ev, (SearchWork, CompareWork)):
            out += conn.perform(ev)
        elif isinstance(ev, (Send, Close, StartTLS)):
            out += ev.data
    return out, events  # type: ignore[return-value]


def test_search_bytes_in_bytes_out() -> None:
    conn, directory = connection()
    out, events = run(conn, search(5))
    assert [type(e) for e in events] == [SearchWork]
    got = responses(out)
    assert [(m, n) for m, n, _ in got] == [(5, "searchResEntry"), (5, "searchResDone")]
    assert code_of(got[1][2]) == 0
    assert directory.calls[0][1:] == (0, 60.0)


def test_message_split_across_reads_and_two_in_one_read() -> None:
    conn, _ = connection()
    data = search(1) + search(2)
    out = b""
    for i in range(len(data)):
        out += run(conn, data[i : i + 1])[0]
    out += run(conn, search(3) + search(4))[0]
    assert [m for m, name, _ in responses(out) if name == "searchResDone"] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [(0, 0, 0), (10, 0, 10), (0, 50, 50), (10, 50, 10), (100, 50, 50)],
)
def test_size_limit_is_the_stricter_of_client_and_server(client: int, server: int, expected: int) -> None:
    conn, directory = connection(ldap_size_limit=server)
    run(conn, search(size_limit=client))
    assert directory.calls[0][1] == expected


def test_time_limit_is_the_stricter_of_client_and_server() -> None:
    conn, directory = connection(ldap_time_limit=60)
    run(conn, search(time_limit=5))
    run(conn, search(time_limit=500))
    assert [c[2] for c in directory.calls] == [5.0, 60.0]


def test_directory_failure_becomes_a_result_not_a_crash() -> None:
    conn, directory = connection()
    directory.error = NotFound("no such base")
    got = responses(run(conn, search(2))[0])
    assert [(m, n) for m, n, _ in got] == [(2, "searchResDone")]
    assert code_of(got[0][2]) == 32
    directory.error = RuntimeError("boom")
    got = responses(run(conn, search(3))[0])
    assert code_of(got[0][2]) == 80


def test_anonymous_and_any_simple_bind_without_configured_account() -> None:
    conn, _ = connection()
    assert code_of(responses(run(conn, bind(1))[0])[0][2]) == 0
    assert code_of(responses(run(conn, bind(2, "cn=anyone,o=nhs", "pw"))[0])[0][2]) == 0
    assert conn.bound_dn == ""


def test_configured_account_is_checked() -> None:
    conn, _ = connection(ldap_bind_dn="cn=reader,o=nhs", ldap_bind_password="s3cret")
    assert code_of(responses(run(conn, bind(1, "cn=reader,o=nhs", "wrong"))[0])[0][2]) == 49
    assert code_of(responses(run(conn, bind(2, "cn=other,o=nhs", "s3cret"))[0])[0][2]) == 49
    assert code_of(responses(run(conn, bind(3, "CN=Reader, O=NHS", "s3cret"))[0])[0][2]) == 0
    assert conn.bound_dn == "cn=reader,o=nhs"
    who = message(4, "extendedReq", extended_operation(WHO_AM_I))
    (_, name, msg) = responses(run(conn, who)[0])[0]
    assert name == "extendedResp" and bytes(msg["protocolOp"].getComponent()["responseValue"]) == b"dn:cn=reader,o=nhs"
    assert code_of(responses(run(conn, bind(5))[0])[0][2]) == 0  # anonymous again
    (_, _, msg) = responses(run(conn, message(6, "extendedReq", extended_operation(WHO_AM_I)))[0])[0]
    assert bytes(msg["protocolOp"].getComponent()["responseValue"]) == b""


def test_unauthenticated_bind_and_sasl_are_refused() -> None:
    conn, _ = connection()
    # ldap3 will not send an unauthenticated bind (name, no password), so it is built by hand
    body = b"\x02\x01\x03" + codec.octets("cn=x,o=nhs") + b"\x80\x00"
    unauthenticated = codec.tlv(b"\x30", b"\x02\x01\x01" + codec.tlv(b"\x60", body))
    assert code_of(responses(run(conn, unauthenticated)[0])[0][2]) == 53
    sasl = message(2, "bindRequest", bind_operation(3, "SASL", "", None, "EXTERNAL", b""))
    assert code_of(responses(run(conn, sasl)[0])[0][2]) == 7
    v2 = message(3, "bindRequest", bind_operation(2, "ANONYMOUS", "", ""))
    assert code_of(responses(run(conn, v2)[0])[0][2]) == 2


def test_write_operations_point_at_the_api() -> None:
    from ldap3.operation.delete import delete_operation

    conn, _ = connection()
    (mid, name, msg) = responses(run(conn, message(9, "delRequest", delete_operation("cn=x,o=nhs")))[0])[0]
    assert (mid, name, code_of(msg)) == (9, "delResponse", 53)
    assert "/api" in str(msg["protocolOp"].getComponent()["diagnosticMessage"])


def test_start_tls() -> None:
    req = message(1, "extendedReq", extended_operation(START_TLS))
    conn, _ = connection()
    (_, _, msg) = responses(run(conn, req)[0])[0]
    assert code_of(msg) == 52  # no certificate configured
    conn = LDAPConnection(RecordingFakeDirectory(), Settings(), tls_available=True)
    out, events = run(conn, req)
    assert [type(e) for e in events] == [StartTLS]
    assert code_of(responses(out)[0][2]) == 0 and conn.tls_active
    (_, _, msg) = responses(run(conn, message(2, "extendedReq", extended_operation(START_TLS)))[0])[0]
    assert code_of(msg) == 1  # already active


def test_start_tls_followed_by_plaintext_disconnects() -> None:
    conn = LDAPConnection(RecordingFakeDirectory(), Settings(), tls_available=True)
    events = conn.receive_data(message(1, "extendedReq", extended_operation(START_TLS)) + search(2))
    assert [type(e) for e in events] == [StartTLS, Close]


def test_unknown_extended_operation_is_protocol_error() -> None:
    conn, _ = connection()
    (_, name, msg) = responses(run(conn, message(1, "extendedReq", extended_operation("1.2.3.4")))[0])[0]
    assert (name, code_of(msg)) == ("extendedResp", 2)


def test_unbind_closes_and_ignores_the_rest() -> None:
    conn, _ = connection()
    unbind = bytes.fromhex("30050201024200")
    out, events = run(conn, unbind + search(3))
    assert out == b"" and [type(e) for e in events] == [Close]
    assert conn.receive_data(search(4)) == []


def test_abandon_drops_the_answer() -> None:
    conn, _ = connection()
    events = conn.receive_data(search(7) + bytes.fromhex("3006020108500107"))
    assert [type(e) for e in events] == [SearchWork, Abandon]
    assert conn.perform(events[0]) == b""  # type: ignore[arg-type]


def test_compare() -> None:
    from ldap3.operation.compare import compare_operation

    conn, _ = connection()
    req = message(3, "compareRequest", compare_operation("cn=a,o=nhs", "cn", "yes", False))
    (mid, name, msg) = responses(run(conn, req)[0])[0]
    assert (mid, name, code_of(msg)) == (3, "compareResponse", 6)


def test_unknown_critical_control_is_refused_known_ones_pass() -> None:
    from ldap3.protocol.controls import build_control

    conn, directory = connection()
    (_, _, msg) = responses(run(conn, search(1, controls=[build_control("1.2.3.9", True, None)]))[0])[0]
    assert code_of(msg) == 12 and not directory.calls
    out, _ = run(conn, search(2, controls=[build_control("1.2.3.9", False, None)]))
    assert code_of(responses(out)[-1][2]) == 0


def test_malformed_search_gets_protocol_error_and_connection_continues() -> None:
    conn, _ = connection()
    bad = bytearray(search(4, "(cn=x)"))
    bad[bad.index(b"\xa3")] = 0xBF & 0xAF  # an unknown filter choice, same length
    (mid, name, msg) = responses(run(conn, bytes(bad))[0])[0]
    assert (mid, name, code_of(msg)) == (4, "searchResDone", 2)
    assert responses(run(conn, search(5))[0])[-1][0] == 5


@pytest.mark.parametrize(
    "data",
    [b"\x04\x00", b"\x30\x80\x00\x00", b"\x30\x03\x02\x01\x01", b"\x30\x05\x02\x01\x01\x7f\x00"],
)
def test_unframeable_input_gets_notice_of_disconnection(data: bytes) -> None:
    conn, _ = connection()
    out, events = run(conn, data)
    assert [type(e) for e in events] == [Close]
    ((mid, name, msg),) = responses(out)
    assert (mid, name, code_of(msg)) == (0, "extendedResp", 2)
    assert str(msg["protocolOp"].getComponent()["responseName"]) == codec.NOTICE_OF_DISCONNECTION
    assert conn.closed


def test_oversized_message_disconnects_before_the_body_arrives() -> None:
    conn, _ = connection(ldap_max_message_bytes=1000)
    out, events = run(conn, b"\x30\x82\x10\x00")
    assert [type(e) for e in events] == [Close] and code_of(responses(out)[0][2]) == 2


def _paged(message_id: int, size: int, cookie: bytes) -> bytes:
    return search(message_id, controls=[paged_search_control(False, size, cookie)])


def _page(out: bytes) -> tuple[int, bytes, int]:
    got = responses(out)
    done = got[-1][2]
    ctl = done["controls"][0]  # type: ignore[index]
    value, _ = ber_decoder.decode(bytes(ctl["controlValue"]), asn1Spec=RealSearchControlValue())
    return len(got) - 1, bytes(value["cookie"]), code_of(done)


def test_paged_results_slice_the_snapshot() -> None:
    conn, directory = connection()
    directory.entries = [SearchEntry(f"cn={i},o=nhs", [("cn", [str(i)])]) for i in range(7)]
    n, cookie, code = _page(run(conn, _paged(1, 3, b""))[0])
    assert (n, code) == (3, 0) and cookie
    n, cookie2, _ = _page(run(conn, _paged(2, 3, cookie))[0])
    assert n == 3 and cookie2 and cookie2 != cookie
    n, cookie3, _ = _page(run(conn, _paged(3, 3, cookie2))[0])
    assert (n, cookie3) == (1, b"")
    assert len(directory.calls) == 1
    # a stale cookie is refused
    (_, _, msg) = responses(run(conn, _paged(4, 3, cookie))[0])[0]
    assert code_of(msg) == 53


def test_paged_results_abandon_with_size_zero() -> None:
    conn, directory = connection()
    directory.entries = [SearchEntry(f"cn={i},o=nhs", []) for i in range(5)]
    _, cookie, _ = _page(run(conn, _paged(1, 2, b""))[0])
    n, cookie2, code = _page(run(conn, _paged(2, 0, cookie))[0])
    assert (n, cookie2, code) == (0, b"", 0)


def test_trickled_bytes_are_not_rescanned() -> None:
    """A client sending a large message a byte at a time costs linear time, not quadratic."""
    import time

    conn, _ = connection()
    body = search(1, flt="(cn=" + "x" * 60000 + ")")
    t0 = time.perf_counter()
    events = []
    for i in range(len(body)):
        events += conn.receive_data(body[i : i + 1])
    assert [type(e) for e in events] == [SearchWork]
    assert time.perf_counter() - t0 < 2.0


def test_abandon_of_a_finished_request_does_not_touch_a_later_reuse_of_its_id() -> None:
    conn, _ = connection()
    out, _ = run(conn, search(7))
    assert responses(out)[-1][0] == 7
    run(conn, bytes.fromhex("3006020108500107"))  # abandon 7, already answered
    out, _ = run(conn, search(7))  # the ID is free again (RFC 4511 §4.1.1.1)
    assert [n for _, n, _ in responses(out)] == ["searchResEntry", "searchResDone"]


def test_abandon_while_the_search_runs_in_a_worker_thread() -> None:
    """The I/O layer may run perform() in a thread; an abandon fed meanwhile drops the answer."""
    conn, directory = connection()
    (work,) = conn.receive_data(search(9))
    original = directory.search

    def slow_search(*args: object) -> object:
        conn.receive_data(bytes.fromhex("3006020108500109"))  # abandon 9 arrives mid-search
        return original(*args)  # type: ignore[arg-type]

    directory.search = slow_search  # type: ignore[method-assign]
    assert conn.perform(work) == b""  # type: ignore[arg-type]


def _valid_stream() -> list[bytes]:
    from ldap3.operation.compare import compare_operation

    return [
        search(1),
        search(2, "(&(a=1)(|(b=2)(!(c=*))))", size_limit=3),
        search(3, controls=[paged_search_control(False, 2, b"")]),
        bind(4),
        message(5, "extendedReq", extended_operation(WHO_AM_I)),
        message(6, "compareRequest", compare_operation("cn=a,o=nhs", "cn", "yes", False)),
        bytes.fromhex("3006020107500103"),  # abandon 3
    ]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_byte_stream_in_any_chunks_yields_events_never_exceptions(data: st.DataObject) -> None:
    """Valid requests and garbage, cut anywhere: receive_data/perform only ever return; Close is final."""
    pieces = data.draw(st.lists(st.sampled_from(_valid_stream()) | st.binary(max_size=24), max_size=12))
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    conn, _ = connection()
    closed = False
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events = conn.receive_data(stream[a:b])
        if closed:
            assert events == []
        for ev in events:
            if isinstance(ev, (SearchWork, CompareWork)):
                assert isinstance(conn.perform(ev), bytes)
            elif isinstance(ev, Close):
                assert ev is events[-1]
                closed = True
