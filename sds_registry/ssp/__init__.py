"""The Spine Secure Proxy emulator: proxy.py (WSGI app + run_ssp), outcome.py, audit.py,
follow.py, views.py (/api/ssp/authorise, /api/audit)."""
