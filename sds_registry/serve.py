"""``sds serve``: one supervisor process starting each enabled facade (HTTP, LDAP, SSP) in its own process.

SIGINT/SIGTERM stop every child cleanly (exit status 0). A child that dies on its own is replaced (one log line;
the new one counts itself in sds_worker_restarts_total), unless it keeps dying soon after it starts (see
workers.RestartGuard): then the others are stopped and serve exits non-zero.
A facade whose SDS_*_BIND is the empty string is off.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sds_registry import metrics
from sds_registry.config import Settings, child_environment, parse_bind
from sds_registry.errors import ConfigError
from sds_registry.logs import gunicorn_logconfig
from sds_registry.workers import RestartGuard, check_address_free, die_with_parent, report_death

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


def bind_settings(settings: Settings) -> list[tuple[str, str]]:
    """(address, variable) of every enabled listening address."""
    pairs = [(settings.http_bind, "SDS_HTTP_BIND"), (settings.ldap_bind, "SDS_LDAP_BIND"),
             (settings.ldaps_bind, "SDS_LDAPS_BIND"), (settings.ssp_bind, "SDS_SSP_BIND")]
    return [(bind, name) for bind, name in pairs if bind]


def startup_problem(settings: Settings) -> str | None:
    """Why ``sds serve`` cannot start, in one line: an address another process already serves (checked before any
    facade binds with SO_REUSEPORT, which would silently share it), or a database that is unreachable or not
    migrated. None when it can."""
    for bind, variable in bind_settings(settings):
        try:
            check_address_free(bind, variable)
        except ConfigError as exc:
            return str(exc)
    return database_problem(settings.database_url)


def database_problem(database_url: str) -> str | None:
    """One line saying what to do when the database cannot be used: unreachable, missing, or not at the latest
    migration (``run 'sds db upgrade'``). None when it is ready. Never creates a SQLite file."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from sds_registry.db import make_engine
    from sds_registry.migrate import alembic_config

    try:
        url = make_url(database_url)
    except ArgumentError:
        return f"SDS_DATABASE_URL: {database_url!r} is not a database URL"
    shown = url.render_as_string(hide_password=True)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
        if not Path(database).is_file():
            return f"the database {shown} does not exist yet: run 'sds db upgrade' (or check SDS_DATABASE_URL)"
    connect_args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
    try:
        engine = make_engine(database_url, **({"connect_args": connect_args} if connect_args else {}))
    except (ArgumentError, ImportError) as exc:
        return f"SDS_DATABASE_URL: cannot use {shown}: {exc}"
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"cannot reach the database {shown}: {reason} (check SDS_DATABASE_URL and that the server runs)"
    finally:
        engine.dispose()
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    if current == heads:
        return None
    if not current:
        return f"the database {shown} is not migrated: run 'sds db upgrade'"
    known = {rev.revision for rev in script.walk_revisions()}
    if current - known:
        return (f"the database {shown} is at revision {', '.join(sorted(current - known))}, newer than this "
                f"sds-registry knows: upgrade sds-registry")
    return f"the database {shown} is not at the latest migration: run 'sds db upgrade'"


def supervise(settings: Settings) -> int:
    facades = enabled_facades(settings)
    if not facades:
        log.error("every facade is off (SDS_HTTP_BIND, SDS_LDAP_BIND, SDS_LDAPS_BIND and SDS_SSP_BIND are empty)")
        return 2
    problem = startup_problem(settings)
    if problem is not None:
        sys.stderr.write(f"Error: {problem}\n")
        return 1
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    metrics_dir = _metrics_folder(settings)
    try:
        return _run_children(facades, child_environment({MULTIPROC_ENV: metrics_dir}), lambda: stopping)
    finally:
        if not settings.metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


#: prometheus_client's multiprocess folder variable (sds_registry.metrics), set for every child before it starts.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_folder(settings: Settings) -> str:
    """SDS_METRICS_DIR emptied of a previous run's samples, or a fresh temporary folder."""
    if not settings.metrics_dir:
        return tempfile.mkdtemp(prefix="sds-metrics-")
    folder = Path(settings.metrics_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    return str(folder)


def _run_children(facades: list[str], env: dict[str, str], stopped: Any) -> int:
    """Run one ``serve-facade`` process per facade until ``stopped()``; replace one that ends on its own (not
    when the RestartGuard sees a crash loop: then stop the others and return 1). 0 after a clean stop."""
    def start(name: str, restarted: bool) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "sds_registry.cli", "serve-facade", name]
        return subprocess.Popen([*command, "--restarted"] if restarted else command, env=env)

    children = {name: start(name, False) for name in facades}
    started = {name: time.monotonic() for name in facades}
    guards = {name: RestartGuard() for name in facades}
    status = 0
    while not stopped() and status == 0:
        for name, child in children.items():
            code = child.poll()
            if code is None or stopped():
                continue
            metrics.mark_process_dead(child.pid, env.get(MULTIPROC_ENV))
            restart = guards[name].allow(time.monotonic() - started[name])
            report_death(name, "facade process", child.pid, code, restart)
            if not restart:
                status = 1
                break
            children[name], started[name] = start(name, True), time.monotonic()
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
    from gunicorn.glogging import Logger

    from sds_registry import create_app

    host, port = parse_bind(settings.http_bind, "SDS_HTTP_BIND")

    class NoAccessLog(Logger):  # type: ignore[misc]
        """gunicorn's logger without its access log (a logconfig_dict would turn it on): no query strings."""

        def access(self, *args: Any, **kwargs: Any) -> None:
            return None

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            self.cfg.set("workers", settings.http_workers)
            self.cfg.set("threads", settings.http_threads)
            # gthread, reading each request whole on the worker's loop first: slow clients hold no thread
            self.cfg.set("worker_class", "sds_registry.web.worker.BufferingThreadWorker")
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("logconfig_dict", gunicorn_logconfig(settings.log_level, settings.log_format))
            self.cfg.set("logger_class", NoAccessLog)  # the app writes one access line per request itself
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("proc_name", "sds-http")
            self.cfg.set("child_exit", _http_worker_exit)
            self.cfg.set("pre_fork", _http_worker_start)

        def load(self) -> Any:
            return create_app()

    log.info("HTTP (JSON API, SDS FHIR API) on http://%s:%s", host, port)
    Server().run()


def _http_worker_exit(_server: Any, worker: Any) -> None:
    metrics.mark_process_dead(worker.pid)


def _http_worker_start(server: Any, worker: Any) -> None:
    """gunicorn's master replaces a dead worker itself (and logs it); count each worker past the first ones
    (``worker.age`` numbers the workers it started; a SIGHUP reload counts too)."""
    if worker.age > server.cfg.workers:
        metrics.count_restart("http")


def run_facade(name: str, settings: Settings, restarted: bool = False) -> None:
    """Run one facade in this process; a ConfigError (a port taken meanwhile, a bad certificate) ends it with
    one line and status 1, not a traceback. ``restarted``: this process replaces one that died, and counts it
    (sds_worker_restarts_total; the supervisor writes no metrics)."""
    die_with_parent()  # a killed supervisor leaves no facade serving on
    if restarted:
        metrics.count_restart(name)
    try:
        _run_facade(name, settings)
    except ConfigError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        raise SystemExit(1) from None


def _run_facade(name: str, settings: Settings) -> None:
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
