"""The HTTP facades: app assembly (app.py), per-request context (context.py), one blueprint per facade."""
