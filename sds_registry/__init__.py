"""sds-registry: a self-hostable Spine Directory Service. ``create_app`` builds the HTTP application."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The HTTP app: JSON registry API (/api), SDS FHIR API, health checks. Settings: defaults, SDS_*, overrides."""
    from sds_registry import web
    from sds_registry.config import load_settings

    settings = load_settings(overrides)
    app = Flask(__name__, static_folder=None)
    web.init_app(app, settings)
    return app
