"""Query plans: one compiled SQL statement per entry class, filter shape and attribute selection, and the function
that turns its rows into entries. Pure: builds SQL text and Python callables, runs nothing (directory.py does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import Integer, String, bindparam, case, func, literal_column, select
from sqlalchemy.engine import Dialect

from sds_registry.ldap import dit, dn, filters
from sds_registry.ldap.backend import Attrs
from sds_registry.ldap.dit import EntryClass, Selection


def _timestamp(value: Any) -> str:
    """A DateTime column value (datetime, or SQLite's 'YYYY-MM-DD HH:MM:SS...' text) as GeneralizedTime."""
    if value is None:
        return dit.FIXED_TIMESTAMP
    if isinstance(value, str):
        return value[0:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16] + value[17:19] + "Z"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return str(value.strftime("%Y%m%d%H%M%SZ"))


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value]


@dataclass
class Plan:
    """One compiled query for an entry class, filter shape and attribute selection."""

    sql: str
    positional: tuple[str, ...] | None  # qmark/numeric dialects: parameter names in order
    defaults: dict[str, Any]
    build: Callable[[tuple[Any, ...]], tuple[str, Attrs]]

    def args(self, params: dict[str, Any], name: str = "", value: Any = None) -> Any:
        """The execute() parameters: the filter's ``params``, ``name`` (the limit or the key) set to ``value``, and
        the compiled defaults (an OFFSET's 0) for the rest."""
        if self.positional is None:
            return {**self.defaults, **params, name: value} if name else {**self.defaults, **params}
        defaults = self.defaults
        return tuple([value if n == name else params[n] if n in params else defaults[n] for n in self.positional])


def make_plan(cls: EntryClass, mode: str, key: filters.Key, sel: Selection, view: filters.View, dialect: Dialect
              ) -> Plan | None:
    """The query for ``cls`` (mode "all": matching rows up to ``:lim``; "base": the row named ``:k``, its first column
    whether the filter matched); None when the filter is FALSE for every entry of the class."""
    table = cls.model.__table__
    pred = filters.translate(key, view, dialect.name)
    if mode == "all" and pred is False:
        return None
    columns: list[Any] = []
    if mode == "base":
        columns.append(
            case((filters.to_sql(pred), 1), else_=0)
            if not isinstance(pred, bool)
            else literal_column("1" if pred else "0")
        )
    columns.append(view.key)
    emit: list[tuple[str, str, Any]] = []
    if sel.wants("objectClass", False):
        emit.append(("objectClass", "const", list(cls.classes)))
    for f in cls.fields:
        if not sel.wants(f.attr, False):
            continue
        if f.child is not None:
            columns.append(_aggregate(f.child, view.id, dialect.name))
            emit.append((f.attr, "list", len(columns) - 1))
        else:
            columns.append(table.c[f.field])
            emit.append((f.attr, "int" if f.integer else "str", len(columns) - 1))
    key_index = 1 if mode == "base" else 0
    for name in dit.OPERATIONAL_ROW:
        if not sel.wants(name, True):
            continue
        if name == "structuralObjectClass":
            emit.append((name, "const", [cls.name]))
        elif name == "entryDN":
            emit.append((name, "dn", key_index))
        elif name in ("createTimestamp", "modifyTimestamp"):
            columns.append(table.c.created_at if name == "createTimestamp" else table.c.updated_at)
            emit.append((name, "time", len(columns) - 1))
        elif name == "subschemaSubentry":
            emit.append((name, "const", [dit.SUBSCHEMA]))
        else:
            emit.append((name, "const", ["FALSE"]))
    stmt = select(*columns)
    if mode == "base":
        stmt = stmt.where(func.lower(view.key) == bindparam("k", type_=String))
    else:
        if pred is not True:
            stmt = stmt.where(filters.to_sql(pred))
        stmt = stmt.order_by(view.id).limit(bindparam("lim", type_=Integer))
    compiled = stmt.compile(dialect=dialect)
    positional = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    if compiled.positional and positional is None:
        positional = ()
    return Plan(compiled.string, positional, dict(compiled.params), _builder(cls, key_index, emit))

def _aggregate(child: tuple[Any, str, str], parent: Any, dialect: str) -> Any:
    table = child[0].__table__
    fk, value = table.c[child[1]], table.c[child[2]]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        agg = func.json_agg(aggregate_order_by(value, table.c.position))
        return select(agg).where(fk == parent).scalar_subquery()
    # SQLite aggregates rows in the order they arrive; left alone it may read a covering index such as
    # (as_id, interaction_id) and answer alphabetically, so feed it an ordered inner query (stored order).
    return literal_column(
        f"(SELECT json_group_array(v) FROM (SELECT {value.name} AS v FROM {table.name} "
        f"WHERE {fk.name} = {parent.table.name}.{parent.name} ORDER BY position))"
    )

def _builder(
    cls: EntryClass, key_index: int, emit: list[tuple[str, str, Any]]
) -> Callable[[tuple[Any, ...]], tuple[str, Attrs]]:
    parent = cls.parent

    def build(row: tuple[Any, ...]) -> tuple[str, Attrs]:
        entry_dn = f"uniqueIdentifier={dn.escape_value(row[key_index])},{parent}"
        attrs: Attrs = []
        for name, kind, arg in emit:
            if kind == "str":
                if row[arg] is not None:
                    attrs.append((name, [row[arg]]))
            elif kind == "list":
                values = _list(row[arg])
                if values:
                    attrs.append((name, values))
            elif kind == "const":
                attrs.append((name, arg))
            elif kind == "int":
                if row[arg] is not None:
                    attrs.append((name, [str(row[arg])]))
            elif kind == "dn":
                attrs.append((name, [entry_dn]))
            else:
                attrs.append((name, [_timestamp(row[arg])]))
        return entry_dn, attrs

    return build
