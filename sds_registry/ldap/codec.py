"""LDAPv3 messages <-> ast.py dataclasses (RFC 4511 §4, §5.1). Sans-IO; BER itself is ber.py's, no I/O here.

No sockets, no directory, no configuration reads. Every malformed input raises a DecodeError subclass and
nothing else: FramingError when the message stream cannot be split any more (the connection must end),
RequestError when one framed request is malformed (it gets a protocolError answer of its own type).
Encoding the server's responses is responses.py's.
The BER primitives, framing and errors of ber.py and the request types of ast.py are re-exported
(``X as X``) so that callers keep one import for the wire format.
"""

from __future__ import annotations

from collections.abc import Callable

from sds_registry.ldap.ast import AbandonRequest as AbandonRequest
from sds_registry.ldap.ast import (
    And,
    Approx,
    Control,
    DerefAliases,
    Equality,
    Extensible,
    Filter,
    GreaterOrEqual,
    LessOrEqual,
    Not,
    Or,
    Present,
    Scope,
    SearchRequest,
    Substrings,
)
from sds_registry.ldap.ast import BindRequest as BindRequest
from sds_registry.ldap.ast import CompareRequest as CompareRequest
from sds_registry.ldap.ast import ExtendedRequest as ExtendedRequest
from sds_registry.ldap.ast import Message as Message
from sds_registry.ldap.ast import Request as Request
from sds_registry.ldap.ast import UnbindRequest as UnbindRequest
from sds_registry.ldap.ast import UpdateRequest as UpdateRequest
from sds_registry.ldap.ber import DecodeError as DecodeError
from sds_registry.ldap.ber import FramingError as FramingError
from sds_registry.ldap.ber import Malformed, decode_bool, decode_int, decode_octets, decode_str, expect, header
from sds_registry.ldap.ber import MessageTooLarge as MessageTooLarge
from sds_registry.ldap.ber import encode_int as encode_int
from sds_registry.ldap.ber import encode_length as encode_length
from sds_registry.ldap.ber import message_length as message_length
from sds_registry.ldap.ber import octets as octets
from sds_registry.ldap.ber import split_messages as split_messages
from sds_registry.ldap.ber import tlv as tlv

#: Deepest filter nesting accepted; real clients never pass 5, the limit only bounds recursion.
MAX_FILTER_DEPTH = 64
MAX_INT = 2**31 - 1

# Request tags ([APPLICATION n]; unbind 0x42, delete 0x4A and abandon 0x50 are primitive, the rest constructed)
# and the tag of the response each gets.
# fmt: off
BIND, UNBIND, SEARCH, MODIFY, ADD, DELETE, MODDN, COMPARE, ABANDON, EXTENDED = (
    0x60, 0x42, 0x63, 0x66, 0x68, 0x4A, 0x6C, 0x6E, 0x50, 0x77,
)
RESPONSE_TAG = {
    BIND: 0x61, SEARCH: 0x65, MODIFY: 0x67, ADD: 0x69, DELETE: 0x6B, MODDN: 0x6D, COMPARE: 0x6F, EXTENDED: 0x78,
}
# fmt: on
UPDATE_KINDS = {MODIFY: "modify", ADD: "add", DELETE: "delete", MODDN: "modDN"}

NOTICE_OF_DISCONNECTION = "1.3.6.1.4.1.1466.20036"
PAGED_RESULTS = "1.2.840.113556.1.4.319"


# ---- Errors --------------------------------------------------------------------------------------------------


class RequestError(DecodeError):
    """One framed request is malformed; answer it with protocolError (if it has a response) and go on."""

    def __init__(self, message: str, message_id: int, request_tag: int) -> None:
        super().__init__(message)
        self.message_id = message_id
        self.request_tag = request_tag


# ---- Decoding ------------------------------------------------------------------------------------------------


