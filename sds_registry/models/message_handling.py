"""Message handling systems (nhsMhs): one row per party key and interaction, holding the endpoint URL."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.ext.orderinglist import ordering_list
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sds_registry.db import Base
from sds_registry.models._columns import Versioned


class MessageHandlingSystem(Versioned, Base):
    __tablename__ = "message_handling_systems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unique_identifier: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # RDN
    cpa_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # nhsMhsCPAId
    ods_code: Mapped[str] = mapped_column(String(9), nullable=False)  # nhsIDCode
    party_key: Mapped[str] = mapped_column(String(40), nullable=False)  # nhsMHSPartyKey
    interaction_id: Mapped[str] = mapped_column(String(255), nullable=False)  # nhsMhsSvcIA (single-valued)
    service_name: Mapped[str | None] = mapped_column(String(255))  # nhsMHsSN
    interaction_name: Mapped[str | None] = mapped_column(String(255))  # nhsMHsIN
    fqdn: Mapped[str | None] = mapped_column(String(253))  # nhsMhsFQDN
    is_authenticated: Mapped[str | None] = mapped_column(String(20))  # nhsMHSIsAuthenticated
    sync_reply_mode: Mapped[str | None] = mapped_column(String(30))  # nhsMHSSyncReplyMode
    ack_requested: Mapped[str | None] = mapped_column(String(10))  # nhsMHSAckRequested
    duplicate_elimination: Mapped[str | None] = mapped_column(String(10))  # nhsMHSDuplicateElimination
    persist_duration: Mapped[str | None] = mapped_column(String(30))  # nhsMHSPersistDuration
    retries: Mapped[int | None] = mapped_column(Integer)  # nhsMHSRetries
    retry_interval: Mapped[str | None] = mapped_column(String(30))  # nhsMHSRetryInterval
    ep_interaction_type: Mapped[str | None] = mapped_column(String(10))  # nhsEPInteractionType
    contract_property_template_key: Mapped[str | None] = mapped_column(String(20))  # nhsContractPropertyTemplateKey
    product_key: Mapped[str | None] = mapped_column(String(20))  # nhsProductKey
    product_name: Mapped[str | None] = mapped_column(String(255))  # nhsProductName
    product_version: Mapped[str | None] = mapped_column(String(255))  # nhsProductVersion
    manufacturer_org: Mapped[str | None] = mapped_column(String(9))  # nhsMhsManufacturerOrg
    requestor_urp: Mapped[str | None] = mapped_column(String(255))  # nhsRequestorURP
    date_requested: Mapped[str | None] = mapped_column(String(14))  # nhsDateRequested
    approver_urp: Mapped[str | None] = mapped_column(String(255))  # nhsApproverURP
    date_approved: Mapped[str | None] = mapped_column(String(14))  # nhsDateApproved
    dns_approver: Mapped[str | None] = mapped_column(String(255))  # nhsDNSApprover
    date_dns_approved: Mapped[str | None] = mapped_column(String(14))  # nhsDateDNSApproved
    service_description: Mapped[str | None] = mapped_column(Text)  # nhsMHSServiceDescription
    ip_address: Mapped[str | None] = mapped_column(String(45))  # nhsMhsIPAddress
    network: Mapped[str | None] = mapped_column(String(100))  # nhsMhsNetwork
    sin_code: Mapped[str | None] = mapped_column(String(100))  # nhsMhsSinCode

    endpoint_rows: Mapped[list[MhsEndpoint]] = relationship(
        order_by="MhsEndpoint.position", collection_class=ordering_list("position"),
        cascade="all, delete-orphan", lazy="selectin",
    )
    actor_rows: Mapped[list[MhsActor]] = relationship(
        order_by="MhsActor.position", collection_class=ordering_list("position"),
        cascade="all, delete-orphan", lazy="selectin",
    )
    endpoints: AssociationProxy[list[str]] = association_proxy(
        "endpoint_rows", "url", creator=lambda v: MhsEndpoint(url=v)
    )
    actors: AssociationProxy[list[str]] = association_proxy("actor_rows", "value", creator=lambda v: MhsActor(value=v))

    __table_args__ = (
        UniqueConstraint("party_key", "interaction_id"),
        Index("ix_message_handling_systems_ods_code_interaction_id", "ods_code", "interaction_id"),
        Index("ix_message_handling_systems_interaction_id_party_key_lower", "interaction_id", func.lower(party_key)),
        Index("ix_message_handling_systems_party_key_lower", func.lower(party_key)),
        Index("ix_message_handling_systems_unique_identifier_lower", func.lower(unique_identifier)),
        # The web pages' paged searches (keyset on id): by interaction, by FQDN (DNS names ignore case).
        Index("ix_message_handling_systems_interaction_id_id", "interaction_id", "id"),
        Index("ix_message_handling_systems_fqdn_lower_id", func.lower(fqdn), "id"),
    )


class MhsEndpoint(Base):
    """nhsMHSEndPoint: the endpoint URL (for GP Connect: the FHIR service root URL). Ordered."""

    __tablename__ = "mhs_endpoints"

    mhs_id: Mapped[int] = mapped_column(
        ForeignKey("message_handling_systems.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)


class MhsActor(Base):
    """nhsMHSActor: an ebXML actor. Ordered."""

    __tablename__ = "mhs_actors"

    mhs_id: Mapped[int] = mapped_column(
        ForeignKey("message_handling_systems.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)
