"""BER for LDAP (the RFC 4511 §5.1 subset of X.690): tags, lengths, framing, scalar TLVs. Knows no LDAP operation.

No sockets, no LDAP message types, no configuration reads. Decoders take (buffer, start, end) and raise
Malformed on a structural fault, which the caller (codec.py) turns into a DecodeError with context;
split_messages raises FramingError and MessageTooLarge directly. Encoders return complete TLVs as bytes.
"""

from __future__ import annotations

# ---- Errors --------------------------------------------------------------------------------------------------


class DecodeError(Exception):
    """Malformed LDAP input. The base class: the codec raises nothing else on bad bytes."""


class FramingError(DecodeError):
    """The byte stream cannot be split into LDAPMessages (or a message's envelope is broken): disconnect."""


class MessageTooLarge(FramingError):
    """A message longer than the configured maximum."""


class Malformed(Exception):
    """A structural fault inside an element; the codec turns it into a DecodeError with context."""


# ---- Decoding ------------------------------------------------------------------------------------------------


def header(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one tag and definite length at ``pos``: (tag, content start, content end), bounded by ``end``."""
    if pos + 2 > end:
        raise Malformed("truncated element")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise Malformed("multi-byte tags are not used by LDAP")
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0:
            raise Malformed("indefinite length")
        if k > 8 or pos + k > end:
            raise Malformed("bad length")
        n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    cend = pos + n
    if cend > end:
        raise Malformed("length runs past the enclosing element")
    return tag, pos, cend


def expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """Like header, for an element that must carry ``tag``: (content start, content end)."""
    t, s, e = header(buf, pos, end)
    if t != tag:
        raise Malformed(f"expected tag 0x{tag:02x}, got 0x{t:02x}")
    return s, e


def decode_int(buf: bytes, s: int, e: int) -> int:
    if s == e or e - s > 8:
        raise Malformed("bad integer length")
    return int.from_bytes(buf[s:e], "big", signed=True)


def decode_bool(buf: bytes, s: int, e: int) -> bool:
    if e - s != 1:
        raise Malformed("bad boolean")
    return buf[s] != 0


def decode_str(buf: bytes, s: int, e: int) -> str:
    try:
        return buf[s:e].decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("string is not UTF-8") from None


def decode_octets(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    """An OCTET STRING holding UTF-8 text; returns it and the position after it."""
    if pos + 2 <= end and buf[pos] == 0x04 and buf[pos + 1] < 0x80:  # short form: most strings, inlined
        e = pos + 2 + buf[pos + 1]
        if e <= end:
            try:
                return buf[pos + 2 : e].decode("utf-8"), e
            except UnicodeDecodeError:
                raise Malformed("string is not UTF-8") from None
    s, e = expect(buf, pos, end, 0x04)
    return decode_str(buf, s, e), e


# ---- Framing -------------------------------------------------------------------------------------------------


def split_messages(buf: bytes | bytearray, max_size: int) -> tuple[list[bytes], int]:
    """Cut complete LDAPMessages off the front of ``buf``: (messages, bytes consumed). Incomplete tail stays.

    Raises FramingError when the stream cannot be framed (not a SEQUENCE, indefinite or absurd length),
    MessageTooLarge when a message's declared size passes ``max_size``, before its body arrives.
    """
    out: list[bytes] = []
    pos = 0
    total = len(buf)
    while pos < total:
        if buf[pos] != 0x30:
            raise FramingError("an LDAPMessage must start with a SEQUENCE tag")
        if pos + 2 > total:
            break
        n = buf[pos + 1]
        hdr = 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0:
                raise FramingError("indefinite length is not allowed (RFC 4511 §5.1)")
            if k > 8:
                raise FramingError("length of length too large")
            if pos + 2 + k > total:
                break
            n = int.from_bytes(buf[pos + 2 : pos + 2 + k], "big")
            hdr += k
        if hdr + n > max_size:
            raise MessageTooLarge(f"message of {hdr + n} bytes exceeds the limit of {max_size}")
        stop = pos + hdr + n
        if stop > total:
            break
        out.append(bytes(buf[pos:stop]))
        pos = stop
    return out, pos


def message_length(buf: bytes | bytearray) -> int:
    """Total size of the message starting ``buf`` as far as its header tells; 0 while the header is incomplete."""
    if len(buf) < 2:
        return 0
    n = buf[1]
    if not n & 0x80:
        return 2 + n
    k = n & 0x7F
    if len(buf) < 2 + k:
        return 0
    return 2 + k + int.from_bytes(buf[2 : 2 + k], "big")


# ---- Encoding ------------------------------------------------------------------------------------------------

_SMALL_LEN = [bytes((i,)) for i in range(128)]


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return _SMALL_LEN[n]
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    if n < 0x1000000:
        return b"\x83" + n.to_bytes(3, "big")
    return b"\x84" + n.to_bytes(4, "big")


def tlv(tag: bytes, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return tag + _SMALL_LEN[n] + content
    return tag + encode_length(n) + content


def encode_int(n: int, tag: bytes = b"\x02") -> bytes:
    return tlv(tag, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def octets(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return tlv(b"\x04", raw)
