"""RFC 4515 filter strings <-> the filter AST (ast.py). Pure.

Tolerates what ldapsearch users type and the GP Connect pages print: whitespace between
sub-filters (``(&(a=b) (c=d))``) and a bare filter without its outer parentheses (``a=b``).
"""

from __future__ import annotations

from sds_registry.ldap import ast


class FilterSyntaxError(ValueError):
    pass


_HEX = "0123456789abcdefABCDEF"


def _unescape(raw: str, text: str) -> str:
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            pair = raw[i + 1 : i + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                out.append(int(pair, 16))
                i += 3
                continue
            if pair[:1] and pair[0] in "*()\\":  # legacy RFC 2254 style escape, as libldap accepts
                out.extend(pair[0].encode())
                i += 2
                continue
            raise FilterSyntaxError(f"bad escape in {text!r}")
        if c in "()":
            raise FilterSyntaxError(f"unescaped {c!r} in a value of {text!r}")
        out.extend(c.encode("utf-8"))
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise FilterSyntaxError(f"escaped bytes are not UTF-8 in {text!r}") from None


def _split_star(raw: str) -> list[str]:
    parts, start, i = [], 0, 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == "*":
            parts.append(raw[start:i])
            start = i + 1
        i += 1
    parts.append(raw[start:])
    return parts


def _attr(name: str, text: str) -> str:
    name = name.strip()
    if not name or any(c in name for c in " ()=*\\"):
        raise FilterSyntaxError(f"bad attribute description {name!r} in {text!r}")
    return name


def _item(body: str, text: str) -> ast.Filter:
    eq = body.find("=")
    if eq <= 0:
        raise FilterSyntaxError(f"no operator in ({body}) of {text!r}")
    left, raw = body[:eq], body[eq + 1 :]
    if left.endswith(":"):
        return _extensible(left[:-1], raw, text)
    if left.endswith(("~", ">", "<")):
        op, attr = left[-1], _attr(left[:-1], text)
        value = _unescape(raw, text)
        if op == "~":
            return ast.Approx(attr, value)
        return ast.GreaterOrEqual(attr, value) if op == ">" else ast.LessOrEqual(attr, value)
    attr = _attr(left, text)
    if raw == "*":
        return ast.Present(attr)
    parts = _split_star(raw)
    if len(parts) == 1:
        return ast.Equality(attr, _unescape(raw, text))
    initial, *middle, final = parts
    if any(p == "" for p in middle):
        raise FilterSyntaxError(f"empty substring in ({body}) of {text!r}")
    return ast.Substrings(
        attr,
        _unescape(initial, text) if initial else None,
        tuple(_unescape(p, text) for p in middle),
        _unescape(final, text) if final else None,
    )


def _extensible(left: str, raw: str, text: str) -> ast.Filter:
    pieces = left.split(":")
    attr = pieces[0].strip() or None
    dn_attrs = False
    rule = None
    for p in pieces[1:]:
        if p.lower() == "dn" and not dn_attrs and rule is None:
            dn_attrs = True
        elif p and rule is None:
            rule = p
        else:
            raise FilterSyntaxError(f"bad extensible match {left!r} in {text!r}")
    if attr is None and rule is None:
        raise FilterSyntaxError(f"extensible match needs an attribute or a rule in {text!r}")
    return ast.Extensible(rule, _attr(attr, text) if attr else None, _unescape(raw, text), dn_attrs)


def parse_filter(text: str) -> ast.Filter:
    s = text.strip()
    if not s.startswith("("):
        s = f"({s})"
    f, end = _parse(s, 0, text)
    if s[end:].strip():
        raise FilterSyntaxError(f"trailing characters after the filter in {text!r}")
    return f


def _parse(s: str, i: int, text: str) -> tuple[ast.Filter, int]:
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s) or s[i] != "(":
        raise FilterSyntaxError(f"expected '(' at {i} in {text!r}")
    i += 1
    while i < len(s) and s[i] == " ":
        i += 1
    if i < len(s) and s[i] in "&|!":
        op = s[i]
        i += 1
        subs: list[ast.Filter] = []
        while True:
            while i < len(s) and s[i] == " ":
                i += 1
            if i >= len(s):
                raise FilterSyntaxError(f"unbalanced parentheses in {text!r}")
            if s[i] == ")":
                break
            sub, i = _parse(s, i, text)
            subs.append(sub)
        i += 1
        if op == "!":
            if len(subs) != 1:
                raise FilterSyntaxError(f"'!' takes exactly one filter in {text!r}")
            return ast.Not(subs[0]), i
        if not subs and op in "&|":
            return (ast.And(()) if op == "&" else ast.Or(())), i  # RFC 4526 absolute true/false
        return (ast.And(tuple(subs)) if op == "&" else ast.Or(tuple(subs))), i
    j = i
    while j < len(s) and s[j] != ")":
        if s[j] == "(":
            raise FilterSyntaxError(f"unexpected '(' in {text!r}")
        j += 2 if s[j] == "\\" else 1
    if j >= len(s):
        raise FilterSyntaxError(f"unbalanced parentheses in {text!r}")
    return _item(s[i:j], text), j + 1


_ESCAPES = {ord(c): f"\\{ord(c):02x}" for c in "*()\\\x00"}


def escape(value: str) -> str:
    """RFC 4515 §3 escaping of an assertion value."""
    return value.translate(_ESCAPES)


def format_filter(f: ast.Filter) -> str:
    """The RFC 4515 string of a filter (inverse of parse_filter)."""
    if isinstance(f, ast.Equality):  # first: every GP Connect lookup is an AND of equalities (a line per search)
        return f"({f.attr}={f.value.translate(_ESCAPES)})"
    if isinstance(f, ast.And):
        return "(&" + "".join([f"({x.attr}={x.value.translate(_ESCAPES)})" if type(x) is ast.Equality
                               else format_filter(x) for x in f.filters]) + ")"  # fmt: skip
    if isinstance(f, ast.Or):
        return "(|" + "".join(format_filter(x) for x in f.filters) + ")"
    if isinstance(f, ast.Not):
        return "(!" + format_filter(f.filter) + ")"
    if isinstance(f, ast.Present):
        return f"({f.attr}=*)"
    if isinstance(f, ast.Approx):
        return f"({f.attr}~={escape(f.value)})"
    if isinstance(f, ast.GreaterOrEqual):
        return f"({f.attr}>={escape(f.value)})"
    if isinstance(f, ast.LessOrEqual):
        return f"({f.attr}<={escape(f.value)})"
    if isinstance(f, ast.Substrings):
        mid = "".join(escape(a) + "*" for a in f.any)
        return f"({f.attr}={escape(f.initial or '')}*{mid}{escape(f.final or '')})"
    if isinstance(f, ast.Extensible):
        left = (f.attr or "") + (":dn" if f.dn_attributes else "") + (f":{f.matching_rule}" if f.matching_rule else "")
        return f"({left}:={escape(f.value)})"
    raise TypeError(f"not a filter: {f!r}")
