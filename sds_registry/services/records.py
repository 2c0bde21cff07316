"""Rows <-> plain dicts for the registry's aggregates (what the API returns and the audit log stores)."""

from __future__ import annotations

from typing import Any

from sds_registry.models import AccreditedSystem, DataSharingAgreement, MessageHandlingSystem, Organisation

AS_SCALARS = (
    "asid", "ods_code", "party_key", "manufacturer_org", "product_key", "product_name", "product_version",
    "description", "requestor_urp", "date_requested", "approver_urp", "date_approved", "temp_uid",
)
AS_LISTS = ("interactions", "clients", "acfs", "category_bags")
MHS_SCALARS = (
    "unique_identifier", "cpa_id", "ods_code", "party_key", "interaction_id", "service_name", "interaction_name",
    "fqdn", "is_authenticated", "sync_reply_mode", "ack_requested", "duplicate_elimination", "persist_duration",
    "retries", "retry_interval", "ep_interaction_type", "contract_property_template_key", "product_key",
    "product_name", "product_version", "manufacturer_org", "requestor_urp", "date_requested", "approver_urp",
    "date_approved", "dns_approver", "date_dns_approved", "service_description", "ip_address", "network", "sin_code",
)
MHS_LISTS = ("endpoints", "actors")
ORG_SCALARS = ("ods_code", "name", "org_type", "org_type_code", "postal_address", "postcode", "locality")


def _meta(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
        "flags": row.flags.split() if row.flags else [],
    }


def accredited_system_dict(row: AccreditedSystem) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(row, name) for name in AS_SCALARS}
    out.update({name: list(getattr(row, name)) for name in AS_LISTS})
    out.update(_meta(row))
    return out


def mhs_dict(row: MessageHandlingSystem) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(row, name) for name in MHS_SCALARS}
    out.update({name: list(getattr(row, name)) for name in MHS_LISTS})
    out.update(_meta(row))
    return out


def organisation_dict(row: Organisation) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(row, name) for name in ORG_SCALARS}
    out.update(_meta(row))
    return out


def agreement_dict(row: DataSharingAgreement) -> dict[str, Any]:
    return {
        "id": row.id,
        "consumer_ods": row.consumer_ods,
        "provider_ods": row.provider_ods,
        "description": row.description,
        **_meta(row),
    }
