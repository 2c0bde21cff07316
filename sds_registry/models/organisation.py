"""Organisations (ODS codes): the nhsOrg entries under ou=Organisations,o=nhs."""

from __future__ import annotations

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sds_registry.db import Base
from sds_registry.models._columns import Versioned


class Organisation(Versioned, Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ods_code: Mapped[str] = mapped_column(String(9), nullable=False, unique=True)  # nhsIDCode / RDN
    name: Mapped[str] = mapped_column(String(255), nullable=False)  # o
    org_type: Mapped[str] = mapped_column(String(100), nullable=False, default="GP Practice")  # nhsOrgType
    org_type_code: Mapped[str | None] = mapped_column(String(10))  # nhsOrgTypeCode
    postal_address: Mapped[str | None] = mapped_column(Text)  # postalAddress, lines joined with "$"
    postcode: Mapped[str | None] = mapped_column(String(10))  # postalCode
    locality: Mapped[str | None] = mapped_column(String(100))  # l