def decode_message(data: bytes) -> Message:
    """Decode one framed LDAPMessage (as split_messages returns it)."""
    try:
        tag, s, end = header(data, 0, len(data))
        if tag != 0x30 or end != len(data):
            raise Malformed("trailing bytes after the message")
        ms, me = expect(data, s, end, 0x02)
        message_id = decode_int(data, ms, me)
        if not 0 <= message_id <= MAX_INT:
            raise Malformed("messageID out of range")
        tag, os_, oe = header(data, me, end)
    except Malformed as exc:
        raise FramingError(f"bad LDAPMessage envelope: {exc}") from None
    decoder = _OP_DECODERS.get(tag)
    if decoder is None:
        raise FramingError(f"unknown protocolOp tag 0x{tag:02x}")
    try:
        op = decoder(data, os_, oe, tag)
        controls: tuple[Control, ...] = ()
        if oe < end:
            cs, ce = expect(data, oe, end, 0xA0)
            if ce != end:
                raise Malformed("trailing bytes after controls")
            controls = _decode_controls(data, cs, ce)
    except Malformed as exc:
        raise RequestError(str(exc), message_id, tag) from None
    except RecursionError:
        raise RequestError("filter nested too deeply", message_id, tag) from None
    return Message(message_id, op, controls)


def _decode_controls(buf: bytes, pos: int, end: int) -> tuple[Control, ...]:
    out = []
    while pos < end:
        s, e = expect(buf, pos, end, 0x30)
        pos = e
        oid, p = decode_octets(buf, s, e)
        critical = False
        value = None
        if p < e and buf[p] == 0x01:
            bs, be = expect(buf, p, e, 0x01)
            critical = decode_bool(buf, bs, be)
            p = be
        if p < e:
            vs, ve = expect(buf, p, e, 0x04)
            value = bytes(buf[vs:ve])
            p = ve
        if p != e:
            raise Malformed("trailing bytes in a control")
        out.append(Control(oid, critical, value))
    return tuple(out)


def _bind(buf: bytes, s: int, e: int, tag: int) -> BindRequest:
    vs, ve = expect(buf, s, e, 0x02)
    version = decode_int(buf, vs, ve)
    name, p = decode_octets(buf, ve, e)
    atag, as_, ae = header(buf, p, e)
    if ae != e:
        raise Malformed("trailing bytes in BindRequest")
    if atag == 0x80:
        return BindRequest(version, name, bytes(buf[as_:ae]))
    if atag == 0xA3:
        mechanism, p = decode_octets(buf, as_, ae)
        if p < ae:
            expect(buf, p, ae, 0x04)
        return BindRequest(version, name, None, mechanism)
    raise Malformed("unknown authentication choice")


def _unbind(buf: bytes, s: int, e: int, tag: int) -> UnbindRequest:
    if s != e:
        raise Malformed("UnbindRequest must be empty")
    return UnbindRequest()


def _abandon(buf: bytes, s: int, e: int, tag: int) -> AbandonRequest:
    return AbandonRequest(decode_int(buf, s, e))


def _compare(buf: bytes, s: int, e: int, tag: int) -> CompareRequest:
    dn, p = decode_octets(buf, s, e)
    as_, ae = expect(buf, p, e, 0x30)
    if ae != e:
        raise Malformed("trailing bytes in CompareRequest")
    attr, p = decode_octets(buf, as_, ae)
    value, p = decode_octets(buf, p, ae)
    if p != ae:
        raise Malformed("trailing bytes in AttributeValueAssertion")
    return CompareRequest(dn, attr, value)


def _extended(buf: bytes, s: int, e: int, tag: int) -> ExtendedRequest:
    ns, ne = expect(buf, s, e, 0x80)
    name = decode_str(buf, ns, ne)
    value = None
    if ne < e:
        vs, ve = expect(buf, ne, e, 0x81)
        if ve != e:
            raise Malformed("trailing bytes in ExtendedRequest")
        value = bytes(buf[vs:ve])
    return ExtendedRequest(name, value)


def _update(buf: bytes, s: int, e: int, tag: int) -> UpdateRequest:
    if tag == DELETE:
        dn = decode_str(buf, s, e)
    else:
        dn, _ = decode_octets(buf, s, e)
    return UpdateRequest(UPDATE_KINDS[tag], dn, tag)


