"""RFC 4515 filter AST -> SQLAlchemy expression. Pure. Undefined follows RFC 4511 §4.5.1.7.

Two steps, so that translated SQL can be cached per filter *shape*:

1. ``prepare(filter, dialect)`` walks the AST once and returns a hashable shape (``Key``) whose leaves
   name bind parameters ``p0, p1, ...`` and the parameter values (already case-folded, or turned into
   LIKE/GLOB patterns). Whatever the translation depends on besides the values (attribute, matching
   kind, whether a caseIgnore value has cased letters, the object class asserted) is in the shape.
2. ``translate(key, view, dialect)`` turns a shape into two predicates for one entry class:
   TRUE-where and FALSE-where (a row where neither holds is Undefined). NOT swaps them, AND/OR
   combine them by Kleene logic, and constants fold, so e.g. ``(objectClass=nhsMhs)`` makes the
   nhsAs query ``false`` and it is never run. Every leaf predicate is null-safe (never SQL NULL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    String,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from sds_registry.ldap import ast, dn, evaluate, schema

Key = tuple[Any, ...]
Pred = bool | ColumnElement[bool]
UNDEFINED: Key = ("U",)
#: A leaf FALSE for every stored entry (an assertion value no row can hold); NOT makes it TRUE, unlike Undefined.
NEVER: Key = ("F",)


# ---- how an entry class holds each attribute ---------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    """A column of the entry's own row (``integer``: an INTEGER column shown as its decimal string)."""

    column: Any
    nullable: bool = True
    integer: bool = False
    upper: bool = False  # values are validated upper case: caseIgnore equality is col = upper(value), indexable


@dataclass(frozen=True)
class Child:
    """A multi-valued attribute: rows of ``table`` whose ``fk`` is the entry's id, value in ``value``."""

    table: Any
    fk: Any
    value: Any


@dataclass(frozen=True)
class Const:
    """The same values on every entry of the class (objectClass, hasSubordinates, ...)."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class EntryDN:
    """entryDN: ``<rdn attr>=<key column>,<parent>``."""


@dataclass(frozen=True)
class Opaque:
    """Present on every entry but not matched in filters here (timestamps): equality/ordering Undefined."""


Source = Col | Child | Const | EntryDN | Opaque


@dataclass(frozen=True)
class View:
    """One entry class as filters see it: table, id and key columns, and each attribute's source."""

    name: str
    id: Any
    key: Any  # the column holding the RDN value (uniqueIdentifier)
    parent: tuple[Any, ...]  # normalised DN of the parent entry
    attrs: Mapping[str, Source]


# ---- step 1: shape and parameters --------------------------------------------------------------------------


def _like(parts: list[str]) -> str:
    return "%".join(p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for p in parts)


def _glob(parts: list[str]) -> str:
    return "*".join(p.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]") for p in parts)


