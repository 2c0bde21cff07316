"""Prometheus metric definitions, shared by the HTTP, LDAP and SSP processes (see README "Metrics").

``sds serve`` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any child imports prometheus_client, so
every worker process writes its samples there and ``/metrics`` aggregates them (web.metrics). Outside
``sds serve`` the default in-process registry is used. Hot paths look label children up once (cached dicts).

In multiprocess mode an increment is kept in memory and written to the samples file at most BATCH_SECONDS later
(by a thread of the process, at exit, and before this process answers a scrape): prometheus_client writes every
increment through to its file (a pid check and a struct pack each), a visible share of a cached lookup's cost.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

try:
    VERSION = version("sds-registry")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    VERSION = "unknown"

BATCH_SECONDS = 0.5


class _Batch:
    """The increments of this process not yet written to its samples file."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dirty: set[Any] = set()
        self.every: list[Any] = []
        self.writing = False  # this process's writer thread runs

    def forked(self) -> None:
        """In a forked child: the parent writes what it had pending; the child starts from nothing."""
        self.lock = threading.Lock()
        for value in self.every:
            value._delta = 0.0
        self.dirty.clear()
        self.writing = False


_batch = _Batch()


def write_pending() -> None:
    """Write this process's pending increments to its samples file now (multiprocess mode; else nothing)."""
    with _batch.lock:
        dirty = list(_batch.dirty)
        _batch.dirty.clear()
    for value in dirty:
        value.write_delta()


def _write_every_batch_seconds() -> None:
    while True:
        time.sleep(BATCH_SECONDS)
        write_pending()


def _batched(value_class: Any) -> Any:
    """prometheus_client's multiprocess value class, incrementing in memory (``write_pending`` writes)."""

    class BatchedValue(value_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._delta = 0.0
            _batch.every.append(self)

        def inc(self, amount: float) -> None:
            with _batch.lock:
                self._delta += amount
                _batch.dirty.add(self)
            if not _batch.writing:  # no pid check per increment: forked() resets it in a child
                _batch.writing = True
                threading.Thread(target=_write_every_batch_seconds, name="sds-metrics-writer", daemon=True).start()

        def write_delta(self) -> None:
            with _batch.lock:
                delta, self._delta = self._delta, 0.0
            if delta:
                super().inc(delta)

        def set(self, value: float, timestamp: float | None = None) -> None:
            with _batch.lock:
                self._delta = 0.0  # a gauge set replaces what was added before it
            super().set(value, timestamp)

        def get(self) -> float:
            self.write_delta()
            value: float = super().get()
            return value

    return BatchedValue


if getattr(values.ValueClass, "_multiprocess", False) and not hasattr(values.ValueClass, "write_delta"):
    values.ValueClass = _batched(values.ValueClass)
    os.register_at_fork(after_in_child=_batch.forked)
    atexit.register(write_pending)

HTTP_REQUESTS = Counter("sds_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
HTTP_DURATION = Histogram("sds_http_request_duration_seconds", "HTTP request latency", ["route", "method"])
LDAP_OPERATIONS = Counter("sds_ldap_operations_total", "LDAP operations answered", ["operation", "result"])
LDAP_DURATION = Histogram("sds_ldap_operation_duration_seconds", "LDAP search/compare latency", ["operation"])
LDAP_ANSWERS = Counter("sds_ldap_answer_cache_total", "LDAP answer cache lookups: hit, miss, or cleared (a write)",
                       ["outcome"])
SSP_DECISIONS = Counter("sds_ssp_decisions_total", "SSP decisions", ["outcome"])
SSP_PROVIDER_DURATION = Histogram("sds_ssp_provider_duration_seconds", "SSP provider round trip (forwarded requests)")
DB_QUERY_DURATION = Histogram("sds_db_query_duration_seconds", "Database statement latency")
DB_POOL_CHECKED_OUT = Gauge("sds_db_pool_checked_out", "Database connections checked out of the pool",
                            multiprocess_mode="livesum")
WORKER_RESTARTS = Counter("sds_worker_restarts_total",
                          "Worker or facade processes that died on their own and were replaced", ["facade"])
BUILD_INFO = Gauge("sds_build_info", "sds-registry build", ["version"], multiprocess_mode="max")
BUILD_INFO.labels(VERSION).set(1)

_http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_ldap: dict[tuple[str, int | None], Any] = {}
_ldap_duration: dict[str, Any] = {}
_ssp: dict[str, Any] = {}


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method, status)
    children = _http.get(key)
    if children is None:
        children = _http[key] = (HTTP_REQUESTS.labels(route, method, str(status)), HTTP_DURATION.labels(route, method))
    children[0].inc()
    children[1].observe(seconds)


def observe_ldap(operation: str, result: int | None, seconds: float | None = None) -> None:
    """One LDAP operation answered with ``result`` (an LDAP result code; None, label ``none``, for unbind and
    abandon, which have no response); ``seconds`` for directory work."""
    key = (operation, result)
    child = _ldap.get(key)
    if child is None:
        child = _ldap[key] = LDAP_OPERATIONS.labels(operation, "none" if result is None else str(result))
    child.inc()
    if seconds is not None:
        hist = _ldap_duration.get(operation)
        if hist is None:
            hist = _ldap_duration[operation] = LDAP_DURATION.labels(operation)
        hist.observe(seconds)


def observe_ssp(outcome: str) -> None:
    child = _ssp.get(outcome)
    if child is None:
        child = _ssp[outcome] = SSP_DECISIONS.labels(outcome)
    child.inc()


def count_restart(facade: str) -> None:
    """A dead worker (or facade process) of ``facade`` (http, ldap, ssp) was replaced."""
    WORKER_RESTARTS.labels(facade).inc()
    write_pending()  # rare, and a scrape right after should see it


def mark_process_dead(pid: int, folder: str | None = None) -> None:
    """Drop a finished worker's live gauges (multiprocess mode only; harmless otherwise). ``folder``: the
    multiprocess folder, for the ``sds serve`` supervisor (which writes no samples itself)."""
    from prometheus_client import multiprocess, values

    if folder is not None:
        multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
    elif values.ValueClass is not values.MutexValue:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
