"""RFC 4511 §4.5.1.7 filter evaluation over one in-memory entry, three-valued (True/False/None=Undefined). Pure.

Written from the RFCs (4511, 4515, 4517 matching rules, 4518 insignificant-space handling for
equality/ordering) and slapd's behaviour on the bench schema. The directory uses it for the few
entries that are not rows (o=nhs, ou=Services, the root DSE, cn=Subschema); the tests use it as the
reference the SQL translator (filters.py) must agree with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sds_registry.ldap import ast, dn, schema

#: An entry as the evaluator sees it: canonical attribute name -> values (operational ones included).
Entry = Mapping[str, Sequence[str]]
Tri = bool | None


def prep(value: str) -> str:
    """RFC 4518 §2.6.1 insignificant space handling for equality/ordering of Directory Strings."""
    if "  " in value or value[:1].isspace() or value[-1:].isspace():
        return " ".join(value.split())
    return value


def _values(entry: Entry, at: schema.AttributeType) -> Sequence[str]:
    names = schema.family(at.name)
    if len(names) == 1:
        return entry.get(at.name, ())
    return [v for n in names for v in entry.get(n, ())]


def substring_match(value: str, initial: str | None, any_: Sequence[str], final: str | None) -> bool:
    """Non-overlapping, in order: initial at the start, each any after the previous, final at the end."""
    pos = 0
    if initial is not None:
        if not value.startswith(initial):
            return False
        pos = len(initial)
    for part in any_:
        idx = value.find(part, pos)
        if idx < 0:
            return False
        pos = idx + len(part)
    if final is not None:
        return value.endswith(final) and len(value) - len(final) >= pos
    return True


def _equal(kind: str, stored: Sequence[str], asserted: str) -> Tri:
    if kind == schema.EXACT:
        return asserted in stored
    if kind == schema.IGNORE:
        return asserted.lower() in (v.lower() for v in stored)
    if kind == schema.OBJECT_CLASS:
        wanted = schema.object_class(asserted)
        if wanted is None:
            return None  # a class the schema does not know: Undefined (slapd)
        return wanted in (v.lower() for v in stored)
    if kind == schema.BOOLEAN:
        if asserted not in ("TRUE", "FALSE"):
            return None
        return asserted in stored
    if kind == schema.DN:
        try:
            key = dn.normalise(dn.parse(asserted))
        except dn.InvalidDN:
            return None
        return any(dn.normalise(dn.parse(v)) == key for v in stored)
    return None  # generalizedTime and others: not evaluated here (Undefined)


_EQUALITY = (ast.Equality, ast.Approx)  # made once: ``A | B`` in isinstance() builds a union on every call


def evaluate(f: ast.Filter, entry: Entry, entry_dn: str = "") -> Tri:
    """True, False or None (Undefined) for ``f`` on ``entry``."""
    if isinstance(f, ast.And):
        result: Tri = True
        for sub in f.filters:
            r = evaluate(sub, entry, entry_dn)
            if r is False:
                return False
            if r is None:
                result = None
        return result
    if isinstance(f, ast.Or):
        result = False
        for sub in f.filters:
            r = evaluate(sub, entry, entry_dn)
            if r is True:
                return True
            if r is None:
                result = None
        return result
    if isinstance(f, ast.Not):
        r = evaluate(f.filter, entry, entry_dn)
        return None if r is None else not r
    if isinstance(f, ast.Present):
        at = schema.lookup(f.attr)
        return None if at is None else bool(_values(entry, at))
    if isinstance(f, _EQUALITY):
        at = schema.lookup(f.attr)
        if at is None or at.kind is None:
            return None
        value = prep(f.value) if at.kind in (schema.EXACT, schema.IGNORE) else f.value
        if value == "" and at.kind in (schema.EXACT, schema.IGNORE):
            return None
        stored = _values(entry, at)
        if at.kind in (schema.EXACT, schema.IGNORE) and value not in stored:
            # FALSE at once when the entry has no value (as o=nhs and ou=Services for every GP Connect lookup)
            return bool(stored) and _equal(at.kind, [prep(v) for v in stored], value)
        return _equal(at.kind, stored, value)
    if isinstance(f, ast.Substrings):
        at = schema.lookup(f.attr)
        kind = schema.substr_kind(at)
        if at is None or kind is None:
            return None
        parts = (f.initial, f.any, f.final)
        if kind == schema.IGNORE:
            parts = (_low(f.initial), tuple(a.lower() for a in f.any), _low(f.final))
        for v in _values(entry, at):
            if substring_match(v.lower() if kind == schema.IGNORE else v, *parts):
                return True
        return False
    if isinstance(f, ast.GreaterOrEqual | ast.LessOrEqual):
        at = schema.lookup(f.attr)
        if at is None or at.ordering is None or at.kind != schema.IGNORE:
            return None
        bound = prep(f.value).lower()
        ge = isinstance(f, ast.GreaterOrEqual)
        return any((v.lower() >= bound) if ge else (v.lower() <= bound) for v in _values(entry, at))
    if isinstance(f, ast.Extensible):
        return _extensible(f, entry, entry_dn)
    raise TypeError(f"not a filter: {f!r}")


def _low(text: str | None) -> str | None:
    return None if text is None else text.lower()


def extensible_kind(f: ast.Extensible) -> tuple[schema.AttributeType, str] | None:
    """(attribute type, matching kind) an extensible match applies, or None when it is Undefined here.

    Supported: an attribute with caseExactMatch/caseIgnoreMatch (named or its own EQUALITY rule) on a
    Directory String. Without an attribute type (match every attribute) we answer Undefined.
    """
    if f.attr is None:
        return None
    at = schema.lookup(f.attr)
    if at is None:
        return None
    kind = at.kind if f.matching_rule is None else schema.EQUALITY_RULES.get(f.matching_rule.lower())
    if kind not in (schema.EXACT, schema.IGNORE) or at.syntax != schema.DIRECTORY_STRING:
        return None
    return at, kind


def _extensible(f: ast.Extensible, entry: Entry, entry_dn: str) -> Tri:
    found = extensible_kind(f)
    if found is None:
        return None
    at, kind = found
    value = prep(f.value)
    if value == "":
        return None
    stored = list(_values(entry, at))
    if f.dn_attributes and entry_dn:
        stored += [v for rdn in dn.parse(entry_dn) for a, v in rdn if a == at.name]
    return _equal(kind, [prep(v) for v in stored], value)
