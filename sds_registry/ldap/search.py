"""Search and compare semantics: resolve the base DN in the DIT, walk the scope, apply limits. No SQL here.

Fixed entries (root DSE, cn=Subschema, o=nhs, ou=Services, ou=Organisations) are matched in Python
(evaluate.py); row entries through a Backend's rows/entry (backend.py; directory.py's Directory runs the
SQL). ou=Organisations exists while at least one organisation is registered (slapd on the same data has
no such entry otherwise).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from sds_registry.ldap import ast, dit, dn, evaluate, filters, schema
from sds_registry.ldap.backend import Attrs, Backend, TimeLimitExceeded
from sds_registry.ldap.dit import EntryClass, Selection
from sds_registry.ldap.results import ResultCode

SUCCESS = int(ResultCode.SUCCESS)
TIME_LIMIT = int(ResultCode.TIME_LIMIT_EXCEEDED)
SIZE_LIMIT = int(ResultCode.SIZE_LIMIT_EXCEEDED)
COMPARE_FALSE, COMPARE_TRUE = int(ResultCode.COMPARE_FALSE), int(ResultCode.COMPARE_TRUE)
NO_SUCH_ATTRIBUTE = int(ResultCode.NO_SUCH_ATTRIBUTE)
UNDEFINED_TYPE = int(ResultCode.UNDEFINED_ATTRIBUTE_TYPE)
INAPPROPRIATE_MATCHING = int(ResultCode.INAPPROPRIATE_MATCHING)
NO_SUCH_OBJECT = int(ResultCode.NO_SUCH_OBJECT)
INVALID_DN = int(ResultCode.INVALID_DN_SYNTAX)
UNLIMITED = 2**31 - 1


class _Stop(Exception):
    def __init__(self, code: int, message: str) -> None:
        self.code, self.message = code, message


class _Collector:
    def __init__(self, d: Backend, req: ast.SearchRequest, size_limit: int, time_limit: float) -> None:
        self.d = d
        self.req = req
        self.sel: Selection = dit.selection(tuple(req.attributes))
        self.limit = size_limit if size_limit > 0 else 0
        self.deadline = time.monotonic() + time_limit if time_limit > 0 else 0.0
        self.entries: list[ast.SearchEntry] = []
        self._prepared: tuple[filters.Key, dict[str, Any]] | None = None

    @property
    def prepared(self) -> tuple[filters.Key, dict[str, Any]]:
        if self._prepared is None:
            self._prepared = filters.prepare(self.req.filter, self.d.dialect)
        return self._prepared

    def _check_time(self) -> None:
        if self.deadline and time.monotonic() > self.deadline:
            raise _Stop(TIME_LIMIT, "time limit exceeded")

    def add(self, entry_dn: str, attrs: Attrs, selected: bool = False) -> None:
        if self.limit and len(self.entries) >= self.limit:
            raise _Stop(SIZE_LIMIT, "size limit exceeded")
        if not selected:
            attrs = dit.select_attributes(attrs, self.sel, self.req.types_only)
        elif self.req.types_only:
            attrs = [(n, []) for n, _ in attrs]
        self.entries.append(ast.SearchEntry(entry_dn, dit.present(attrs, self.sel)))

    def fixed(self, entry_dn: str) -> None:
        attrs, mapping = _fixed_entry(entry_dn)
        if evaluate.evaluate(self.req.filter, mapping, entry_dn) is True:
            self.add(entry_dn, attrs)
        self._check_time()

    def rows(self, cls: EntryClass) -> None:
        key, params = self.prepared
        lim = (self.limit - len(self.entries) + 1) if self.limit else UNLIMITED
        found = self.d.rows(cls, key, params, self.sel, lim, self.deadline)
        for entry_dn, attrs in found or ():
            self.add(entry_dn, attrs, selected=True)
        self._check_time()


@cache
def _fixed_entry(entry_dn: str) -> tuple[Attrs, dict[str, list[str]]]:
    """A fixed entry's attributes and, for the evaluator, their mapping: built once, only ever read (add() copies
    what it sends)."""
    if entry_dn in (dit.SERVICES, dit.ORGANISATIONS):
        attrs = dit.ou_entry(entry_dn[3:].split(",")[0], True)
    else:
        attrs = {"": dit.root_dse, dit.SUBSCHEMA: dit.subschema_entry, dit.BASE: dit.base_entry}[entry_dn]()
    return attrs, dit.as_mapping(attrs)


def _services(c: _Collector, scope: ast.Scope) -> None:
    if scope != ast.Scope.ONE:
        c.fixed(dit.SERVICES)
    if scope != ast.Scope.BASE:
        for cls in dit.SERVICE_CLASSES:
            c.rows(cls)


def _organisations(c: _Collector, scope: ast.Scope) -> None:
    if scope != ast.Scope.ONE:
        c.fixed(dit.ORGANISATIONS)
    if scope != ast.Scope.BASE:
        c.rows(dit.ORG)


def _find_row(
    c: _Collector, classes: tuple[EntryClass, ...], value: str, sel: Selection
) -> tuple[bool, tuple[str, Attrs] | None]:
    key, params = c.prepared
    for cls in classes:
        exists, entry = c.d.entry(cls, value, key, params, sel, c.deadline)
        if exists:
            return True, entry
    return False, None


def _leaf_value(rdn: tuple[tuple[str, str], ...]) -> str | None:
    if len(rdn) != 1 or rdn[0][0] != "uniqueidentifier":
        return None
    return rdn[0][1]


def _walk(c: _Collector, key: tuple[Any, ...], scope: ast.Scope) -> ast.Result:
    """Resolve the base and collect; returns the final result (0, or 32 with the matched DN)."""
    d = c.d
    if key == ():
        if scope != ast.Scope.BASE:
            return ast.Result(NO_SUCH_OBJECT, "", "no such object")
        c.fixed("")
        return ast.Result(SUCCESS)
    if key == dit.SUBSCHEMA_KEY:
        if scope != ast.Scope.ONE:
            c.fixed(dit.SUBSCHEMA)
        return ast.Result(SUCCESS)
    if key[-1] != dit.BASE_KEY[0]:
        return ast.Result(NO_SUCH_OBJECT, "", "no such object")
    if len(key) == 1:
        if scope != ast.Scope.ONE:
            c.fixed(dit.BASE)
        if scope != ast.Scope.BASE:
            sub = ast.Scope.SUB if scope == ast.Scope.SUB else ast.Scope.BASE
            _services(c, sub)
            if d.has_organisations():
                _organisations(c, sub)
        return ast.Result(SUCCESS)
    branch = key[-2]
    classes: tuple[EntryClass, ...]
    if branch == dit.SERVICES_KEY[0]:
        parent, classes, walk = dit.SERVICES, dit.SERVICE_CLASSES, _services
    elif branch == dit.ORGANISATIONS_KEY[0] and d.has_organisations():
        parent, classes, walk = dit.ORGANISATIONS, (dit.ORG,), _organisations
    else:
        return ast.Result(NO_SUCH_OBJECT, dit.BASE, "no such object")
    if len(key) == 2:
        walk(c, scope)
        return ast.Result(SUCCESS)
    value = _leaf_value(key[-3])
    if value is None:
        return ast.Result(NO_SUCH_OBJECT, parent, "no such object")
    if len(key) > 3:
        exists, _ = _find_row(c, classes, value, Selection(False, False, frozenset()))
        matched = f"uniqueIdentifier={dn.escape_value(value)},{parent}" if exists else parent
        return ast.Result(NO_SUCH_OBJECT, matched, "no such object")
    exists, entry = _find_row(c, classes, value, c.sel)
    if not exists:
        return ast.Result(NO_SUCH_OBJECT, parent, "no such object")
    if entry is not None and scope != ast.Scope.ONE:
        c.add(*entry, selected=True)
    return ast.Result(SUCCESS)


def run_search(
    d: Backend, req: ast.SearchRequest, size_limit: int, time_limit: float
) -> tuple[list[ast.SearchEntry], ast.Result]:
    try:
        key = dn.normalised_key(req.base)
    except dn.InvalidDN as exc:
        return [], ast.Result(INVALID_DN, "", f"invalid DN: {exc}")
    c = _Collector(d, req, size_limit, time_limit)
    try:
        result = _walk(c, key, req.scope)
    except _Stop as stop:
        return c.entries, ast.Result(stop.code, "", stop.message)
    except TimeLimitExceeded:
        return c.entries, ast.Result(TIME_LIMIT, "", "time limit exceeded")
    return c.entries, result


def run_compare(d: Backend, dn_text: str, attr: str, value: str) -> ast.Result:
    at = schema.lookup(attr)
    if at is None:
        return ast.Result(UNDEFINED_TYPE, "", f"{attr}: attribute type undefined")
    req = ast.SearchRequest(
        dn_text, ast.Scope.BASE, ast.DerefAliases.NEVER, 0, 0, False, ast.Present("objectClass"), ("*", "+")
    )
    entries, result = run_search(d, req, 0, 0)
    if result.code != SUCCESS:
        return result
    if not entries:
        return ast.Result(NO_SUCH_OBJECT, "", "no such object")
    mapping = dit.as_mapping(entries[0].attributes)
    if at.kind is None:
        return ast.Result(INAPPROPRIATE_MATCHING, "", f"{at.name} has no equality matching rule")
    if at.name not in mapping:
        return ast.Result(NO_SUCH_ATTRIBUTE, "", f"the entry has no {at.name}")
    outcome = evaluate.evaluate(ast.Equality(at.name, value), mapping, entries[0].dn)
    if outcome is None:
        return ast.Result(INAPPROPRIATE_MATCHING, "", "the value cannot be compared")
    return ast.Result(COMPARE_TRUE if outcome else COMPARE_FALSE)


def may_be_large(req: ast.SearchRequest, size_limit: int) -> bool:
    """Could this search return a large part of the directory? (The server runs those off its event loop.)

    Cheap for certain: base-scope reads, small size limits, and filters that pin an attribute other than
    objectClass by equality (alone or inside the top AND), as every GP Connect lookup does.
    """
    if req.scope == ast.Scope.BASE or 0 < size_limit <= 100:
        return False
    f = req.filter
    if type(f) is ast.And:
        return not any(type(x) is ast.Equality and x.attr.lower() != "objectclass" for x in f.filters)
    return not (type(f) is ast.Equality and f.attr.lower() != "objectclass")
