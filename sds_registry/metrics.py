"""Prometheus metric definitions, shared by the HTTP, LDAP and SSP processes (see README "Metrics").

``sds serve`` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any child imports prometheus_client, so
every worker process writes its samples there and ``/metrics`` aggregates them (web.metrics). Outside
``sds serve`` the default in-process registry is used. Hot paths look label children up once (cached dicts).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

try:
    VERSION = version("sds-registry")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    VERSION = "unknown"

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


def mark_process_dead(pid: int, folder: str | None = None) -> None:
    """Drop a finished worker's live gauges (multiprocess mode only; harmless otherwise). ``folder``: the
    multiprocess folder, for the ``sds serve`` supervisor (which writes no samples itself)."""
    from prometheus_client import multiprocess, values

    if folder is not None:
        multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
    elif values.ValueClass is not values.MutexValue:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
