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


# ---- response shapes (what services/records.py, clients and audit render), for the OpenAPI contract ----------

_META: dict[str, fields.Field[Any]] = {
    "version": fields.Integer(),
    "created_at": fields.String(allow_none=True),
    "updated_at": fields.String(allow_none=True),
    "flags": fields.List(fields.String()),
}
OrganisationRecord = _schema("OrganisationRecord", ORG_SCALARS, (), extra=_META)
AccreditedSystemRecord = _schema("AccreditedSystemRecord", AS_SCALARS, AS_LISTS, extra=_META)
MhsRecord = _schema("MhsRecord", MHS_SCALARS, MHS_LISTS, integers=("retries",), extra=_META)
AgreementRecord = _schema("AgreementRecord", ("consumer_ods", "provider_ods", "description"), (),
                          extra={"id": fields.Integer(), **_META})


class ProviderRegistered(Schema):
    accredited_system = fields.Nested(AccreditedSystemRecord)
    message_handling_systems = fields.List(fields.Nested(MhsRecord))


class ConsumerRegistered(AccreditedSystemRecord):  # type: ignore[misc, valid-type]
    message_handling_systems = fields.List(fields.Nested(MhsRecord))


class Resolved(Schema):
    ods_code = fields.String()
    interaction_id = fields.String()
    service_root_url = fields.String(allow_none=True)
    party_key = fields.String(allow_none=True)
    asid = fields.String(allow_none=True)
    fqdn = fields.String(allow_none=True)
    cpa_id = fields.String(allow_none=True)


class Interaction(Schema):
    id = fields.String()
    capability = fields.String(allow_none=True)
    http_method = fields.String(allow_none=True)
    path_pattern = fields.String(allow_none=True)
    requested_scope = fields.String(allow_none=True)
    routing_segment = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    current = fields.Boolean()


class ClientRecord(Schema):
    id = fields.Integer()
    name = fields.String()
    admin = fields.Boolean()
    ods_codes = fields.List(fields.String())
    created_at = fields.String(allow_none=True)
    last_used_at = fields.String(allow_none=True)
    revoked = fields.Boolean()
    revoked_at = fields.String(allow_none=True)


class ClientIssued(ClientRecord):
    token = fields.String()


class WriteEvent(Schema):
    id = fields.Integer()
    at = fields.String()
    actor = fields.String(allow_none=True)
    action = fields.String()
    record_type = fields.String()
    record_key = fields.String()
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)


class SspDecisionRecord(Schema):
    id = fields.Integer()
    at = fields.String()
    traceId = fields.String(allow_none=True)
    fromAsid = fields.String(allow_none=True)
    toAsid = fields.String(allow_none=True)
    interactionId = fields.String(allow_none=True)
    method = fields.String(allow_none=True)
    targetUrl = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    status = fields.Integer(allow_none=True)
    providerStatus = fields.Integer(allow_none=True)
    latencyMs = fields.Integer(allow_none=True)


class AuthoriseRequest(Schema):
    method = fields.String(required=True)
    targetUrl = fields.String(required=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    clientCertificateCn = fields.String(allow_none=True)


class OutcomeCoding(Schema):
    system = fields.String()
    code = fields.String()
    display = fields.String()


class OutcomeDetails(Schema):
    coding = fields.List(fields.Nested(OutcomeCoding))


class OutcomeIssue(Schema):
    severity = fields.String()
    code = fields.String()
    details = fields.Nested(OutcomeDetails)
    diagnostics = fields.String()
    expression = fields.List(fields.String())


class OutcomeMeta(Schema):
    profile = fields.List(fields.String())


class OperationOutcome(Schema):
    resourceType = fields.String()
    id = fields.String()  # the SSP's outcomes carry one
    meta = fields.Nested(OutcomeMeta)
    issue = fields.List(fields.Nested(OutcomeIssue))


class AuthoriseDecision(Schema):
    allowed = fields.Boolean()
    status = fields.Integer()
    outcome = fields.String()
    endpoint = fields.String(allow_none=True)
    cpaId = fields.String(allow_none=True)
    operationOutcome = fields.Nested(OperationOutcome)


def page_of(item: type[Schema]) -> type[Schema]:
    """The shape of a paged list: ``items`` and the ``next`` link (null on the last page)."""
    return type(f"{item.__name__}Page", (Schema,), {
        "items": fields.List(fields.Nested(item)), "next": fields.String(allow_none=True)})
