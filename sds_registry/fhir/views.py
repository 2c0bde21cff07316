"""SDS FHIR API views (placeholder until the facade lands): registers nothing yet."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from sds_registry.config import Settings


def register(app: Flask, settings: Settings) -> None:
    return None


def http_error_response(exc: HTTPException) -> Any:
    return exc
