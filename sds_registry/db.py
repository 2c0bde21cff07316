"""Declarative Base, engines and sessions. The only module that makes Sessions."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import Pool, StaticPool

from sds_registry import metrics
from sds_registry.errors import Unavailable

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Timezone-aware now, truncated to whole seconds (LDAP timestamps have second precision)."""
    return datetime.now(UTC).replace(microsecond=0)


SQLITE_PAGE_BYTES = 8192


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy's documented pysqlite workaround: let SQLAlchemy emit BEGIN itself (see _sqlite_begin),
    # so SAVEPOINTs work and writers can take the write lock up front.
    dbapi_connection.isolation_level = None
    # WAL lets many reader processes (HTTP, LDAP) share the file with one writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # A new database takes 8 KiB pages (an existing one keeps its own: a no-op then): a bulk load writes ~6%
    # faster and the file is 3% smaller than with the 4 KiB default; set before WAL, which fixes the size.
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


#: Execution option a writing Session sets first (see begin_write): SQLite then starts with BEGIN IMMEDIATE,
#: so concurrent writers queue on the lock and re-read fresh rows instead of failing on a stale snapshot.
WRITE_OPTION = "sds_write"

def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


def begin_write(session: Session) -> None:
    """Mark ``session``'s transaction as a write before its first statement (no-op off SQLite)."""
    session.connection(execution_options={WRITE_OPTION: True})


#: Session.info key a reading unit of work sets (see read_snapshot): on PostgreSQL its transaction then reads one
#: snapshot (REPEATABLE READ) instead of one per statement (READ COMMITTED).
SNAPSHOT_INFO = "sds_read_snapshot"


def read_snapshot(session: Session) -> None:
    """Make every statement of ``session``'s transactions read the same snapshot, unless it writes (begin_write).

    Why: a record is read in several statements (its row, then its endpoints, actors, interactions by
    selectin loads). Under READ COMMITTED a delete committed between them gave an /api listing an MHS record
    with no endpoint, a state the database never held (bench/soak.py on PostgreSQL). SQLite's deferred BEGIN
    already reads one snapshot. REPEATABLE READ costs a read-only transaction nothing more on PostgreSQL and
    never fails it; writers keep READ COMMITTED and their row locks."""
    session.info[SNAPSHOT_INFO] = True


