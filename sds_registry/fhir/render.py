"""Directory records -> SDS FHIR R4 JSON (Device, Endpoint, searchset Bundle, OperationOutcome). Pure.

No I/O and no Flask: callers pass the records, the ids and the URLs. The mapping tables are those of
the national backend (NHSDigital/spine-directory-service-api, ``fhir_json_mapper.py``; its test fixtures
are in tests/data/sds-fhir-api/): element order as emitted there, the reliability extension before the
interaction extension, ``nhsMHSRetries`` as valueInteger, one Endpoint per endpoint URL, and every absent
value omitted (never an empty string, an empty list or a null). Their JSON text is json_text.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

FHIR_ID = "https://fhir.nhs.uk/Id/"
ASID_SYSTEM = FHIR_ID + "nhsSpineASID"
PARTY_KEY_SYSTEM = FHIR_ID + "nhsMhsPartyKey"
ODS_SYSTEM = FHIR_ID + "ods-organization-code"
INTERACTION_SYSTEM = FHIR_ID + "nhsServiceInteractionId"
FQDN_SYSTEM = FHIR_ID + "nhsMhsFQDN"
CPA_ID_SYSTEM = FHIR_ID + "nhsMhsCPAId"
MHS_ID_SYSTEM = FHIR_ID + "nhsMHSId"
STRUCTURE = "https://fhir.nhs.uk/StructureDefinition/"
MANUFACTURER_EXTENSION = STRUCTURE + "Extension-SDS-ManufacturingOrganisation"
INTERACTION_EXTENSION = STRUCTURE + "Extension-SDS-NhsServiceInteractionId"
RELIABILITY_EXTENSION = STRUCTURE + "Extension-SDS-ReliabilityConfiguration"
SPINE_CODING_SYSTEM = "https://fhir.nhs.uk/STU3/ValueSet/Spine-ErrorOrWarningCode-1"

CONNECTION_TYPE = {
    "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
    "code": "hl7-fhir-msg",
    "display": "HL7 FHIR Messaging",
}
PAYLOAD_TYPE = [{"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "any", "display": "Any",
}]}]

Resource = dict[str, Any]


class DeviceRecord(Protocol):
    """What the Device mapping reads from an nhsAs record (directory.AsView fits)."""

    @property
    def asid(self) -> str | None: ...
    @property
    def party_key(self) -> str | None: ...
    @property
    def manufacturer_org(self) -> str | None: ...
    @property
    def interactions(self) -> Sequence[str | None]: ...
    @property
    def clients(self) -> Sequence[str | None]: ...


class EndpointRecord(Protocol):
    """What the Endpoint mapping reads from an nhsMhs record (directory.MhsView fits)."""

    @property
    def ods_code(self) -> str | None: ...
    @property
    def party_key(self) -> str | None: ...
    @property
    def interaction_id(self) -> str | None: ...
    @property
    def unique_identifier(self) -> str | None: ...
    @property
    def cpa_id(self) -> str | None: ...
    @property
    def fqdn(self) -> str | None: ...
    @property
    def sync_reply_mode(self) -> str | None: ...
    @property
    def retry_interval(self) -> str | None: ...
    @property
    def retries(self) -> int | None: ...
    @property
    def persist_duration(self) -> str | None: ...
    @property
    def duplicate_elimination(self) -> str | None: ...
    @property
    def ack_requested(self) -> str | None: ...
    @property
    def endpoints(self) -> Sequence[str | None]: ...
    @property
    def actors(self) -> Sequence[str | None]: ...


def _present(value: object) -> bool:
    return value is not None and value != "" and not (isinstance(value, str) and not value.strip())


class _Identifier(dict[str, str]):
    """``{"system": ..., "value": ...}``: a plain dict to every reader; the emitter writes it from a template."""


class _ReferenceExtension(dict[str, Any]):
    """``{"url": ..., "valueReference": {"identifier": {...}}}``, written from a template (a Device can carry
    hundreds of these)."""


def _identifier(system: str, value: str) -> dict[str, str]:
    return _Identifier(system=system, value=value)


def _reference_extension(url: str, system: str, value: str) -> Resource:
    return _ReferenceExtension(url=url, valueReference={"identifier": {"system": system, "value": value}})


def device(record: DeviceRecord, resource_id: str) -> Resource:
    """An nhsAs record as a Device: ASID and party key, supplier, one extension per interaction, owner."""
    resource: Resource = {"resourceType": "Device", "id": resource_id}
    identifiers = []
    if _present(record.asid):
        identifiers.append(_identifier(ASID_SYSTEM, str(record.asid)))
    if _present(record.party_key):
        identifiers.append(_identifier(PARTY_KEY_SYSTEM, str(record.party_key)))
    if identifiers:
        resource["identifier"] = identifiers
    extensions = []
    if _present(record.manufacturer_org):
        extensions.append(_reference_extension(MANUFACTURER_EXTENSION, ODS_SYSTEM, str(record.manufacturer_org)))
    # In line (a Device can carry hundreds): for a str, _present is "not blank".
    extensions.extend([
        _ReferenceExtension(url=INTERACTION_EXTENSION,
                            valueReference={"identifier": {"system": INTERACTION_SYSTEM, "value": interaction}})
        for interaction in record.interactions
        if interaction is not None and (interaction.strip() if type(interaction) is str else _present(interaction))
    ])
    if extensions:
        resource["extension"] = extensions
    # nhsAsClient is multi-valued in LDAP but owner holds one: the national backend fails (500) on more
    # than one value; we answer with the first.
    owner = next((client for client in record.clients if client is not None and _present(client)), None)
    if owner is not None:
        resource["owner"] = {"identifier": _identifier(ODS_SYSTEM, owner)}
    return resource


def _reliability(record: EndpointRecord) -> Resource | None:
    parts: list[Resource] = []
    for name, value in (("nhsMHSSyncReplyMode", record.sync_reply_mode),
                        ("nhsMHSRetryInterval", record.retry_interval)):
        if _present(value):
            parts.append({"url": name, "valueString": value})
    if record.retries is not None and _present(record.retries):
        parts.append({"url": "nhsMHSRetries", "valueInteger": int(record.retries)})
    for name, value in (("nhsMHSPersistDuration", record.persist_duration),
                        ("nhsMHSDuplicateElimination", record.duplicate_elimination),
                        ("nhsMHSAckRequested", record.ack_requested)):
        if _present(value):
            parts.append({"url": name, "valueString": value})
    # nhsMHSActor is multi-valued in LDAP, single in the extension: first value (national: 500 on more).
    actor = next((a for a in record.actors if a is not None and _present(a)), None)
    if actor is not None:
        parts.append({"url": "nhsMHSActor", "valueString": actor})
    return {"url": RELIABILITY_EXTENSION, "extension": parts} if parts else None


def endpoints(record: EndpointRecord, new_id: Callable[[], str], address: str | None = None) -> list[Resource]:
    """An nhsMhs record as Endpoints: one per endpoint URL (one without address when it has none).

    ``address`` replaces every URL (the forward reliable/express intermediary substitution).
    """
    urls: list[str | None] = [address] if address is not None else [
        u for u in record.endpoints if u is not None and _present(u)]
    identifiers = [
        _identifier(system, str(value))
        for system, value in ((FQDN_SYSTEM, record.fqdn), (PARTY_KEY_SYSTEM, record.party_key),
                              (CPA_ID_SYSTEM, record.cpa_id), (MHS_ID_SYSTEM, record.unique_identifier))
        if _present(value)
    ]
    extensions: list[Resource] = []
    reliability = _reliability(record)
    if reliability is not None:
        extensions.append(reliability)
    if _present(record.interaction_id):
        extensions.append(
            _reference_extension(INTERACTION_EXTENSION, INTERACTION_SYSTEM, str(record.interaction_id)))
    out = []
    for url in urls or [None]:
        resource: Resource = {
            "resourceType": "Endpoint", "id": new_id(), "status": "active",
            "connectionType": CONNECTION_TYPE, "payloadType": PAYLOAD_TYPE,
        }
        if url is not None:
            resource["address"] = url
        if _present(record.ods_code):
            resource["managingOrganization"] = {"identifier": _identifier(ODS_SYSTEM, str(record.ods_code))}
        if identifiers:
            resource["identifier"] = identifiers
        if extensions:
            resource["extension"] = extensions
        out.append(resource)
    return out


def bundle_head(bundle_id: str, total: int, self_url: str) -> Resource:
    return {"resourceType": "Bundle", "id": bundle_id, "type": "searchset", "total": total,
            "link": [{"relation": "self", "url": self_url}]}


def entry(base_url: str, resource: Resource) -> Resource:
    """``base_url`` is the search URL without its query, e.g. ``http://host/spine-directory/FHIR/R4/Device``."""
    return {"fullUrl": f"{base_url}/{resource['id']}", "resource": resource, "search": {"mode": "match"}}


