"""sds-registry: a self-hostable Spine Directory Service. ``create_app`` builds the HTTP application."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # not at run time: processes that serve no HTTP (the CLI, its LDIF worker) need no Flask
    from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The HTTP app: JSON registry API (/api), SDS FHIR API, health checks. Settings: defaults, SDS_*, overrides."""
    from sds_registry.config import load_settings
    from sds_registry.web.app import build_app

    return build_app(load_settings(overrides))
