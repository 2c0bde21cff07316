"""SQLAlchemy tables, one module per aggregate. Columns, constraints and indexes only; no queries."""

from __future__ import annotations

from sds_registry.models.accredited_system import AccreditedSystem, AsAcf, AsCategoryBag, AsClient, AsInteraction
from sds_registry.models.agreement import DataSharingAgreement
from sds_registry.models.api_client import ApiClient, ApiClientOds
from sds_registry.models.audit import AuditEvent, SspDecision
from sds_registry.models.interaction import InteractionType
from sds_registry.models.message_handling import MessageHandlingSystem, MhsActor, MhsEndpoint
from sds_registry.models.organisation import Organisation

__all__ = [
    "AccreditedSystem",
    "ApiClient",
    "ApiClientOds",
    "AsAcf",
    "AsCategoryBag",
    "AsClient",
    "AsInteraction",
    "AuditEvent",
    "DataSharingAgreement",
    "InteractionType",
    "MessageHandlingSystem",
    "MhsActor",
    "MhsEndpoint",
    "Organisation",
    "SspDecision",
]
