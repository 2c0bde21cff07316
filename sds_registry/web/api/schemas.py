"""marshmallow schemas for /api bodies: shapes and types only. The rules live in domain/ (called by services)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields

from sds_registry.errors import InvalidIdentifier, Issue
from sds_registry.services.records import AS_LISTS, AS_SCALARS, MHS_LISTS, MHS_SCALARS, ORG_SCALARS

_Str = fields.String(allow_none=True)


def _schema(name: str, scalars: tuple[str, ...], lists: tuple[str, ...],
            integers: tuple[str, ...] = (), extra: Mapping[str, fields.Field[Any]] | None = None) -> type[Schema]:
    attrs: dict[str, Any] = {}
    for field_name in scalars:
        attrs[field_name] = (fields.Integer(allow_none=True, strict=True) if field_name in integers
                             else fields.String(allow_none=True))
    for field_name in lists:
        attrs[field_name] = fields.List(fields.String(), allow_none=True)
    attrs.update(extra or {})
    attrs["Meta"] = type("Meta", (), {"unknown": RAISE})
    return type(name, (Schema,), attrs)


OrganisationSchema = _schema("OrganisationSchema", ORG_SCALARS, ())
AccreditedSystemSchema = _schema("AccreditedSystemSchema", AS_SCALARS, AS_LISTS)
MhsSchema = _schema("MhsSchema", MHS_SCALARS, MHS_LISTS, integers=("retries",))
AgreementSchema = _schema("AgreementSchema", ("consumer_ods", "provider_ods", "description"), ())
_PRODUCT = ("manufacturer_org", "product_name", "product_version", "product_key", "description")
ProviderRegistrationSchema = _schema(
    "ProviderRegistrationSchema",
    ("ods_code", "fqdn", "fhir_version", "gpc_major_version", "service_root", "asid", "party_key", *_PRODUCT),
    ("interactions",),
    extra={"cpa_ids": fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True),
           "replace": fields.Boolean(truthy={True}, falsy={False})},
)
ConsumerRegistrationSchema = _schema(
    "ConsumerRegistrationSchema", ("ods_code", "asid", "party_key", "fqdn", *_PRODUCT), ("interactions", "clients")
)

# marshmallow's messages -> our rule codes.
_RULES = {
    "Unknown field.": "unknown-field",
    "Missing data for required field.": "required",
    "Field may not be null.": "not-null",
}


def load(schema: type[Schema], data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Load a JSON body with ``schema``; shape errors become one InvalidIdentifier listing every field."""
    if not isinstance(data, dict):
        raise InvalidIdentifier.single("$", "type", "the body must be a JSON object")
    try:
        loaded: dict[str, Any] = schema().load(data, partial=partial)
    except ValidationError as exc:
        raise InvalidIdentifier(list(_issues(exc.messages))) from None
    return loaded


def _issues(messages: Any, prefix: str = "") -> list[Issue]:
    out: list[Issue] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(_issues(value, path))
    elif isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict | list):
                out.extend(_issues(message, prefix))
            else:
                out.append(Issue(prefix or "$", _RULES.get(str(message), "type"), str(message)))
    return out