@event.listens_for(Session, "after_begin")
def _snapshot_begin(session: Session, _transaction: Any, connection: Any) -> None:
    if (session.info.get(SNAPSHOT_INFO) and connection.dialect.name == "postgresql"
            and not connection.get_execution_options().get(WRITE_OPTION)):
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout, in-memory gets one shared conn."""
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs.setdefault("poolclass", StaticPool)
            kwargs.setdefault("connect_args", {"check_same_thread": False})
        else:
            kwargs.setdefault("connect_args", {"check_same_thread": False})
            _ensure_sqlite_dir(url)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return _instrument(engine)
    kwargs.setdefault("pool_pre_ping", True)
    return _instrument(create_engine(url, **kwargs))


def _instrument(engine: Engine) -> Engine:
    """Statement timings (sds_db_query_duration_seconds) and the checked-out gauge, from engine events: two
    perf_counter calls and a histogram observe per statement. Raw-cursor reads (the FHIR lookups on a ReadConnection,
    the LDAP directory) time themselves; they take no pooled connection per request."""
    observe = metrics.DB_QUERY_DURATION.observe
    checked_out = metrics.DB_POOL_CHECKED_OUT

    def before(_conn: Any, _cursor: Any, _statement: Any, _params: Any, context: Any, _many: bool) -> None:
        if context is not None:
            context._sds_started = time.perf_counter()

    def after(_conn: Any, _cursor: Any, _statement: Any, _params: Any, context: Any, _many: bool) -> None:
        started = getattr(context, "_sds_started", None)
        if started is not None:
            observe(time.perf_counter() - started)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "checkout", lambda *_args: checked_out.inc())
    event.listen(engine, "checkin", lambda *_args: checked_out.dec())
    return engine


def _ensure_sqlite_dir(url: str) -> None:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


class ReadPool:
    """Connections for ReadConnection: on a SQLite file, idle DBAPI connections kept here, outside SQLAlchemy's
    pool (whose checkout and checkin, with their fairy, record, events, queue locks and reset, cost a FHIR
    search as much as its query); elsewhere SQLAlchemy's pool, as any Connection (pre-ping and all).

    A connection is taken from the engine's pool and detached from it (the "connect" hooks have run: autocommit,
    WAL, busy timeout). It goes back here only from a read that did not fail, with the driver's rollback (no
    statement in autocommit). Idle ones are dropped when the engine's pool is replaced (``engine.dispose()``)
    or the process has forked; at most ``max_idle`` are kept.
    """

    def __init__(self, engine: Engine, max_idle: int = 16) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.max_idle = max_idle
        self._own = engine.dialect.name == "sqlite" and not isinstance(engine.pool, StaticPool)
        self._idle: deque[Any] = deque()
        self._owner: tuple[Pool | None, int] = (engine.pool, os.getpid())

    def connect(self) -> ReadConnection:
        return ReadConnection(self)

    def _checkout(self) -> Any:
        """A DBAPI connection of ours, or (not ours to keep) a pool-proxied one."""
        if not self._own:
            return self.engine.raw_connection()
        if self._owner != (self.engine.pool, os.getpid()):
            self._discard_idle()
        try:
            return self._idle.pop()
        except IndexError:
            pooled = self.engine.raw_connection()
            connection = pooled.dbapi_connection
            pooled.detach()
            return connection

    def _checkin(self, connection: Any, failed: bool) -> None:
        if not self._own:
            connection.close()  # back to SQLAlchemy's pool, which resets (or invalidates) it
            return
        try:
            if not failed:
                connection.rollback()
        except Exception:  # noqa: BLE001 - a connection that cannot roll back is not kept
            failed = True
        if failed or len(self._idle) >= self.max_idle or self._owner != (self.engine.pool, os.getpid()):
            connection.close()
        else:
            self._idle.append(connection)

    def _discard_idle(self) -> None:
        owner, self._owner = self._owner, (self.engine.pool, os.getpid())
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return
            if owner[1] == os.getpid():  # a forked child leaves its parent's connections alone
                connection.close()

    def dispose(self) -> None:
        """Close the idle connections (the engine's own are engine.dispose()'s)."""
        self._owner = (None, os.getpid())
        self._discard_idle()


class ReadConnection:
    """One DBAPI connection from a ReadPool, for a request that only reads through the directory's flat
    lookups (the FHIR searches): no Connection, Session or transaction objects.

    On SQLite the driver is in autocommit (see _sqlite_pragmas): each SELECT reads the latest committed data
    and nothing is sent on return. Elsewhere the driver's implicit transaction ends when ``close()`` hands
    the connection back to the pool, which rolls it back. Use it as a context manager; never write on it.
    """

    __slots__ = ("_pool", "_connection", "dialect")

    def __init__(self, pool: ReadPool) -> None:
        self._pool = pool
        self.dialect = pool.dialect
        self._connection = pool._checkout()

    def cursor(self) -> Any:
        """A DBAPI cursor; the caller closes it."""
        return self._connection.cursor()

    def close(self, failed: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool._checkin(connection, failed)

    def __enter__(self) -> ReadConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        self.close(failed=exc_type is not None)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


#: SQLite's primary result codes (the low byte of sqlite_errorcode) that mean the database, not the statement,
#: failed: SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN; and FULL.
_SQLITE_UNAVAILABLE = {5, 6, 7, 8, 10, 14}
SQLITE_FULL = 13


def unavailable(exc: BaseException) -> Unavailable | None:
    """The ``Unavailable`` a database error stands for, or None when it is not one (a bug: the facade's 500).

    Unavailable: the server cannot be reached or went away mid-query (a psycopg OperationalError other than a
    cancelled statement, or InterfaceError on a closed connection), no pooled connection came free in time,
    or SQLite is busy, locked, read-only or failing I/O. ``full``: SQLite's SQLITE_FULL (the disk, or the
    database's max_page_count). Takes SQLAlchemy's wrapped errors and raw driver errors (raw-cursor reads).
    The message is for clients: it names the cause, not the server's address."""
    import sqlite3

    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError):
        return Unavailable("the registry database is unavailable: no connection came free in time")
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(orig, sqlite3.Error):
        code = (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == SQLITE_FULL:
            return Unavailable(f"the registry database is full ({orig}): the write was not applied", full=True)
        if code in _SQLITE_UNAVAILABLE:
            return Unavailable(f"the registry database is unavailable ({orig})")
        return None
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return Unavailable("the registry database is unavailable: the connection was lost")
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        return None
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return None
    if isinstance(orig, psycopg.errors.DiskFull):
        return Unavailable("the registry database is full (PostgreSQL: disk full): the write was not applied",
                           full=True)
    if isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        return Unavailable("the registry database is unavailable: it cannot be reached or closed the connection")
    return None
