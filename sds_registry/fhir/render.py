"""Directory records -> SDS FHIR R4 JSON (Device, Endpoint, searchset Bundle, OperationOutcome). Pure.

No I/O and no Flask: callers pass the records, the ids and the URLs. The mapping tables are those of
the national backend (``fhir_json_mapper.py``), written down in shared/reference/sds-fhir-api.md
§1.5-1.8: element order as emitted there, the reliability extension before the interaction extension,
``nhsMHSRetries`` as valueInteger, one Endpoint per endpoint URL, and every absent value omitted
(never an empty string, an empty list or a null). The text is what ``json.dumps(indent=2)`` writes
(``indent=4`` for OperationOutcome), produced by a small emitter that is several times faster than the
json module's pure-Python indenting encoder and can yield a Bundle entry by entry for streaming.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
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


# ---- JSON text ----------------------------------------------------------------------------------------------


_TEMPLATES: dict[tuple[Any, ...], tuple[str, str]] = {}


def _template(value: dict[str, Any], indents: list[str], level: int) -> tuple[str, str]:
    """(text before the value, text after it) for the fixed-shape dicts, built once per shape and level."""
    if type(value) is _ReferenceExtension:
        identifier = value["valueReference"]["identifier"]
        key: tuple[Any, ...] = ("ext", value["url"], identifier["system"], id(indents), level)
        found = _TEMPLATES.get(key)
        if found is None:
            i0, i1, i2, i3 = indents[level:level + 4]
            found = _TEMPLATES[key] = (
                "{" + i1 + '"url": ' + encode_basestring_ascii(value["url"]) + "," + i1 + '"valueReference": {'
                + i2 + '"identifier": {' + i3 + '"system": ' + encode_basestring_ascii(identifier["system"]) + ","
                + i3 + '"value": ', i2 + "}" + i1 + "}" + i0 + "}")
        return found
    key = ("id", value["system"], id(indents), level)
    found = _TEMPLATES.get(key)
    if found is None:
        i0, i1 = indents[level:level + 2]
        found = _TEMPLATES[key] = (
            "{" + i1 + '"system": ' + encode_basestring_ascii(value["system"]) + "," + i1 + '"value": ', i0 + "}")
    return found


def _templated(value: Any, indents: list[str], level: int) -> str:
    """The text of an _Identifier or a _ReferenceExtension: its template around its one variable value."""
    before, after = _template(value, indents, level)
    inner = value["valueReference"]["identifier"]["value"] if type(value) is _ReferenceExtension else value["value"]
    return before + encode_basestring_ascii(inner) + after


#: Values whose text is written once per indent and level, then reused: module constants, never mutated.
_CONSTANTS: dict[int, Any] = {id(CONNECTION_TYPE): CONNECTION_TYPE, id(PAYLOAD_TYPE): PAYLOAD_TYPE}
_CONSTANT_TEXT: dict[tuple[int, int, int], str] = {}
_TEMPLATED = (_Identifier, _ReferenceExtension)
_KEYS: dict[str, str] = {}


def _key(key: str) -> str:
    """``"key": `` (keys repeat: each is encoded once)."""
    text = _KEYS.get(key)
    if text is None:
        text = encode_basestring_ascii(key) + ": "
        if len(_KEYS) < 4096:
            _KEYS[key] = text
    return text


def _emit(value: Any, out: list[str], indents: list[str], level: int) -> None:
    """Append ``value`` as json.dumps(indent=...) writes it at nesting ``level`` (ensure_ascii, no sorting).

    Strings and the templated elements inside a dict or list are written in line, not by recursion:
    a Bundle is mostly those."""
    kind = type(value)
    if kind is str:
        out.append(encode_basestring_ascii(value))
        return
    if id(value) in _CONSTANTS and _CONSTANTS[id(value)] is value:
        key = (id(value), id(indents), level)
        text = _CONSTANT_TEXT.get(key)
        if text is None:
            pieces: list[str] = []
            (_emit_dict if isinstance(value, dict) else _emit_list)(value, pieces, indents, level)
            text = _CONSTANT_TEXT[key] = "".join(pieces)
        out.append(text)
        return
    if kind in _TEMPLATED:
        if value:
            out.append(_templated(value, indents, level))
        else:
            out.append("{}")
        return
    if isinstance(value, dict):
        _emit_dict(value, out, indents, level)
    elif isinstance(value, list | tuple):
        _emit_list(value, out, indents, level)
    elif isinstance(value, str):
        out.append(encode_basestring_ascii(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    else:
        raise TypeError(f"cannot write {type(value).__name__} as FHIR JSON")


def _emit_dict(value: dict[str, Any], out: list[str], indents: list[str], level: int) -> None:
    if not value:
        out.append("{}")
        return
    inner = indents[level + 1]
    separator = "{" + inner
    following = "," + inner
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            out.append(separator + _key(key) + encode_basestring_ascii(item))
        elif kind in _TEMPLATED and item:
            out.append(separator + _key(key) + _templated(item, indents, level + 1))
        else:
            out.append(separator + _key(key))
            _emit(item, out, indents, level + 1)
        separator = following
    out.append(indents[level] + "}")


def _emit_list(value: list[Any] | tuple[Any, ...], out: list[str], indents: list[str], level: int) -> None:
    if not value:
        out.append("[]")
        return
    inner = indents[level + 1]
    separator = "[" + inner
    following = "," + inner
    shape: tuple[str, str] | None = None
    template = ("", "")
    for item in value:
        kind = type(item)
        if kind is str:
            out.append(separator + encode_basestring_ascii(item))
        elif kind is _ReferenceExtension and len(item) == 2:
            # A Device's interactions: hundreds of these in a row, all of one shape, so the template is looked
            # up when the shape changes, in line.
            identifier = item["valueReference"]["identifier"]
            if shape is None or shape[0] != item["url"] or shape[1] != identifier["system"]:
                shape = (item["url"], identifier["system"])
                template = _template(item, indents, level + 1)
            out.append(separator + template[0] + encode_basestring_ascii(identifier["value"]) + template[1])
        elif kind in _TEMPLATED and item:
            out.append(separator + _templated(item, indents, level + 1))
        else:
            out.append(separator)
            _emit(item, out, indents, level + 1)
        separator = following
    out.append(indents[level] + "]")



_INDENTS: dict[int, list[str]] = {}


def _indents(width: int) -> list[str]:
    if width not in _INDENTS:
        _INDENTS[width] = ["\n" + " " * (width * level) for level in range(64)]
    return _INDENTS[width]


def dumps(value: Any, indent: int = 2) -> str:
    """Exactly ``json.dumps(value, indent=indent)`` for FHIR JSON values (str, int, bool, None, dict, list)."""
    out: list[str] = []
    _emit(value, out, _indents(indent), 0)
    return "".join(out)


def iter_bundle(head: Resource, base_url: str, resources: Iterable[Resource], chunk: int = 16384) -> Iterator[str]:
    """The text of ``bundle`` (head + entries), in pieces of about ``chunk`` characters, rendering entries
    as it goes: identical to ``dumps(bundle(...))`` when joined, without holding the whole text."""
    indents = _indents(2)
    out: list[str] = []
    _emit(head, out, indents, 0)
    out[-1] = out[-1][: -len(indents[0] + "}")]  # reopen the head object
    out.append("," + indents[1] + '"entry": ')
    size = 0
    opened = False
    for resource in resources:
        out.append(("," if opened else "[") + indents[2])
        opened = True
        _emit(entry(base_url, resource), out, indents, 2)
        size += 1
        if size % 8 == 0 and sum(map(len, out)) >= chunk:
            yield "".join(out)
            out = []
    out.append(indents[1] + "]" if opened else "[]")
    out.append(indents[0] + "}")
    yield "".join(out)
