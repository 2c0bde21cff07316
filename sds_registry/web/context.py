"""Per-request context for the HTTP blueprints: settings, engine, the request's Session and read helpers.

Blueprints import this module, never web.app (which imports them).
"""

from __future__ import annotations

from flask import current_app, g, request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.config import Settings
from sds_registry.db import ReadConnection, ReadPool, read_snapshot


def settings() -> Settings:
    value: Settings = current_app.extensions["sds"]["settings"]
    return value


def session() -> Session:
    """The request's Session (made on first use, closed on teardown). Views own its commit. A GET or HEAD reads
    one snapshot of the database (db.read_snapshot) unless it writes too (db.begin_write)."""
    if "sds_session" not in g:
        g.sds_session = current_app.extensions["sds"]["sessionmaker"]()
        if request.method in ("GET", "HEAD"):
            read_snapshot(g.sds_session)
    value: Session = g.sds_session
    return value


def engine() -> Engine:
    value: Engine = current_app.extensions["sds"]["engine"]
    return value


def read_connection() -> ReadConnection:
    """A db.ReadConnection from the app's ReadPool (a DBAPI connection, nothing more) for a request whose reads
    are all the directory's flat lookups (the FHIR searches). Use it in a ``with`` block around those reads."""
    pool: ReadPool = current_app.extensions["sds"]["read_pool"]
    return pool.connect()


def close_session(_exc: BaseException | None) -> None:
    """Teardown: close the request's Session, if it made one."""
    db_session = g.pop("sds_session", None)
    if db_session is not None:
        db_session.close()
