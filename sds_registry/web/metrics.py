"""``GET /metrics``: Prometheus text, aggregated over every worker process under ``sds serve`` (multiprocess
mode), else this process's registry; plus the directory-size collector (rows by type, cached a few seconds)
and the per-request HTTP counters (an ``after_request`` hook, timed from web.access's start stamp)."""

from __future__ import annotations

import glob
import os
import time
from typing import Any

from flask import Blueprint, Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from sds_registry import metrics
from sds_registry.models import (
    AccreditedSystem,
    ApiClient,
    DataSharingAgreement,
    InteractionType,
    MessageHandlingSystem,
    Organisation,
)
from sds_registry.web import access

bp = Blueprint("metrics", __name__)
SIZE_CACHE_SECONDS = 5.0


class DirectorySize:
    """``sds_directory_records{type}``: rows per record type, counted when scraped (cached SIZE_CACHE_SECONDS)."""

    TYPES = (("organisation", Organisation), ("accredited_system", AccreditedSystem),
             ("message_handling_system", MessageHandlingSystem), ("agreement", DataSharingAgreement),
             ("interaction", InteractionType), ("api_client", ApiClient))

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cached: tuple[float, list[tuple[str, int]]] | None = None

    def counts(self) -> list[tuple[str, int]]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > SIZE_CACHE_SECONDS:
            with self.engine.connect() as conn:
                rows = [(name, int(conn.scalar(select(func.count()).select_from(model)) or 0))
                        for name, model in self.TYPES]
            self._cached = (now, rows)
        return self._cached[1]

    def collect(self) -> Any:
        family = GaugeMetricFamily("sds_directory_records", "Directory records by type", labels=["type"])
        for name, count in self.counts():
            family.add_metric([name], count)
        yield family


def install(app: Flask, engine: Engine) -> None:
    """The /metrics route and the HTTP request hooks."""
    size = DirectorySize(engine)
    app.extensions["sds_metrics"] = size
    app.after_request(_finish)  # times from web.access's start stamp
    app.register_blueprint(bp)


@bp.get("/metrics")
def scrape() -> Response:
    from flask import current_app

    registry = CollectorRegistry()
    metrics.write_pending()  # this process's own latest increments
    if values.ValueClass is values.MutexValue:
        registry.register(REGISTRY)  # type: ignore[arg-type]
    else:
        _SettledFiles(registry)  # type: ignore[no-untyped-call]
    registry.register(current_app.extensions["sds_metrics"])
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _SettledFiles(MultiProcessCollector):  # type: ignore[misc]
    """prometheus_client's multiprocess collector, leaving out a samples file that another process is creating at
    this instant: it opens the file before sizing it, and reading it empty fails the whole scrape (struct.error;
    seen as a 500 about once in five scrapes while new worker processes took their first samples). Such a file
    holds no samples yet."""

    def collect(self) -> Any:
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(path) >= 8:  # the header: how many bytes are in use
                    files.append(path)
            except OSError:
                continue
        return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


def _finish(response: Response) -> Response:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not three
    started = req.environ.get(access.STARTED)
    if started is not None:
        rule = req.url_rule
        metrics.observe_http(rule.rule if rule is not None else "unmatched", req.method, response.status_code,
                             time.perf_counter() - started)
    return response
