"""Data-sharing agreements: organisation pairs the SSP lets talk ("*" matches any ODS code)."""

from __future__ import annotations

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sds_registry.db import Base
from sds_registry.models._columns import Versioned


class DataSharingAgreement(Versioned, Base):
    __tablename__ = "data_sharing_agreements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consumer_ods: Mapped[str] = mapped_column(String(9), nullable=False)  # sender org, or "*"
    provider_ods: Mapped[str] = mapped_column(String(9), nullable=False)  # receiver org, or "*"
    description: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("consumer_ods", "provider_ods"),)
