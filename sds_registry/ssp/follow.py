"""``sds audit`` output: a line per SSP decision, and --follow printing new ones. No SQL here: services.audit."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from sds_registry.config import Settings
from sds_registry.db import make_engine, make_sessionmaker
from sds_registry.models import SspDecision
from sds_registry.services import audit


def format_line(row: SspDecision) -> str:
    at = row.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    latency = f"{row.latency_ms:.1f}ms" if row.latency_ms is not None else "-"
    provider = row.provider_status if row.provider_status is not None else "-"
    return (f"{at} {row.status if row.status is not None else '-'} {row.outcome} from={row.from_asid or '-'} "
            f"to={row.to_asid or '-'} {row.method or '-'} {row.interaction_id or '-'} trace={row.trace_id or '-'} "
            f"provider={provider} {latency} {row.target_url or '-'}")


def follow(
    settings: Settings, asid: str | None = None, interval: float = 1.0, out: TextIO = sys.stdout,
    *, stop: threading.Event | None = None,
) -> None:
    """Print each decision recorded from now on (``asid``: only those it sent or received) until ``stop``
    is set or KeyboardInterrupt."""
    engine = make_engine(settings.database_url)
    stop = stop or threading.Event()
    try:
        if stop.is_set():
            return
        for rows in audit.follow_decisions(make_sessionmaker(engine), asid=asid,
                                           wait=lambda: stop.wait(interval)):
            for row in rows:
                out.write(format_line(row) + "\n")
            if rows:
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