def _search(buf: bytes, s: int, e: int, tag: int) -> SearchRequest:
    base, p = decode_octets(buf, s, e)
    if (p + 15 <= e and buf[p : p + 2] == b"\x0a\x01" and buf[p + 3 : p + 5] == b"\x0a\x01"
            and buf[p + 6 : p + 8] == b"\x02\x01" and buf[p + 9 : p + 11] == b"\x02\x01"
            and buf[p + 12 : p + 14] == b"\x01\x01"):  # fmt: skip
        # scope, derefAliases, sizeLimit, timeLimit and typesOnly each in one content byte, as clients send them
        # (ldapsearch, ldap3, the GP Connect lookups): read in place. Anything else takes the general path.
        scope_n, deref_n, size_limit, time_limit = buf[p + 2], buf[p + 5], buf[p + 8], buf[p + 11]
        if scope_n > 2 or deref_n > 3:  # a first byte from 0x80 is a negative number: out of range too
            raise Malformed("scope or derefAliases out of range")
        if size_limit >= 0x80 or time_limit >= 0x80:
            raise Malformed("sizeLimit or timeLimit out of range")
        return _search_rest(buf, p + 15, e, base, scope_n, deref_n, size_limit, time_limit, buf[p + 14] != 0)
    ts, te = expect(buf, p, e, 0x0A)
    scope_n = decode_int(buf, ts, te)
    ts, te = expect(buf, te, e, 0x0A)
    deref_n = decode_int(buf, ts, te)
    ts, te = expect(buf, te, e, 0x02)
    size_limit = decode_int(buf, ts, te)
    ts, te = expect(buf, te, e, 0x02)
    time_limit = decode_int(buf, ts, te)
    ts, te = expect(buf, te, e, 0x01)
    types_only = decode_bool(buf, ts, te)
    if not (0 <= scope_n <= 2 and 0 <= deref_n <= 3):
        raise Malformed("scope or derefAliases out of range")
    if not (0 <= size_limit <= MAX_INT and 0 <= time_limit <= MAX_INT):
        raise Malformed("sizeLimit or timeLimit out of range")
    return _search_rest(buf, te, e, base, scope_n, deref_n, size_limit, time_limit, types_only)


def _search_rest(buf: bytes, p: int, e: int, base: str, scope_n: int, deref_n: int, size_limit: int,
                 time_limit: int, types_only: bool) -> SearchRequest:  # fmt: skip
    """The filter and the attribute list, after the scalar fields."""
    flt, p = _filter(buf, p, e, 0)
    ls, le = expect(buf, p, e, 0x30)
    if le != e:
        raise Malformed("trailing bytes in SearchRequest")
    attrs = []
    p = ls
    while p < le:
        a, p = decode_octets(buf, p, le)
        attrs.append(a)
    return SearchRequest(
        base, _SCOPES[scope_n], _DEREFS[deref_n], size_limit, time_limit, types_only, flt, tuple(attrs)
    )


_SCOPES = tuple(Scope)
_DEREFS = tuple(DerefAliases)


def _ava(buf: bytes, s: int, e: int) -> tuple[str, str]:
    attr, p = decode_octets(buf, s, e)
    value, p = decode_octets(buf, p, e)
    if p != e:
        raise Malformed("trailing bytes in AttributeValueAssertion")
    return attr, value


