"""Append-only audit: registry writes (AuditEvent) and SSP decisions (SspDecision)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sds_registry.db import Base, utcnow


class AuditEvent(Base):
    """One registry write: who, what, which record, and the record before and after (JSON)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)  # API client name, or "cli:<command>"
    action: Mapped[str] = mapped_column(String(20), nullable=False)  # create / update / delete
    record_type: Mapped[str] = mapped_column(String(40), nullable=False)
    record_key: Mapped[str] = mapped_column(String(255), nullable=False)
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audit_events_record_type_record_key", "record_type", "record_key"),
        Index("ix_audit_events_at", "at"),
    )


class SspDecision(Base):
    """One SSP authorisation decision (and, when forwarded, the provider's status and latency)."""

    __tablename__ = "ssp_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    from_asid: Mapped[str | None] = mapped_column(String(64))
    to_asid: Mapped[str | None] = mapped_column(String(64))
    interaction_id: Mapped[str | None] = mapped_column(String(255))
    method: Mapped[str | None] = mapped_column(String(10))
    target_url: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text, nullable=False)  # "ALLOWED" or the refusal token
    status: Mapped[int | None] = mapped_column(Integer)  # status returned to the consumer
    provider_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_ssp_decisions_at", "at"),
        Index("ix_ssp_decisions_from_asid_at", "from_asid", "at"),
        Index("ix_ssp_decisions_to_asid_at", "to_asid", "at"),
        Index("ix_ssp_decisions_trace_id", "trace_id"),
    )
