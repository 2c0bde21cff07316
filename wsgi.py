"""The WSGI entry point for any WSGI server: ``gunicorn wsgi:app``. Builds the app from SDS_* settings; nothing else."""

from __future__ import annotations

from sds_registry import create_app

app = create_app()
