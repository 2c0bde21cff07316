"""LDAPv3 responses -> BER bytes (RFC 4511 §4.1.9-§4.14): results, extended responses, search entries. Sans-IO.

SearchResultEntry encoding is the hot path of every search: one bytes object per entry, built from cached
pieces (message ids below 1024, canonical attribute names, the plain success SearchResultDone).
"""

from __future__ import annotations

from collections.abc import Sequence

from sds_registry.ldap.ast import Control, SearchEntry
from sds_registry.ldap.ber import encode_int, encode_length, octets, tlv
from sds_registry.ldap.codec import NOTICE_OF_DISCONNECTION, PAGED_RESULTS

_MSGID: list[bytes] = [encode_int(i) for i in range(1024)]


def _message(message_id: int, op: bytes, controls: bytes = b"") -> bytes:
    mid = _MSGID[message_id] if message_id < 1024 else encode_int(message_id)
    return tlv(b"\x30", mid + op + controls)


def _result_body(code: int, matched_dn: str, message: str) -> bytes:
    return encode_int(code, b"\x0a") + octets(matched_dn) + octets(message)


def encode_result(
    message_id: int,
    response_tag: int,
    code: int,
    matched_dn: str = "",
    message: str = "",
    controls: Sequence[Control] = (),
) -> bytes:
    """An LDAPResult-shaped response (BindResponse, SearchResultDone, ModifyResponse, CompareResponse, ...)."""
    body = tlv(bytes((response_tag,)), _result_body(code, matched_dn, message))
    return _message(message_id, body, encode_controls(controls))


def encode_extended_response(
    message_id: int,
    code: int,
    matched_dn: str = "",
    message: str = "",
    name: str | None = None,
    value: bytes | None = None,
) -> bytes:
    body = _result_body(code, matched_dn, message)
    if name is not None:
        body += tlv(b"\x8a", name.encode("utf-8"))
    if value is not None:
        body += tlv(b"\x8b", value)
    return _message(message_id, tlv(b"\x78", body))


def encode_notice_of_disconnection(code: int, message: str) -> bytes:
    """The unsolicited notification of RFC 4511 §4.4.1 (messageID 0), sent before the server hangs up."""
    return encode_extended_response(0, code, "", message, NOTICE_OF_DISCONNECTION)


def encode_controls(controls: Sequence[Control]) -> bytes:
    if not controls:
        return b""
    parts = []
    for c in controls:
        body = octets(c.oid)
        if c.critical:
            body += b"\x01\x01\xff"
        if c.value is not None:
            body += tlv(b"\x04", c.value)
        parts.append(tlv(b"\x30", body))
    return tlv(b"\xa0", b"".join(parts))


def paged_control(size: int, cookie: bytes) -> Control:
    return Control(PAGED_RESULTS, False, tlv(b"\x30", encode_int(size) + tlv(b"\x04", cookie)))


_NAME_CACHE: dict[str, bytes] = {}
_SUCCESS_DONE = b"\x65\x07\x0a\x01\x00\x04\x00\x04\x00"


def _name(attr: str) -> bytes:
    """Encoded attribute description; the few canonical names are encoded once per process."""
    enc = _NAME_CACHE.get(attr)
    if enc is None:
        enc = octets(attr)
        if len(_NAME_CACHE) < 4096:
            _NAME_CACHE[attr] = enc
    return enc


def _value(v: str) -> bytes:
    raw = v.encode("utf-8")
    return b"\x04" + encode_length(len(raw)) + raw


def encode_search_entry(message_id: int, entry: SearchEntry) -> bytes:
    """One SearchResultEntry message: the hot path of every search."""
    return _entry(_MSGID[message_id] if message_id < 1024 else encode_int(message_id), entry)


def _entry(mid: bytes, entry: SearchEntry) -> bytes:
    """A SearchResultEntry message with the encoded message ID ``mid``."""
    attrs = []
    for name, values in entry.attributes:
        vals = _value(values[0]) if len(values) == 1 else b"".join([_value(v) for v in values])
        attrs.append(tlv(b"\x30", _name(name) + tlv(b"\x31", vals)))
    body = tlv(b"\x64", octets(entry.dn) + tlv(b"\x30", b"".join(attrs)))
    return tlv(b"\x30", mid + body)


def encode_search_done(
    message_id: int, code: int = 0, matched_dn: str = "", message: str = "", controls: Sequence[Control] = ()
) -> bytes:
    if code == 0 and not matched_dn and not message and not controls:
        mid = _MSGID[message_id] if message_id < 1024 else encode_int(message_id)
        return tlv(b"\x30", mid + _SUCCESS_DONE)
    return encode_result(message_id, 0x65, code, matched_dn, message, controls)


def encode_search_response(
    message_id: int,
    entries: Sequence[SearchEntry],
    code: int = 0,
    matched_dn: str = "",
    message: str = "",
    controls: Sequence[Control] = (),
) -> bytes:
    """Every entry then the SearchResultDone, as one buffer for one write."""
    mid = _MSGID[message_id] if message_id < 1024 else encode_int(message_id)  # once: clients count past 1023
    parts = [_entry(mid, e) for e in entries]
    if code == 0 and not matched_dn and not message and not controls:
        parts.append(tlv(b"\x30", mid + _SUCCESS_DONE))
    else:
        parts.append(encode_result(message_id, 0x65, code, matched_dn, message, controls))
    return b"".join(parts)
