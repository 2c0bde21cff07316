"""Property tests of the BER codec: hostile bytes raise only DecodeError; filters and entries round trip."""

from __future__ import annotations

import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # ldap3 2.9 imports names pyasn1 0.6 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3  # noqa: F401
from ldap3.operation.search import search_operation
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.utils.conv import escape_filter_chars
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.ber import encoder as ber_encoder

from sds_registry.ldap import codec, responses
from sds_registry.ldap.ast import (
    And,
    Equality,
    Filter,
    GreaterOrEqual,
    LessOrEqual,
    Not,
    Or,
    Present,
    SearchEntry,
    SearchRequest,
    Substrings,
)

ATTR = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,15}", fullmatch=True)
# ldap3's filter parser strips surrounding white space, so values keep none.
VALUE = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20).filter(lambda v: v == v.strip())


def _search_message(flt: str, attrs: list[str], message_id: int = 1) -> bytes:
    req = search_operation("ou=services,o=nhs", flt, "SUBTREE", "NEVER", attrs, 0, 0, False, False, False)
    msg = LDAPMessage()
    msg["messageID"] = MessageID(message_id)
    msg["protocolOp"] = ProtocolOp().setComponentByName("searchRequest", req)
    return bytes(ber_encoder.encode(msg))


VALID = [
    _search_message("(&(nhsIDCode=T99999) (objectClass=nhsMhs) (nhsMhsSvcIA=urn:nhs:x-1))", ["nhsMHSEndPoint"]),
    _search_message("(|(!(a=*))(b>=2)(c<=3)(d~=4)(e=x*y*z)(cn:dn:caseExactMatch:=q))", ["*", "+"]),
    bytes.fromhex("300c020101600702010304008000"),  # anonymous bind
    bytes.fromhex("30050201024200"),  # unbind
    bytes.fromhex("301d02010377188016312e332e362e312e342e312e343230332e312e31312e33"),  # WhoAmI
]


def _only_decode_errors(data: bytes) -> None:
    try:
        messages, used = codec.split_messages(data, 4096)
    except codec.DecodeError:
        return
    assert 0 <= used <= len(data)
    for m in messages:
        try:
            codec.decode_message(m)
        except codec.DecodeError:
            pass


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    _only_decode_errors(data)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.data())
def test_mutated_messages_raise_only_decode_error(base: bytes, data: st.DataObject) -> None:
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        i = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and buf:
            del buf[i]
        elif op == "truncate":
            del buf[i:]
    _only_decode_errors(bytes(buf))


# ---- filters: AST -> RFC 4515 text -> ldap3 BER -> our decoder -> the same AST ----------------------------------


def _leaf() -> st.SearchStrategy[Filter]:
    return st.one_of(
        st.builds(Equality, ATTR, VALUE),
        st.builds(GreaterOrEqual, ATTR, VALUE),
        st.builds(LessOrEqual, ATTR, VALUE),
        st.builds(Present, ATTR),
        st.builds(
            Substrings,
            ATTR,
            st.none() | VALUE,
            st.lists(VALUE, max_size=3).map(tuple),
            st.none() | VALUE,
        ).filter(lambda s: s.initial is not None or s.any or s.final is not None),
    )


FILTERS = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4).map(lambda fs: And(tuple(fs))),
        st.lists(inner, min_size=1, max_size=4).map(lambda fs: Or(tuple(fs))),
        inner.map(Not),
    ),
    max_leaves=12,
)


def to_text(f: Filter) -> str:
    e = escape_filter_chars
    if isinstance(f, And):
        return "(&" + "".join(to_text(x) for x in f.filters) + ")"
    if isinstance(f, Or):
        return "(|" + "".join(to_text(x) for x in f.filters) + ")"
    if isinstance(f, Not):
        return "(!" + to_text(f.filter) + ")"
    if isinstance(f, Equality):
        return f"({f.attr}={e(f.value)})"
    if isinstance(f, GreaterOrEqual):
        return f"({f.attr}>={e(f.value)})"
    if isinstance(f, LessOrEqual):
        return f"({f.attr}<={e(f.value)})"
    if isinstance(f, Present):
        return f"({f.attr}=*)"
    assert isinstance(f, Substrings)
    parts = [e(f.initial or ""), *(e(a) for a in f.any), e(f.final or "")]
    return f"({f.attr}=" + "*".join(parts) + ")"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FILTERS, st.lists(ATTR, max_size=5), st.integers(0, 2**31 - 1))
def test_filters_round_trip_from_ldap3_bytes(flt: Filter, attrs: list[str], message_id: int) -> None:
    msg = codec.decode_message(_search_message(to_text(flt), attrs, message_id))
    assert msg.message_id == message_id
    assert isinstance(msg.op, SearchRequest)
    assert msg.op.filter == flt
    assert msg.op.attributes == tuple(attrs)


# ---- entries: our encoder -> pyasn1 decoder -> the same entry ------------------------------------------------------

ENTRIES = st.builds(
    SearchEntry,
    st.text(max_size=300),
    st.lists(st.tuples(ATTR, st.lists(st.text(max_size=200), max_size=4)), max_size=6),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ENTRIES, st.integers(0, 2**31 - 1))
def test_search_entries_round_trip_through_pyasn1(entry: SearchEntry, message_id: int) -> None:
    data = responses.encode_search_entry(message_id, entry)
    assert codec.split_messages(data + b"\x30", 1 << 20) == ([data], len(data))
    msg, rest = ber_decoder.decode(data, asn1Spec=LDAPMessage())
    assert rest == b""
    assert int(msg["messageID"]) == message_id
    op = msg["protocolOp"].getComponent()
    assert bytes(op["object"]).decode() == entry.dn
    got = [(bytes(a["type"]).decode(), [bytes(v).decode() for v in a["vals"]]) for a in op["attributes"]]
    assert got == entry.attributes