class _Prep:
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.params: dict[str, Any] = {}

    def _nul_unstorable(self, value: str) -> bool:
        """PostgreSQL text holds no NUL (and refuses one as a parameter): no stored value contains it."""
        return self.dialect == "postgresql" and "\x00" in value

    def _without_nul(self, op: str, value: str) -> str:
        """An ordering value without NUL that orders every NUL-free string as ``value`` does: with v the part
        before the first NUL, s <= v+NUL... iff s <= v, and s >= v+NUL... iff s > v iff s >= v+U+0001."""
        if not self._nul_unstorable(value):
            return value
        head = value.split("\x00", 1)[0]
        return head if op == "le" else head + "\x01"

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def walk(self, f: ast.Filter) -> Key:
        if isinstance(f, ast.Equality):  # first: every GP Connect lookup is an AND of equalities
            at = schema.lookup(f.attr)
            return UNDEFINED if at is None else self.equality(at, at.kind, f.value, None)
        if isinstance(f, ast.And):
            return ("&", *[self.walk(x) for x in f.filters])
        if isinstance(f, ast.Or):
            return ("|", *(self.walk(x) for x in f.filters))
        if isinstance(f, ast.Not):
            return ("!", self.walk(f.filter))
        if isinstance(f, ast.Present):
            at = schema.lookup(f.attr)
            return UNDEFINED if at is None else ("pr", at.name)
        if isinstance(f, ast.Approx):
            at = schema.lookup(f.attr)
            return UNDEFINED if at is None else self.equality(at, at.kind, f.value, None)
        if isinstance(f, ast.Substrings):
            return self.substrings(f)
        if isinstance(f, ast.GreaterOrEqual | ast.LessOrEqual):
            at = schema.lookup(f.attr)
            if at is None or at.ordering is None or at.kind != schema.IGNORE:
                return UNDEFINED
            op = "ge" if isinstance(f, ast.GreaterOrEqual) else "le"
            return (op, at.name, self.param(self._without_nul(op, evaluate.prep(f.value).lower())))
        if isinstance(f, ast.Extensible):
            found = evaluate.extensible_kind(f)
            if found is None:
                return UNDEFINED
            at, kind = found
            return self.equality(at, kind, f.value, f.value if f.dn_attributes else None)
        raise TypeError(f"not a filter: {f!r}")

    def equality(self, at: schema.AttributeType, kind: str | None, raw: str, dn_value: str | None) -> Key:
        if kind == schema.EXACT or kind == schema.IGNORE:
            value = evaluate.prep(raw)
            if value == "":
                return UNDEFINED
            if kind == schema.EXACT:
                caseless, folded = True, value
            else:
                folded = value.lower()
                caseless = folded == value.upper()  # no cased letters: the shape may use a plain comparison
            if self.dialect == "postgresql" and "\x00" in folded:  # _nul_unstorable, inlined
                return NEVER
            name = f"p{len(self.params)}"  # param(), inlined
            self.params[name] = folded
            return ("eq", at.name, kind, caseless, name, None if dn_value is None else folded)
        if kind == schema.OBJECT_CLASS:  # a class the schema does not know: Undefined, as slapd
            oc = schema.object_class(raw)
            return UNDEFINED if oc is None else ("oc", at.name, oc)
        if kind == schema.BOOLEAN:
            return ("bool", at.name, raw) if raw in ("TRUE", "FALSE") else UNDEFINED
        if kind == schema.DN:
            try:
                return ("dn", at.name, dn.normalise(dn.parse(raw)))
            except dn.InvalidDN:
                return UNDEFINED
        return UNDEFINED

    def substrings(self, f: ast.Substrings) -> Key:
        at = schema.lookup(f.attr)
        kind = schema.substr_kind(at)
        if at is None or kind is None:
            return UNDEFINED
        parts = [f.initial or "", *f.any, f.final or ""]
        if kind == schema.IGNORE:
            parts = [p.lower() for p in parts]
        if any(self._nul_unstorable(p) for p in parts):
            return NEVER
        glob = kind == schema.EXACT and self.dialect == "sqlite"
        return ("sub", at.name, kind, glob, self.param(_glob(parts) if glob else _like(parts)))


def prepare(f: ast.Filter, dialect: str) -> tuple[Key, dict[str, Any]]:
    """The filter's shape and its bind parameter values (see the module docstring)."""
    p = _Prep(dialect)
    return p.walk(f), p.params


# ---- step 2: shape -> (TRUE-where, FALSE-where) for one view -----------------------------------------------


def _and(preds: list[Pred]) -> Pred:
    if any(p is False for p in preds):
        return False
    rest = [p for p in preds if p is not True]
    if not rest:
        return True
    return rest[0] if len(rest) == 1 else and_(*rest)  # type: ignore[arg-type]


def _or(preds: list[Pred]) -> Pred:
    if any(p is True for p in preds):
        return True
    rest = [p for p in preds if p is not False]
    if not rest:
        return False
    return rest[0] if len(rest) == 1 else or_(*rest)  # type: ignore[arg-type]


def _not(p: Pred) -> Pred:
    return (not p) if isinstance(p, bool) else not_(p)


def to_sql(p: Pred) -> ColumnElement[bool]:
    return (true() if p else false()) if isinstance(p, bool) else p


