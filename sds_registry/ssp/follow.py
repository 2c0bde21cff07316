"""``sds audit --follow``: print SSP decisions as they are recorded, one line each (polls ssp_decisions by id)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from sqlalchemy import func, or_, select

from sds_registry.config import Settings
from sds_registry.db import make_engine, make_sessionmaker
from sds_registry.models import SspDecision


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
    sessions = make_sessionmaker(engine)
    stop = stop or threading.Event()
    try:
        with sessions() as session:
            last = session.scalar(select(func.max(SspDecision.id))) or 0
        while not stop.is_set():
            with sessions() as session:
                top = session.scalar(select(func.max(SspDecision.id))) or 0
                query = select(SspDecision).where(SspDecision.id > last, SspDecision.id <= top)
                if asid:
                    query = query.where(or_(SspDecision.from_asid == asid, SspDecision.to_asid == asid))
                rows = list(session.scalars(query.order_by(SspDecision.id)))
            for row in rows:
                out.write(format_line(row) + "\n")
            if rows:
                out.flush()
            last = max(last, top)
            stop.wait(interval)
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