def bundle(bundle_id: str, base_url: str, self_url: str, resources: Sequence[Resource]) -> Resource:
    head = bundle_head(bundle_id, len(resources), self_url)
    head["entry"] = [entry(base_url, r) for r in resources]
    return head


# ---- Errors -------------------------------------------------------------------------------------------------

#: HTTP status -> (issue.code, Spine code, Spine display, fixed diagnostics or None for the message).
OUTCOMES: dict[int, tuple[str, str, str, str | None]] = {
    400: ("required", "BAD_REQUEST", "Bad request", None),
    404: ("not-found", "NO_RECORD_FOUND", "No record found", "HTTP endpoint not found"),
    405: ("not-supported", "NOT_IMPLEMENTED", "Not implemented", "HTTP operation not supported"),
    406: ("not-supported", "MISSING_OR_INVALID_HEADER", "There is a required header missing or invalid",
          "Accept type not supported"),
    500: ("exception", "INTERNAL_SERVER_ERROR", "Unexpected internal server error", None),
    502: ("exception", "INTERNAL_SERVER_ERROR", "Unexpected internal server error", "Invalid LDAP response received"),
    503: ("transient", "SERVICE_UNAVAILABLE", "Service unavailable", None),
    504: ("timeout", "INTERNAL_SERVER_ERROR", "Unexpected internal server error", "LDAP request timed out"),
}


def operation_outcome(status: int, correlation_id: str, message: str | None = None) -> Resource:
    """The national OperationOutcome for ``status``; 400 diagnostics are "HTTP 400: Bad Request (<message>)"."""
    if status in OUTCOMES:
        code, spine_code, display, diagnostics = OUTCOMES[status]
    elif 400 <= status < 500:
        code, spine_code, display, diagnostics = "exception", "BAD_REQUEST", "Bad request", None
    else:
        code, spine_code, display, diagnostics = (
            "exception", "INTERNAL_SERVER_ERROR", "Unexpected internal server error", None)
    if diagnostics is None:
        diagnostics = f"HTTP 400: Bad Request ({message})" if status == 400 else (message or "")
    return {
        "resourceType": "OperationOutcome",
        "id": correlation_id,
        "issue": [{
            "severity": "error",
            "code": code,
            "details": {"coding": [{"system": SPINE_CODING_SYSTEM, "code": spine_code, "display": display}]},
            "diagnostics": diagnostics,
        }],
    }
