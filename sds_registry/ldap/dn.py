"""Distinguished names: RFC 4514 parsing, escaping and the normalised form used to compare them. Pure.

Like slapd, parsing accepts any case of attribute names, spaces around ``,``/``+``/``=`` and ``;`` as
an RDN separator, and refuses an attribute type the schema does not know (invalidDNSyntax).
"""

from __future__ import annotations

import re
from functools import lru_cache

from sds_registry.ldap import schema


class InvalidDN(ValueError):
    """The string is not a distinguished name (LDAP result invalidDNSyntax, 34)."""


#: One attribute-value assertion of an RDN: (canonical attribute name, value).
Ava = tuple[str, str]
Rdn = tuple[Ava, ...]

_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_NUMERICOID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+\Z")
_SPECIAL = ' "#+,;<=>\\'
_HEX = "0123456789abcdefABCDEF"


def _split(text: str, seps: str) -> list[str]:
    """Split on unescaped separators (a backslash escapes the next character)."""
    parts, start, i = [], 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in seps:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(raw: str, dn: str) -> str:
    # Unescaped leading/trailing spaces are insignificant; an escaped trailing space ("\ ") is kept.
    body = raw.lstrip(" ")
    end = len(body)
    while end > 0 and body[end - 1] == " " and not _escaped_at(body, end - 1):
        end -= 1
    body = body[:end]
    if body.startswith("#"):
        return _hex_value(body[1:], dn)
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1 : i + 2]
            if nxt and nxt in _HEX and body[i + 2 : i + 3] and body[i + 2] in _HEX:
                out.append(int(body[i + 1 : i + 3], 16))
                i += 3
                continue
            if nxt and nxt in _SPECIAL:
                out.extend(nxt.encode())
                i += 2
                continue
            raise InvalidDN(f"bad escape in {dn!r}")
        if c in '"<>\x00':
            raise InvalidDN(f"unescaped {c!r} in {dn!r}")
        out.extend(c.encode("utf-8"))
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidDN(f"escaped bytes are not UTF-8 in {dn!r}") from None


def _escaped_at(text: str, index: int) -> bool:
    backslashes = 0
    j = index - 1
    while j >= 0 and text[j] == "\\":
        backslashes += 1
        j -= 1
    return backslashes % 2 == 1


def _hex_value(hexstr: str, dn: str) -> str:
    """``#04...``: the BER encoding of the value; we accept a primitive string (OCTET/UTF8/IA5/Printable)."""
    try:
        data = bytes.fromhex(hexstr)
    except ValueError:
        raise InvalidDN(f"bad hex value in {dn!r}") from None
    if len(data) < 2 or data[0] not in (0x04, 0x0C, 0x13, 0x16) or data[1] & 0x80 or data[1] != len(data) - 2:
        raise InvalidDN(f"unsupported BER value in {dn!r}")
    try:
        return data[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidDN(f"BER value is not UTF-8 in {dn!r}") from None


def parse(dn: str) -> list[Rdn]:
    """The RDNs of ``dn``, leaf first, attribute names canonical; raises InvalidDN."""
    if not dn.strip():
        return []
    rdns: list[Rdn] = []
    for rdn_text in _split(dn, ",;"):
        avas: list[Ava] = []
        for ava_text in _split(rdn_text, "+"):
            name, eq, raw = ava_text.partition("=")
            name = name.strip()
            if not eq or not name:
                raise InvalidDN(f"{dn!r}: RDN {rdn_text.strip()!r} is not attribute=value")
            if name.lower().startswith("oid."):
                name = name[4:]
            if not (_DESCR.match(name) or _NUMERICOID.match(name)):
                raise InvalidDN(f"{dn!r}: {name!r} is not an attribute type")
            at = schema.lookup(name)
            if at is None:
                raise InvalidDN(f"{dn!r}: attribute type {name!r} is undefined")
            value = _unescape(raw, dn)
            if value == "" and not raw.strip().startswith("#"):
                raise InvalidDN(f"{dn!r}: empty value for {name!r}")
            avas.append((at.name, value))
        rdns.append(tuple(avas))
    return rdns


def _norm_value(attr: str, value: str) -> str:
    at = schema.lookup(attr)
    text = " ".join(value.split())
    return text.lower() if at is None or at.kind != schema.EXACT else text


def normalise(rdns: list[Rdn]) -> tuple[tuple[Ava, ...], ...]:
    """A comparable key: names lower case, values case-folded per their matching rule, AVAs sorted."""
    return tuple(tuple(sorted((a.lower(), _norm_value(a, v)) for a, v in rdn)) for rdn in rdns)


@lru_cache(maxsize=1024)
def normalised_key(text: str) -> tuple[tuple[Ava, ...], ...]:
    """normalise(parse(text)), cached: search bases repeat (raises InvalidDN, which is not cached)."""
    return normalise(parse(text))


_PLAIN = re.compile(r'[^,+"\\<>;=#\x00 ]+\Z')


def escape_value(value: str) -> str:
    """RFC 4514 §2.4 escaping of an attribute value for a DN string."""
    if _PLAIN.match(value):
        return value
    out = []
    for i, c in enumerate(value):
        if c in ',+"\\<>;=' or (c == "#" and i == 0) or (c == " " and (i == 0 or i == len(value) - 1)):
            out.append("\\" + c)
        elif c == "\x00":
            out.append("\\00")
        else:
            out.append(c)
    return "".join(out)


def format_dn(rdns: list[Rdn]) -> str:
    return ",".join("+".join(f"{a}={escape_value(v)}" for a, v in rdn) for rdn in rdns)
