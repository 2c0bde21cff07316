"""Every row of every table, to show that a refused request changed nothing in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from sds_registry.db import Base

#: Columns a refused request may still touch by design: a token's last use is noted when it authenticates.
VOLATILE = {("api_clients", "last_used_at")}
#: The SSP decision audit, written by background writers (an SSP, /api/ssp/authorise), not by /api writes.
SKIPPED = {"ssp_decisions"}


def database_snapshot(engine: Engine, *, keep_volatile: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Table name -> its rows (sorted), every column but the volatile ones (kept with ``keep_volatile``)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in SKIPPED:
                continue
            columns = [c for c in table.columns if keep_volatile or (table.name, c.name) not in VOLATILE]
            rows = conn.execute(select(*columns)).all()
            out[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return out
