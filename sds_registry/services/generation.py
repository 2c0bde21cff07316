"""Has anything been committed since I last looked? A cheap per-request freshness token for kept answers.

``Generation.current()`` returns a number that changes whenever a write is committed that a kept answer may
depend on; a reader that keeps answers (the LDAP answer cache, the SSP's registry facts) compares it on
every request and forgets everything when it moved, so a committed write is seen by the very next request
on every worker process and every node.

- SQLite: ``PRAGMA data_version`` on a connection of our own. It changes when any other connection, in this
  process or another, commits to the file (a local read, no I/O: about a microsecond). Any commit counts,
  so a write to a table the answers do not use (an audit row) also empties them: correct, if eager.
- PostgreSQL: the one row of ``directory_generation``, bumped in the writing transaction itself by the
  statement-level triggers migration 0004 puts on every directory table (so writes by ``/api``, ``sds
  import``, ``sds mirror`` and raw SQL all count), read on a kept autocommit connection: one round trip.
  Without the triggers (a schema made without the migrations) ``current()`` is None: keep nothing.

None also when the read failed (the database is away): the caller then answers from the database.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

#: The directory tables the PostgreSQL triggers watch (what LDAP, FHIR and the SSP answer from).
WATCHED_TABLES = (
    "organisations",
    "accredited_systems",
    "as_interactions",
    "as_clients",
    "as_acfs",
    "as_category_bags",
    "message_handling_systems",
    "mhs_endpoints",
    "mhs_actors",
    "interactions",
    "data_sharing_agreements",
)
TRIGGER_PREFIX = "directory_generation_"
_PG_READ = "SELECT value FROM directory_generation WHERE id = 1"
_PG_TRIGGERS = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'directory\\_generation\\_%' AND NOT tgisinternal"


class Generation:
    """The freshness token of one database for one process (thread-safe; see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._lock = threading.Lock()
        self._pair: tuple[Any, Any] | None = None  # (pool entry, DBAPI connection), kept while we live
        self._cursor: Any = None
        self._supported: bool | None = None  # PostgreSQL: the triggers exist (checked on first use)

    def current(self) -> int | None:
        """The token now; None when it cannot be known (keep nothing then)."""
        with self._lock:
            try:
                return self._read()
            except Exception:  # noqa: BLE001 - a broken connection: drop it, the next call reconnects
                log.debug("generation read failed", exc_info=True)
                self._drop()
                return None

    def _read(self) -> int | None:
        if self._pair is None:
            self._connect()
            if self._pair is None:
                return None
        cur = self._cursor
        cur.execute("PRAGMA data_version" if self.dialect == "sqlite" else _PG_READ)
        row = cur.fetchone()
        if row is None:
            return None
        if self.dialect == "sqlite":  # an in-memory database shares one connection: count its own changes too
            return int(row[0]) << 40 | int(self._pair[1].total_changes)
        return int(row[0])

    def _connect(self) -> None:
        if self.dialect not in ("sqlite", "postgresql") or self._supported is False:
            return
        fairy = self.engine.raw_connection()
        conn: Any = fairy.driver_connection
        if self.dialect == "postgresql":
            conn.autocommit = True
            if self._supported is None:
                cur = conn.cursor()
                cur.execute(_PG_TRIGGERS)
                self._supported = cur.fetchone()[0] >= len(WATCHED_TABLES)
                cur.close()
                if not self._supported:
                    log.warning("directory_generation triggers are missing (run `sds db upgrade`): "
                                "answers are not kept")
            if not self._supported:
                conn.autocommit = False
                fairy.close()
                return
        self._pair = (fairy, conn)
        self._cursor = conn.cursor()

    def _drop(self) -> None:
        pair, self._pair, self._cursor = self._pair, None, None
        if pair is None:
            return
        try:
            pair[0].invalidate()
        except Exception:  # noqa: BLE001 - already broken
            log.debug("invalidate failed", exc_info=True)

    def close(self) -> None:
        """Give the connection back (a later call opens another)."""
        with self._lock:
            pair, self._pair, self._cursor = self._pair, None, None
        if pair is not None:
            try:
                if self.dialect == "postgresql":
                    pair[1].autocommit = False
                pair[0].close()
            except Exception:  # noqa: BLE001
                log.debug("close failed", exc_info=True)
