"""The Spine Secure Proxy emulator: proxy.py (WSGI app + run_ssp), auth.py (JWT rules), outcome.py, audit.py,
follow.py, views.py (/api/ssp/authorise, /api/audit)."""
