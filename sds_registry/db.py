"""Declarative Base, engines and sessions. The only module that makes Sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy's documented pysqlite workaround: let SQLAlchemy emit BEGIN itself (see _sqlite_begin),
    # so SAVEPOINTs work and writers can take the write lock up front.
    dbapi_connection.isolation_level = None
    # WAL lets many reader processes (HTTP, LDAP) share the file with one writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


#: Execution option a writing Session sets first (see begin_write): SQLite then starts with BEGIN IMMEDIATE,
#: so concurrent writers queue on the lock and re-read fresh rows instead of failing on a stale snapshot.
WRITE_OPTION = "sds_write"

#: Execution option of a ReadOnlySession's Connection: on SQLite no BEGIN when SQLAlchemy begins a transaction
#: on it (Core or ORM statements), so each SELECT runs in autocommit and the ROLLBACK at the end is a no-op.
READ_ONLY_OPTION = "sds_read_only"


def _sqlite_begin(conn: Any) -> None:
    options = conn.get_execution_options()
    if options.get(READ_ONLY_OPTION):
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN")


def begin_write(session: Session) -> None:
    """Mark ``session``'s transaction as a write before its first statement (no-op off SQLite)."""
    session.connection(execution_options={WRITE_OPTION: True})


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
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _ensure_sqlite_dir(url: str) -> None:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


class ReadOnlySession(Session):
    """A Session for requests that only read (the FHIR API), on one pooled Connection checked out up front.

    ``connection()`` hands out that Connection as it is, without a SessionTransaction (the directory's fast
    paths read through its DBAPI cursor): that transaction machinery was most of a small request's database
    overhead. On SQLite (the driver in autocommit, see _sqlite_pragmas) no BEGIN is sent (READ_ONLY_OPTION
    covers Core and ORM statements too): each SELECT reads the latest committed data and there is nothing to
    roll back. Elsewhere the driver's implicit transaction ends when ``close()`` returns the Connection to
    the pool, which rolls it back. Never commit on it: writes would commit statement by statement.
    """

    def __init__(self, engine: Engine) -> None:
        self._read_connection = engine.connect().execution_options(**{READ_ONLY_OPTION: True})
        super().__init__(bind=self._read_connection, expire_on_commit=False, autoflush=True)

    def connection(self, bind_arguments: Any = None, execution_options: Any = None) -> Connection:
        if bind_arguments or execution_options or self._transaction is not None:
            return super().connection(bind_arguments, execution_options)
        return self._read_connection

    def close(self) -> None:
        try:
            if self._transaction is not None or self.identity_map:  # the ORM was used: its clean-up too
                super().close()
        finally:
            self._read_connection.close()


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
