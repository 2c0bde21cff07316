"""Helpers for the first-load tests: an import run the fast way and the careful way, and what each stored."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.db import make_sessionmaker
from sds_registry.services import bulk


class OneWay:
    """A text stream that cannot be read again: the import takes the careful path."""

    def __init__(self, text: str) -> None:
        self.stream = io.StringIO(text)
        self.name = "<one-way>"

    def read(self, size: int = -1) -> str:
        return self.stream.read(size)


def tables(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the record tables and their value lists, without the timestamps; ids as ranks (1, 2, ...
    in id order: PostgreSQL's sequences are not rolled back, so a second load into the same database takes
    other numbers)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for kind in (bulk.ORG, bulk.AS, bulk.MHS):
        keep = [c for c in kind.table.c if c.name not in ("id", "created_at", "updated_at")]
        rows = session.execute(select(kind.table.c.id, *keep).order_by(kind.table.c.id)).all()
        rank = {r[0]: n for n, r in enumerate(rows, 1)}
        out[kind.table.name] = [(rank[r[0]], *r[1:]) for r in rows]
        for _, child, fk, _ in kind.children:
            t = child.__table__
            out[t.name] = [(rank[r[0]], *r[1:]) for r in session.execute(
                select(t.c[fk], *[c for c in t.c if c.name != fk]).order_by(t.c[fk], t.c.position))]
    return out


def both(db: Engine, importer: Callable[..., Any], text: str, **options: Any) -> tuple[Any, Any, Any, Any]:
    """``importer(session, stream, **options)`` on ``text`` the fast way (a stream it can read again) and the
    careful way (one it cannot), each rolled back: the two reports and what each stored."""
    with make_sessionmaker(db)() as s:
        fast = importer(s, io.StringIO(text), **options)
        fast_rows = tables(s)
        s.rollback()
        careful = importer(s, OneWay(text), **options)
        careful_rows = tables(s)
        s.rollback()
    return fast, careful, fast_rows, careful_rows
