"""The HTTP app's assembly: settings and engine on the app, the facades' blueprints, the app-level 404/405
handlers (each facade's OperationOutcome shape), and the headers every answer carries (no-store, charset, gzip).

Nothing imports this module but ``sds_registry.create_app``: blueprints take their context from web.context.
"""

from __future__ import annotations

import gzip
import logging
import sys
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, InternalServerError

from sds_registry.config import Settings
from sds_registry.db import ReadPool, make_engine, make_sessionmaker, unavailable
from sds_registry.web import access, context, fhir, negotiation, pages
from sds_registry.web import metrics as web_metrics
from sds_registry.web.api import admin as api_admin
from sds_registry.web.api import errors as api_errors
from sds_registry.web.api import openapi as api_openapi
from sds_registry.web.api import ssp as ssp_api
from sds_registry.web.api import views as api_views

GZIP_MIN_BYTES = 1024
log = logging.getLogger("sds.http")


def build_app(settings: Settings) -> Flask:
    """A Flask app serving the JSON registry API (/api), the SSP's HTTP endpoints and the SDS FHIR API, and the web
    pages at / when SDS_WEB is on."""
    app = Flask("sds_registry", static_folder=None)
    engine = make_engine(settings.database_url)
    app.extensions["sds"] = {"settings": settings, "engine": engine, "sessionmaker": make_sessionmaker(engine),
                             "read_pool": ReadPool(engine)}
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.strict_slashes = True
    app.teardown_appcontext(context.close_session)
    access.install(app)  # first: its after_request hook runs last, and sees the final size
    app.after_request(_common_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.register_blueprint(api_views.bp, url_prefix="/api")
    app.register_blueprint(api_admin.bp, url_prefix="/api")
    app.register_blueprint(ssp_api.bp, url_prefix="/api/ssp")
    app.register_blueprint(ssp_api.audit_bp, url_prefix="/api/audit")
    app.register_blueprint(api_openapi.bp, url_prefix="/api")
    app.register_blueprint(fhir.blueprint(settings))
    if settings.web:
        pages.install(app, settings)
    web_metrics.install(app, engine)
    return app


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
    if len(body) < GZIP_MIN_BYTES or not negotiation.accepts_gzip():  # the size first: it needs no header parsing
        return
    response.set_data(gzip.compress(body, compresslevel=5))
    headers["Content-Encoding"] = "gzip"


def _http_error(exc: HTTPException) -> Any:
    """Unmatched URLs and wrong methods: each facade answers with its own OperationOutcome shape (blueprint
    handlers never see unmatched URLs, so the choice is made here, by path)."""
    if request.path == "/api" or request.path.startswith("/api/"):
        return api_errors.http_error_response(exc)
    return fhir.http_error_response(exc)


def _unexpected_error(exc: Exception) -> Any:
    """Any other exception: a database that cannot be used (db.unavailable) is 503, or 507 for a full one, in
    the facade's OperationOutcome shape, with one log line and no traceback; anything else is logged, 500."""
    if not (request.path == "/api" or request.path.startswith("/api/")):
        return fhir.lookup_failed(exc, f"{request.method} {request.path}")
    failure = unavailable(exc)
    if failure is None:
        current_app.log_exception(sys.exc_info())
        return _http_error(InternalServerError(original_exception=exc))
    log.warning("%s %s: %s (%s)", request.method, request.path, failure, type(exc).__name__)
    return api_errors.unavailable_response(failure)
