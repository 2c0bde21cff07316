"""The interaction catalogue table: GP Connect IDs (synced from domain/interactions.py) and other Spine URNs."""

from __future__ import annotations

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sds_registry.db import Base


class InteractionType(Base):
    __tablename__ = "interactions"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    capability: Mapped[str] = mapped_column(String(30), nullable=False, default="other")
    http_method: Mapped[str | None] = mapped_column(String(10))
    path_pattern: Mapped[str | None] = mapped_column(String(255))
    requested_scope: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(Text)
    builtin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
