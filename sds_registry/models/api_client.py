"""API clients: hashed bearer tokens, each bound to ODS codes or admin."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sds_registry.db import Base, utcnow


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # sha256 hex
    admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    revoked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    ods_rows: Mapped[list[ApiClientOds]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def ods_codes(self) -> frozenset[str]:
        return frozenset(r.ods_code for r in self.ods_rows)


class ApiClientOds(Base):
    __tablename__ = "api_client_ods"

    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), primary_key=True)
    ods_code: Mapped[str] = mapped_column(String(9), primary_key=True)
