"""SSP decision endpoint under /api/ssp (placeholder until the SSP emulator lands)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ssp", __name__)
