"""Flask glue shared by the HTTP facades: settings and engine on the app, a session per request,
response headers every answer carries (no-store, charset, gzip), and the app-level 404/405 handlers.
"""

from __future__ import annotations

import gzip
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from sds_registry.config import Settings
from sds_registry.db import ReadConnection, ReadOnlySession, ReadPool, make_engine, make_sessionmaker

GZIP_MIN_BYTES = 1024


def init_app(app: Flask, settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    app.extensions["sds"] = {"settings": settings, "engine": engine, "sessionmaker": make_sessionmaker(engine),
                             "read_pool": ReadPool(engine)}
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = True
    app.teardown_appcontext(_close_session)
    app.after_request(_common_headers)
    app.register_error_handler(HTTPException, _http_error)
    _register_blueprints(app, settings)


def _register_blueprints(app: Flask, settings: Settings) -> None:
    from sds_registry.api.views import bp as api_bp
    from sds_registry.fhir.views import register as register_fhir
    from sds_registry.ssp.views import audit_bp
    from sds_registry.ssp.views import bp as ssp_bp

    app.register_blueprint(api_bp, url_prefix="/api")
    app.register_blueprint(ssp_bp, url_prefix="/api/ssp")
    app.register_blueprint(audit_bp, url_prefix="/api/audit")
    register_fhir(app, settings)


def settings() -> Settings:
    value: Settings = current_app.extensions["sds"]["settings"]
    return value


def session() -> Session:
    """The request's Session (made on first use, closed on teardown). Views own its commit."""
    if "sds_session" not in g:
        g.sds_session = current_app.extensions["sds"]["sessionmaker"]()
    value: Session = g.sds_session
    return value


def read_session() -> Session:
    """The request's Session for a request that only reads (the FHIR API): a db.ReadOnlySession (one pooled
    Connection, no transaction machinery; on SQLite no BEGIN/ROLLBACK). Use it before any other Session."""
    if "sds_session" not in g:
        g.sds_session = ReadOnlySession(current_app.extensions["sds"]["engine"])
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


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("sds_session", None)
    if db_session is not None:
        db_session.close()


def _common_headers(response: Response) -> Response:
    """Cache-Control: no-store and charset=utf-8 on every body; gzip when the client accepts it.

    Reads and writes the header list directly (no mimetype/Vary parsing): every request pays for this."""
    headers = response.headers
    headers["Cache-Control"] = "no-store"
    content_type = headers.get("Content-Type")
    if content_type:
        mimetype = content_type.partition(";")[0].strip()
        if mimetype and ("json" in mimetype or "xml" in mimetype or mimetype.startswith("text/")):
            headers["Content-Type"] = f"{mimetype}; charset=utf-8"
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    _maybe_gzip(response)
    return response


def accepts_gzip() -> bool:
    # request.headers.get, without the KeyError EnvironHeaders raises for a missing header
    for part in request.environ.get("HTTP_ACCEPT_ENCODING", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*") and "q=0" not in params.replace(" ", "").split(
            ","
        ):
            q = params.replace(" ", "")
            if q in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
                continue
            return True
    return False


def _maybe_gzip(response: Response) -> None:
    headers = response.headers
    names = {name.lower() for name in headers.keys()}  # one pass: a missing name costs Headers an exception
    if "vary" in names:
        response.vary.add("Accept-Encoding")
    else:
        headers["Vary"] = "Accept-Encoding"
    if response.direct_passthrough or response.is_streamed or "content-encoding" in names:
        return
    body = response.get_data()
    if len(body) < GZIP_MIN_BYTES or not accepts_gzip():  # the size first: it needs no header parsing
        return
    response.set_data(gzip.compress(body, compresslevel=5))
    headers["Content-Encoding"] = "gzip"


def _http_error(exc: HTTPException) -> Any:
    """Unmatched URLs and wrong methods: each facade answers with its own OperationOutcome shape."""
    if request.path == "/api" or request.path.startswith("/api/"):
        from sds_registry.api.errors import http_error_response as api_error
    else:
        from sds_registry.fhir.views import http_error_response as api_error
    return api_error(exc)
