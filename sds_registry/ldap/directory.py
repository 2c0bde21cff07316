"""The registry tables as LDAP entries: plan per entry class, run the SQL, build the entries. No sockets.

The LDAP wire layer (protocol.py) calls ``Directory.search``/``compare``, which run search.py's walk
with this Directory as its Backend (backend.py). Filters become SQL (filters.py, plans.py) once per filter
*shape* and entry class; the plan keeps the SQL string compiled for the engine's dialect and runs it on a kept
DBAPI connection in autocommit mode (no pool checkout, no ORM), so a registration committed through the
services is visible to the very next search and the hot GP Connect lookup costs one indexed query.
Nothing is cached but SQL text (entries are rebuilt from each query's rows), so nothing can go stale.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

from sqlalchemy import literal_column, select
from sqlalchemy.engine import Engine

from sds_registry import metrics
from sds_registry.config import Settings
from sds_registry.db import unavailable
from sds_registry.ldap import ast, dit, filters, plans
from sds_registry.ldap.backend import Attrs, TimeLimitExceeded
from sds_registry.ldap.dit import EntryClass, Selection
from sds_registry.ldap.plans import Plan as Plan
from sds_registry.ldap.search import run_compare, run_search

log = logging.getLogger(__name__)

MAX_PLANS = 4096


def _invalidate(fairy: Any) -> None:
    try:
        if fairy is not None:
            fairy.invalidate()
    except Exception:  # noqa: BLE001 - already broken
        log.debug("invalidate failed", exc_info=True)


class Directory:
    """Answers LDAP searches and compares from the registry (see module docstring)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.dialect = engine.dialect.name
        self._views = {c.name: c.view() for c in dit.ENTRY_CLASSES}
        self._plans: dict[tuple[Any, ...], Plan | None] = {}
        self._lock = threading.Lock()
        self._idle: list[tuple[Any, Any]] = []
        dbapi = engine.dialect.loaded_dbapi
        self._dbapi_errors = (dbapi.OperationalError, dbapi.InterfaceError)  # InterfaceError: a closed connection

    # ---- connections ----------------------------------------------------------------------------------

    def _acquire(self) -> tuple[Any, Any]:
        """An idle (pool entry, DBAPI connection) pair, or a new one from the engine's pool.

        Pairs are kept while the Directory lives (as many as searches ran at once), so a search costs no
        pool checkout; PostgreSQL ones are in autocommit, so each search sees what was committed before it
        and no transaction stays open.
        """
        with self._lock:
            if self._idle:
                return self._idle.pop()
        fairy = None
        try:  # a database that cannot be reached is db.Unavailable (LDAP 52)
            fairy = self.engine.raw_connection()
            conn = fairy.driver_connection
            assert conn is not None
            if self.dialect == "postgresql":
                conn.autocommit = True
                limit_ms = int(self.settings.ldap_time_limit * 1000)
                if limit_ms > 0:  # the server's own time limit bounds every query it runs
                    conn.execute(f"SET statement_timeout = {limit_ms}")
        except Exception as exc:
            _invalidate(fairy)
            raise unavailable(exc) or exc from exc
        return fairy, conn

    def _release(self, pair: tuple[Any, Any]) -> None:
        with self._lock:
            self._idle.append(pair)

    def _give_back(self, pair: tuple[Any, Any]) -> None:
        fairy, conn = pair
        try:
            if self.dialect == "postgresql":
                conn.autocommit = False  # the pool gets it back as it lent it
            fairy.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            log.debug("close failed", exc_info=True)

    def close(self, broken: bool = False) -> None:
        """Give every idle connection back to the engine's pool (later searches still work). ``broken``: drop them
        instead (one failed on the connection itself, so the database went away and they are as dead; the
        next search connects afresh, checked by the pool's pre-ping)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for pair in idle:
            _invalidate(pair[0]) if broken else self._give_back(pair)

    def _run(
        self,
        plan: Plan,
        args: Any,
        deadline: float = 0.0,
        setup: tuple[str, ...] = (),
        teardown: tuple[str, ...] = (),
    ) -> list[tuple[Any, ...]]:
        """Execute ``plan`` with ``args`` (Plan.args) on an idle connection (a broken one is dropped with every other
        idle one, and the query retried once on a new connection; db.Unavailable when that fails too).

        On SQLite a progress handler stops a query that runs past ``deadline`` (time.monotonic());
        TimeLimitExceeded is raised then. (PostgreSQL queries here are index probes or bounded scans.)
        """
        dbapi_error = self._dbapi_errors
        for attempt in (1, 2):
            pair = self._acquire()
            conn = pair[1]
            watch = deadline > 0 and self.dialect == "sqlite"
            if watch:
                conn.set_progress_handler(lambda: time.monotonic() > deadline, 20000)
            try:
                cur = conn.cursor()
                started = time.perf_counter()
                try:
                    for statement in setup:
                        cur.execute(statement)
                    cur.execute(plan.sql, args)
                    rows: list[tuple[Any, ...]] = cur.fetchall()
                    for statement in teardown:
                        cur.execute(statement)
                finally:
                    cur.close()
                    metrics.DB_QUERY_DURATION.observe(time.perf_counter() - started)  # raw cursor: no engine events
            except dbapi_error as exc:
                if watch:
                    conn.set_progress_handler(None, 0)
                if (watch and "interrupted" in str(exc)) or type(exc).__name__ == "QueryCanceled":
                    self._release(pair)
                    raise TimeLimitExceeded from None
                _invalidate(pair[0])
                self.close(broken=True)
                if attempt == 2:
                    raise unavailable(exc) or exc from exc
                continue
            except BaseException:
                self._release(pair)
                raise
            if watch:
                conn.set_progress_handler(None, 0)
            self._release(pair)
            return rows
        raise AssertionError("unreachable")

    # ---- plans ----------------------------------------------------------------------------------------

    def _plan(self, cls: EntryClass, mode: str, key: filters.Key, sel: Selection) -> Plan | None:
        """None: the filter is FALSE (or Undefined) for every entry of the class, so nothing to run."""
        cache_key = (cls.name, mode, key, sel.key)
        try:
            return self._plans[cache_key]
        except KeyError:
            pass
        plan = plans.make_plan(cls, mode, key, sel, self._views[cls.name], self.engine.dialect)
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        self._plans[cache_key] = plan
        return plan

    # ---- the operations -------------------------------------------------------------------------------

    def search(
        self, request: ast.SearchRequest, size_limit: int, time_limit: float
    ) -> tuple[list[ast.SearchEntry], ast.Result]:
        return run_search(self, request, size_limit, time_limit)

    def compare(self, dn_text: str, attr: str, value: str) -> ast.Result:
        return run_compare(self, dn_text, attr, value)

    # ---- search.py's Backend ----------------------------------------------------------------------------

    def rows(
        self,
        cls: EntryClass,
        key: filters.Key,
        params: dict[str, Any],
        sel: Selection,
        limit: int,
        deadline: float = 0.0,
    ) -> list[tuple[str, Attrs]] | None:
        """Entries of ``cls`` matching the prepared filter, at most ``limit``; None when the plan is empty."""
        plan = self._plan(cls, "all", key, sel)
        if plan is None:
            return None
        rows = self._run(plan, plan.args(params, "lim", limit), deadline)
        if len(rows) < 512:
            return [plan.build(r) for r in rows]
        # Building many entries allocates millions of objects; cyclic GC passes then cost 3x the work
        # itself. Entries hold no reference cycles, so pause the cycle collector for the loop.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return [plan.build(r) for r in rows]
        finally:
            if enabled:
                gc.enable()

    def entry(
        self,
        cls: EntryClass,
        rdn_value: str,
        key: filters.Key,
        params: dict[str, Any],
        sel: Selection,
        deadline: float = 0.0,
    ) -> tuple[bool, tuple[str, Attrs] | None]:
        """(exists, the entry if the filter matched) for the entry of ``cls`` named ``rdn_value``."""
        plan = self._plan(cls, "base", key, sel)
        assert plan is not None
        rows = self._run(plan, plan.args(params, "k", rdn_value.lower()), deadline)
        if not rows:
            return False, None
        row = rows[0]
        return True, (plan.build(row) if row[0] else None)

    def has_organisations(self) -> bool:
        plan = self._plans.get(("orgs?",))
        if plan is None:
            compiled = (
                select(literal_column("1"))
                .select_from(dit.ORG.model.__table__)
                .limit(1)
                .compile(dialect=self.engine.dialect)
            )
            positional = tuple(compiled.positiontup or ()) if compiled.positional else None
            plan = Plan(compiled.string, positional, dict(compiled.params), lambda r: ("", []))
            self._plans[("orgs?",)] = plan
        return bool(self._run(plan, plan.args({})))

    def explain(self, request: ast.SearchRequest, prefer_index: bool = False) -> dict[str, list[str]]:
        """The database's query plan for each entry-class query a subtree search of ``request.filter``
        runs (EXPLAIN QUERY PLAN / EXPLAIN), by object class: to check that lookups are index probes."""
        key, params = filters.prepare(request.filter, self.dialect)
        sel = dit.selection(tuple(request.attributes))
        out: dict[str, list[str]] = {}
        for cls in dit.ENTRY_CLASSES:
            plan = self._plan(cls, "all", key, sel)
            if plan is None:
                continue
            prefix = "EXPLAIN QUERY PLAN " if self.dialect == "sqlite" else "EXPLAIN "
            explained = Plan(prefix + plan.sql, plan.positional, plan.defaults, plan.build)
            pg_index = prefer_index and self.dialect == "postgresql"  # tiny tables: may an index answer?
            setup, teardown = (("SET enable_seqscan = off",), ("RESET enable_seqscan",)) if pg_index else ((), ())
            out[cls.name] = [
                str(row[-1] if self.dialect == "sqlite" else row[0])
                for row in self._run(explained, explained.args(params, "lim", 2**31 - 1), 0.0, setup, teardown)
            ]
        return out
