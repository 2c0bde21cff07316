"""``sds serve``: one supervisor process starting each enabled facade (HTTP, LDAP, SSP) in its own process.

SIGINT/SIGTERM stop every child cleanly; if a child dies, the others are stopped and serve exits non-zero.
A facade whose SDS_*_BIND is the empty string is off.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from typing import Any

from sds_registry.config import Settings, parse_bind

log = logging.getLogger("sds.serve")
STOP_GRACE_SECONDS = 10.0


def enabled_facades(settings: Settings) -> list[str]:
    out = []
    if settings.http_bind:
        out.append("http")
    if settings.ldap_bind or settings.ldaps_bind:
        out.append("ldap")
    if settings.ssp_bind:
        out.append("ssp")
    return out


def supervise(settings: Settings) -> int:
    facades = enabled_facades(settings)
    if not facades:
        log.error("every facade is off (SDS_HTTP_BIND, SDS_LDAP_BIND, SDS_LDAPS_BIND and SDS_SSP_BIND are empty)")
        return 2
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    children = {
        name: subprocess.Popen([sys.executable, "-m", "sds_registry.cli", "serve-facade", name])
        for name in facades
    }
    status = 0
    while not stopping:
        for name, child in children.items():
            code = child.poll()
            if code is not None:
                log.error("the %s facade exited with status %s; stopping the others", name, code)
                stopping, status = True, 1
                break
        time.sleep(0.2)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return status


def run_http(settings: Settings) -> None:
    """The HTTP app (JSON API, SDS FHIR API, health checks) under gunicorn's gthread workers."""
    from gunicorn.app.base import BaseApplication

    from sds_registry import create_app

    host, port = parse_bind(settings.http_bind, "SDS_HTTP_BIND")

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            self.cfg.set("workers", settings.http_workers)
            self.cfg.set("threads", settings.http_threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("proc_name", "sds-http")

        def load(self) -> Any:
            return create_app()

    log.info("HTTP (JSON API, SDS FHIR API) on http://%s:%s", host, port)
    Server().run()


def run_facade(name: str, settings: Settings) -> None:
    if name == "http":
        run_http(settings)
    elif name == "ldap":
        from sds_registry.ldap.server import run_ldap

        run_ldap(settings)
    elif name == "ssp":
        from sds_registry.ssp.service import run_ssp

        run_ssp(settings)
    else:
        raise ValueError(f"unknown facade {name!r}")
