"""The web pages (SDS_WEB=1): server-rendered HTML over the same services as /api. Search, organisation,
system, interaction catalogue, SSP activity and registration pages, one module each; templates and CSS are
package data beside them. ``install`` adds them to the app; nothing here changes another facade."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Flask

from sds_registry.config import Settings

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/pages")


def install(app: Flask, settings: Settings) -> None:
    """Serve the pages at / with a signed session cookie (SDS_WEB_SECRET_KEY) for the registration forms."""
    from sds_registry.web.pages import interactions, organisation, register, search, ssp, system  # noqa: F401

    app.secret_key = settings.web_secret_key
    app.config.update(
        SESSION_COOKIE_NAME="sds_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8), WTF_CSRF_TIME_LIMIT=8 * 3600,
    )
    app.register_blueprint(bp)