def _filter(buf: bytes, pos: int, end: int, depth: int) -> tuple[Filter, int]:
    """Decode one Filter at ``pos``; returns it and the position after it."""
    if depth > MAX_FILTER_DEPTH:
        raise Malformed("filter nested too deeply")
    tag = buf[pos] if pos < end else 0
    if tag == 0xA3 and pos + 2 <= end and buf[pos + 1] < 0x80 and (e := pos + 2 + buf[pos + 1]) <= end:
        return Equality(*_ava(buf, pos + 2, e)), e  # the usual leaf, short form: no header() call
    tag, s, e = header(buf, pos, end)
    if tag == 0xA3:
        return Equality(*_ava(buf, s, e)), e
    if tag == 0xA0 or tag == 0xA1:
        subs = []
        p = s
        while p < e:
            f, p = _filter(buf, p, e, depth + 1)
            subs.append(f)
        return (And(tuple(subs)) if tag == 0xA0 else Or(tuple(subs))), e
    if tag == 0x87:
        return Present(decode_str(buf, s, e)), e
    if tag == 0xA2:
        f, p = _filter(buf, s, e, depth + 1)
        if p != e:
            raise Malformed("NOT holds exactly one filter")
        return Not(f), e
    if tag == 0xA4:
        return _substrings(buf, s, e), e
    if tag == 0xA5:
        return GreaterOrEqual(*_ava(buf, s, e)), e
    if tag == 0xA6:
        return LessOrEqual(*_ava(buf, s, e)), e
    if tag == 0xA8:
        return Approx(*_ava(buf, s, e)), e
    if tag == 0xA9:
        return _extensible(buf, s, e), e
    raise Malformed(f"unknown filter choice 0x{tag:02x}")


def _substrings(buf: bytes, s: int, e: int) -> Substrings:
    attr, p = decode_octets(buf, s, e)
    ls, le = expect(buf, p, e, 0x30)
    if le != e or ls == le:
        raise Malformed("substrings needs at least one component")
    initial: str | None = None
    final: str | None = None
    anys: list[str] = []
    p = ls
    first = True
    while p < le:
        if final is not None:
            raise Malformed("final must be the last substring")
        t, cs, ce = header(buf, p, le)
        v = decode_str(buf, cs, ce)
        if t == 0x80 and first:
            initial = v
        elif t == 0x81:
            anys.append(v)
        elif t == 0x82:
            final = v
        else:
            raise Malformed("bad substring component")
        first = False
        p = ce
    return Substrings(attr, initial, tuple(anys), final)


def _extensible(buf: bytes, s: int, e: int) -> Extensible:
    rule: str | None = None
    attr: str | None = None
    value: str | None = None
    dn_attributes = False
    p = s
    last = 0
    while p < e:
        t, cs, ce = header(buf, p, e)
        if t <= last:
            raise Malformed("extensibleMatch components out of order")
        last = t
        if t == 0x81:
            rule = decode_str(buf, cs, ce)
        elif t == 0x82:
            attr = decode_str(buf, cs, ce)
        elif t == 0x83:
            value = decode_str(buf, cs, ce)
        elif t == 0x84:
            dn_attributes = decode_bool(buf, cs, ce)
        else:
            raise Malformed("bad extensibleMatch component")
        p = ce
    if value is None or (rule is None and attr is None):
        raise Malformed("extensibleMatch needs a value and a rule or a type")
    return Extensible(rule, attr, value, dn_attributes)


_OP_DECODERS: dict[int, Callable[[bytes, int, int, int], Request]] = {
    BIND: _bind,
    UNBIND: _unbind,
    SEARCH: _search,
    ABANDON: _abandon,
    COMPARE: _compare,
    EXTENDED: _extended,
    MODIFY: _update,
    ADD: _update,
    DELETE: _update,
    MODDN: _update,
}


def decode_paged_control(value: bytes | None) -> tuple[int, bytes]:
    """RFC 2696 realSearchControlValue: (page size, cookie). Raises DecodeError when malformed."""
    if value is None:
        raise DecodeError("paged results control without a value")
    try:
        s, e = expect(value, 0, len(value), 0x30)
        if e != len(value):
            raise Malformed("trailing bytes")
        is_, ie = expect(value, s, e, 0x02)
        size = decode_int(value, is_, ie)
        cs, ce = expect(value, ie, e, 0x04)
        if ce != e or not 0 <= size <= MAX_INT:
            raise Malformed("bad paged results value")
    except Malformed as exc:
        raise DecodeError(f"bad paged results control: {exc}") from None
    return size, bytes(value[cs:ce])