class _Translator:
    def __init__(self, view: View, dialect: str) -> None:
        self.view = view
        self.dialect = dialect
        self._binds: dict[str, Any] = {}

    def both(self, key: Key) -> tuple[Pred, Pred]:
        op = key[0]
        if op in ("&", "|"):
            pairs = [self.both(k) for k in key[1:]]
            ts, fs = [t for t, _ in pairs], [f for _, f in pairs]
            return (_and(ts), _or(fs)) if op == "&" else (_or(ts), _and(fs))
        if op == "!":
            t, f = self.both(key[1])
            return f, t
        if op == "U":
            return False, False
        if op == "F":
            return False, True
        t = self.leaf(key)
        return t, _not(t)

    def leaf(self, key: Key) -> Pred:
        names = schema.family(key[1])
        if len(names) == 1:
            return self._leaf(key, key[1])
        return _or([self._leaf(key, name) for name in names])  # e.g. (name=x) matches o, ou, cn, l

    def _leaf(self, key: Key, attr: str) -> Pred:
        op = key[0]
        src = self.view.attrs.get(attr)
        if op == "pr":
            if src is None:
                return False
            if isinstance(src, Col):
                return src.column.isnot(None) if src.nullable else True
            if isinstance(src, Child):
                return self._exists(src, None)
            return bool(src.values) if isinstance(src, Const) else True
        if op == "oc":
            return isinstance(src, Const) and key[2] is not None and key[2] in (v.lower() for v in src.values)
        if op == "bool":
            return isinstance(src, Const) and key[2] in src.values
        if op == "dn":
            return self._dn(src, key[2])
        if op == "eq":
            _, _, kind, caseless, pname, dn_value = key
            pred = self._compare(src, kind == schema.IGNORE and not caseless, "eq", pname)
            if dn_value is not None:
                pred = _or([pred, self._dn_attr(attr, dn_value)])
            return pred
        if op in ("ge", "le", "sub"):
            if op == "sub":
                return self._compare(src, key[2] == schema.IGNORE, "glob" if key[3] else "like", key[4])
            return self._compare(src, True, op, key[2])
        raise ValueError(f"bad filter shape {key!r}")

    def _value_expr(self, column: Any, integer: bool, lower: bool) -> Any:
        expr = cast(column, String) if integer else column
        return func.lower(expr) if lower else expr

    def _bind(self, pname: str) -> Any:
        param = self._binds.get(pname)
        if param is None:
            param = self._binds[pname] = bindparam(pname, type_=String)
        return param

    def _cmp(self, expr: Any, op: str, pname: str) -> ColumnElement[bool]:
        param = self._bind(pname)
        if op == "eq":
            return expr == param  # type: ignore[no-any-return]
        if op == "like":
            return expr.like(param, escape="\\")  # type: ignore[no-any-return]
        if op == "glob":
            return expr.op("GLOB", is_comparison=True)(param)  # type: ignore[no-any-return]
        if self.dialect == "postgresql":
            expr = expr.collate("C")  # caseIgnoreOrderingMatch orders by code point, not by locale
        return (expr >= param) if op == "ge" else (expr <= param)  # type: ignore[no-any-return]

    def _compare(self, src: Source | None, lower: bool, op: str, pname: str) -> Pred:
        if src is None:
            return False
        if isinstance(src, Col) and src.upper and lower and op == "eq":
            return src.column == func.upper(self._bind(pname))  # type: ignore[no-any-return]
        if isinstance(src, Col):
            pred = self._cmp(self._value_expr(src.column, src.integer, lower), op, pname)
            return and_(src.column.isnot(None), pred) if src.nullable else pred
        if isinstance(src, Child):
            return self._exists(src, self._cmp(self._value_expr(src.value, False, lower), op, pname))
        return False  # constants are only objectClass-like, boolean or DN valued: handled by their own ops

    def _exists(self, src: Child, cond: ColumnElement[bool] | None) -> ColumnElement[bool]:
        where = src.fk == self.view.id
        return exists(select(literal_column("1")).where(where if cond is None else and_(where, cond)))

    def _dn(self, src: Source | None, wanted: tuple[Any, ...]) -> Pred:
        if isinstance(src, Const):
            return any(dn.normalise(dn.parse(v)) == wanted for v in src.values)
        if isinstance(src, EntryDN):
            if len(wanted) != len(self.view.parent) + 1 or tuple(wanted[1:]) != self.view.parent:
                return False
            leaf = wanted[0]
            if len(leaf) != 1 or leaf[0][0] != "uniqueidentifier":
                return False
            return func.lower(self.view.key) == literal(leaf[0][1])  # type: ignore[no-any-return]
        return False

    def _dn_attr(self, attr: str, folded: str) -> Pred:
        """extensible ``:dn:``: also match the entry's DN values of ``attr`` (key column and parents)."""
        preds: list[Pred] = []
        for rdn in self.view.parent:
            preds.extend(a == attr.lower() and v == folded for a, v in rdn)
        if attr == "uniqueIdentifier":
            preds.append(func.lower(self.view.key) == literal(folded))
        return _or(preds)


def translate(key: Key, view: View, dialect: str) -> Pred:
    """TRUE-where of a prepared filter for one entry class (Python bool when it folded to a constant)."""
    return _Translator(view, dialect).both(key)[0]
