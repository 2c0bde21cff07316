"""The WSGI entry point for any WSGI server: ``gunicorn wsgi:app``. Builds the app from SDS_* settings and sends
the app's log lines (one access line per request) to stderr at SDS_LOG_LEVEL in SDS_LOG_FORMAT; nothing else."""

from __future__ import annotations

from sds_registry import create_app
from sds_registry.config import load_settings
from sds_registry.logs import setup_logging

_settings = load_settings()
setup_logging(_settings.log_level, _settings.log_format)
app = create_app()
