"""``python -m sds_registry.cli``: the ``sds`` command (``sds serve`` starts its facades this way)."""

from __future__ import annotations

from sds_registry.cli import main

main()
