"""Accredited systems (nhsAs): one per organisation and system, keyed by ASID. Multi-valued attributes: child tables."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.ext.orderinglist import ordering_list
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sds_registry.db import Base
from sds_registry.models._columns import Versioned


class AccreditedSystem(Versioned, Base):
    __tablename__ = "accredited_systems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asid: Mapped[str] = mapped_column(String(12), nullable=False, unique=True)  # uniqueIdentifier
    ods_code: Mapped[str] = mapped_column(String(9), nullable=False)  # nhsIDCode
    party_key: Mapped[str] = mapped_column(String(40), nullable=False)  # nhsMHSPartyKey
    manufacturer_org: Mapped[str | None] = mapped_column(String(9))  # nhsMhsManufacturerOrg
    product_key: Mapped[str | None] = mapped_column(String(20))  # nhsProductKey
    product_name: Mapped[str | None] = mapped_column(String(255))  # nhsProductName
    product_version: Mapped[str | None] = mapped_column(String(255))  # nhsProductVersion
    description: Mapped[str | None] = mapped_column(Text)  # description
    requestor_urp: Mapped[str | None] = mapped_column(String(255))  # nhsRequestorURP
    date_requested: Mapped[str | None] = mapped_column(String(14))  # nhsDateRequested
    approver_urp: Mapped[str | None] = mapped_column(String(255))  # nhsApproverURP
    date_approved: Mapped[str | None] = mapped_column(String(14))  # nhsDateApproved
    temp_uid: Mapped[str | None] = mapped_column(String(20))  # nhsTempUid

    interaction_rows: Mapped[list[AsInteraction]] = relationship(
        order_by="AsInteraction.position", collection_class=ordering_list("position"),
        cascade="all, delete-orphan", lazy="selectin",
    )
    client_rows: Mapped[list[AsClient]] = relationship(
        order_by="AsClient.position", collection_class=ordering_list("position"),
        cascade="all, delete-orphan", lazy="selectin",
    )
    acf_rows: Mapped[list[AsAcf]] = relationship(
        order_by="AsAcf.position", collection_class=ordering_list("position"),
        cascade="all, delete-orphan", lazy="selectin",
    )
    category_bag_rows: Mapped[list[AsCategoryBag]] = relationship(
        order_by="AsCategoryBag.position", collection_class=ordering_list("position"),
        cascade="all, delete-orphan", lazy="selectin",
    )

    interactions: AssociationProxy[list[str]] = association_proxy(
        "interaction_rows", "interaction_id", creator=lambda v: AsInteraction(interaction_id=v)
    )
    clients: AssociationProxy[list[str]] = association_proxy(
        "client_rows", "ods_code", creator=lambda v: AsClient(ods_code=v)
    )
    acfs: AssociationProxy[list[str]] = association_proxy("acf_rows", "value", creator=lambda v: AsAcf(value=v))
    category_bags: AssociationProxy[list[str]] = association_proxy(
        "category_bag_rows", "value", creator=lambda v: AsCategoryBag(value=v)
    )

    __table_args__ = (
        Index("ix_accredited_systems_ods_code_party_key", "ods_code", "party_key"),
        Index("ix_accredited_systems_party_key_lower", func.lower(party_key)),
        Index("ix_accredited_systems_asid_lower", func.lower(asid)),
        Index("ix_accredited_systems_ods_code_manufacturer_org", "ods_code", "manufacturer_org"),
    )


class AsInteraction(Base):
    """nhsAsSvcIA: an interaction the system is accredited for (consumers: may send; providers: also serve)."""

    __tablename__ = "as_interactions"

    as_id: Mapped[int] = mapped_column(ForeignKey("accredited_systems.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    interaction_id: Mapped[str] = mapped_column(String(255), nullable=False)

    __table_args__ = (
        UniqueConstraint("as_id", "interaction_id"),
        Index("ix_as_interactions_interaction_id_as_id", "interaction_id", "as_id"),
    )


class AsClient(Base):
    """nhsAsClient: ODS code of a client organisation using the system."""

    __tablename__ = "as_clients"

    as_id: Mapped[int] = mapped_column(ForeignKey("accredited_systems.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    ods_code: Mapped[str] = mapped_column(String(40), nullable=False)

    __table_args__ = (Index("ix_as_clients_ods_code_lower", func.lower(ods_code)),)


class AsAcf(Base):
    """nhsAsACF: an access control flag."""

    __tablename__ = "as_acfs"

    as_id: Mapped[int] = mapped_column(ForeignKey("accredited_systems.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(40), nullable=False)


class AsCategoryBag(Base):
    """nhsAsCategoryBag: a category bag value."""

    __tablename__ = "as_category_bags"

    as_id: Mapped[int] = mapped_column(ForeignKey("accredited_systems.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)
