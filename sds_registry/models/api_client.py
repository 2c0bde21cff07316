"""API clients: hashed bearer tokens, each bound to ODS codes or admin; revoked ones are kept (the audit names them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sds_registry.db import Base, utcnow

_LIVE = text("revoked_at IS NULL")


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)  # unique among live clients (index below)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # sha256 hex
    admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    #: When the token last authenticated a write or an admin request (updated at most once a minute).
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Set once, on revocation; the token is refused from then on.
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    ods_rows: Mapped[list[ApiClientOds]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    __table_args__ = (
        Index("uq_api_clients_live_name", "name", unique=True, sqlite_where=_LIVE, postgresql_where=_LIVE),
    )

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def ods_codes(self) -> frozenset[str]:
        return frozenset(r.ods_code for r in self.ods_rows)


class ApiClientOds(Base):
    __tablename__ = "api_client_ods"

    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), primary_key=True)
    ods_code: Mapped[str] = mapped_column(String(9), primary_key=True)
