"""The GP Connect cross-organisation audit JWT (reference §5.7): shape and claim rules. Pure: no Flask, no I/O.

``check_jwt`` returns None when the token is acceptable, or the refusal token naming the first broken rule
(``INVALID_JWT_<RULE>``); ``explain_jwt`` also says which claim and which part of it is wrong (e.g.
``requesting_practitioner.identifier[0].system: missing``), for the outcome's diagnostics. Rules, in the order
they are checked:

1. three base64url parts (no padding) with an **empty** signature: ``NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE``
2. header and payload decode to JSON objects: ``NOT_JSON``
3. header ``alg`` is ``none`` (``ALG_NOT_NONE``) and ``typ`` is ``JWT`` (``TYP_NOT_JWT``)
4. every claim present (``CLAIM_MISSING_<claim>``), of the right JSON type and non-empty (``CLAIM_INVALID_<claim>``)
5. ``exp == iat + 300`` (``EXP_NOT_IAT_PLUS_300``); ``exp`` not passed (``EXPIRED``); ``iat`` not further in the
   future than the configured leeway (``IAT_IN_FUTURE``)
6. ``reason_for_request`` ``directcare`` (``migration`` for the migrate interactions):
   ``REASON_FOR_REQUEST_NOT_ALLOWED``
7. ``requested_scope`` is the interaction's scope, optionally followed by ``conf/N`` or ``conf/R``:
   ``REQUESTED_SCOPE_INVALID_FOR_INTERACTION``
8. the three FHIR resources have the right ``resourceType`` (``RESOURCE_TYPE_INVALID_<claim>``) and their
   required elements (``CLAIM_INVALID_<claim>``)
9. ``sub`` equals ``requesting_practitioner.id``: ``SUB_NOT_PRACTITIONER_ID``
10. ``aud`` is the provider's service root URL (the registered endpoint; a trailing ``/`` on either side is
    ignored; DSTU2 interactions may use ``https://authorize.fhir.nhs.net/token``): ``AUD_NOT_SERVICE_ROOT_URL``
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jwt.utils import base64url_decode

from sds_registry.domain.interactions import Interaction

PREFIX = "INVALID_JWT_"
LIFETIME_SECONDS = 300
CLAIMS = (
    "iss", "sub", "aud", "exp", "iat", "reason_for_request", "requested_scope",
    "requesting_device", "requesting_organization", "requesting_practitioner",
)
_STRING_CLAIMS = ("iss", "sub", "aud", "reason_for_request", "requested_scope")
_RESOURCE_CLAIMS = {
    "requesting_device": "Device",
    "requesting_organization": "Organization",
    "requesting_practitioner": "Practitioner",
}
CONFIDENTIALITY_SCOPES = frozenset({"conf/N", "conf/R"})
DSTU2_AUD = "https://authorize.fhir.nhs.net/token"
ODS_SYSTEMS = ("https://fhir.nhs.uk/Id/ods-organization-code", "http://fhir.nhs.net/Id/ods-organization-code")
SDS_USER_SYSTEMS = ("https://fhir.nhs.uk/Id/sds-user-id", "http://fhir.nhs.net/sds-user-id")
SDS_ROLE_SYSTEMS = ("https://fhir.nhs.uk/Id/sds-role-profile-id", "http://fhir.nhs.net/sds-role-profile-id")

#: Three base64url parts (alphabet only: padding is not allowed), the last one empty.
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when the header is not that."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def reasons_for(interaction: Interaction) -> frozenset[str]:
    """GP Connect 1.6: ``migration`` for the migrate interactions, ``directcare`` for every other one."""
    migrate = ":migrate:" in interaction.id or "gpc.migrate" in interaction.id
    return frozenset({"migration"}) if migrate else frozenset({"directcare"})


@dataclass(frozen=True)
class JwtRefusal:
    """The first rule a token breaks: the SSP's token (``INVALID_JWT_<RULE>``) and what exactly is wrong."""

    token: str
    detail: str


def check_jwt(
    token: str, *, interaction: Interaction, service_root_url: str, now: int, max_future_seconds: int
) -> str | None:
    """None when ``token`` passes every rule, else ``INVALID_JWT_<RULE>`` for the first rule it breaks."""
    refusal = explain_jwt(token, interaction=interaction, service_root_url=service_root_url, now=now,
                          max_future_seconds=max_future_seconds)
    return None if refusal is None else refusal.token


def explain_jwt(
    token: str, *, interaction: Interaction, service_root_url: str, now: int, max_future_seconds: int
) -> JwtRefusal | None:
    """None when ``token`` passes every rule, else the first broken rule with the claim and part at fault."""
    broken = _first_broken_rule(token, interaction, service_root_url, now, max_future_seconds)
    return None if broken is None else JwtRefusal(PREFIX + broken[0], broken[1])


#: (RULE, detail) of a broken rule.
Broken = tuple[str, str]


def _show(value: object) -> str:
    """A claim value for a message: JSON, cut short."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _first_broken_rule(
    token: str, interaction: Interaction, service_root_url: str, now: int, max_future_seconds: int
) -> Broken | None:
    if not _SHAPE.fullmatch(token):
        parts = token.split(".")
        why = (f"{len(parts)} part(s)" if len(parts) != 3 else "the signature part is not empty" if parts[2]
               else "a part is empty or has characters outside the base64url alphabet (padding '=' is not allowed)")
        return "NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE", f"expected header.payload. (alg none): {why}"
    # Unsecured JWT (alg "none"): no signature to verify, and _SHAPE has already checked the base64url
    # alphabet, so pyjwt's decoding helper and json suffice. (jwt.decode(..., verify_signature=False) gives
    # the same answer but re-checks the alphabet character by character in Python: a quarter of the
    # SSP's CPU per request.)
    head, body, _ = token.split(".")
    decoded: list[object] = []
    for part, text in (("header", head), ("payload", body)):
        try:
            decoded.append(json.loads(base64url_decode(text)))
        except (ValueError, binascii.Error):
            return "NOT_JSON", f"{part}: not base64url-encoded JSON"
        if not isinstance(decoded[-1], dict):
            return "NOT_JSON", f"{part}: {_kind(decoded[-1])}, expected a JSON object"
    header, claims = decoded
    assert isinstance(header, dict) and isinstance(claims, dict)
    if header.get("alg") != "none":
        return "ALG_NOT_NONE", f"header.alg: {_show(header.get('alg'))}, expected 'none'"
    if header.get("typ") != "JWT":
        return "TYP_NOT_JWT", f"header.typ: {_show(header.get('typ'))}, expected 'JWT'"
    return _claims_rule(claims, interaction, service_root_url, now, max_future_seconds)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _claims_rule(
    claims: Mapping[str, Any], interaction: Interaction, service_root_url: str, now: int, max_future_seconds: int
) -> Broken | None:
    for name in CLAIMS:
        if name not in claims or claims[name] is None:
            return f"CLAIM_MISSING_{name}", f"{name}: missing" if name not in claims else f"{name}: null"
    for name in _STRING_CLAIMS:
        if not isinstance(claims[name], str) or not claims[name].strip():
            what = "empty" if isinstance(claims[name], str) else _kind(claims[name])
            return f"CLAIM_INVALID_{name}", f"{name}: {what}, expected a non-empty string"
    for name in ("exp", "iat"):
        if not _is_int(claims[name]):
            return f"CLAIM_INVALID_{name}", f"{name}: {_kind(claims[name])}, expected an integer (seconds since 1970)"
    for name, resource_type in _RESOURCE_CLAIMS.items():
        if not isinstance(claims[name], dict):
            return (f"CLAIM_INVALID_{name}",
                    f"{name}: {_kind(claims[name])}, expected an object (a FHIR {resource_type} resource)")
    exp, iat = claims["exp"], claims["iat"]
    if exp != iat + LIFETIME_SECONDS:
        return "EXP_NOT_IAT_PLUS_300", f"exp: {exp}, expected iat + 300 = {iat + LIFETIME_SECONDS}"
    if exp < now:
        return "EXPIRED", f"exp: {exp}, {now - exp} s ago"
    if iat > now + max_future_seconds:
        return "IAT_IN_FUTURE", f"iat: {iat}, {iat - now} s ahead (at most {max_future_seconds} s allowed)"
    reasons = reasons_for(interaction)
    if claims["reason_for_request"] not in reasons:
        return ("REASON_FOR_REQUEST_NOT_ALLOWED", f"reason_for_request: {_show(claims['reason_for_request'])}, "
                f"expected {' or '.join(repr(r) for r in sorted(reasons))} for {interaction.id}")
    if not _scope_ok(claims["requested_scope"], interaction):
        return ("REQUESTED_SCOPE_INVALID_FOR_INTERACTION", f"requested_scope: {_show(claims['requested_scope'])}, "
                f"expected {interaction.requested_scope!r} (optionally followed by ' conf/N' or ' conf/R') "
                f"for {interaction.id}")
    for name, resource_type in _RESOURCE_CLAIMS.items():
        got = claims[name].get("resourceType")
        if got != resource_type:
            return f"RESOURCE_TYPE_INVALID_{name}", f"{name}.resourceType: {_show(got)}, expected {resource_type!r}"
    for name, check in (
        ("requesting_device", _device_problem),
        ("requesting_organization", _organization_problem),
        ("requesting_practitioner", _practitioner_problem),
    ):
        problem = check(claims[name])
        if problem is not None:
            return f"CLAIM_INVALID_{name}", f"{name}.{problem}"
    if claims["sub"] != claims["requesting_practitioner"].get("id"):
        return ("SUB_NOT_PRACTITIONER_ID", f"sub: {_show(claims['sub'])}, expected requesting_practitioner.id "
                f"{_show(claims['requesting_practitioner'].get('id'))}")
    if not _aud_ok(claims["aud"], interaction, service_root_url):
        return ("AUD_NOT_SERVICE_ROOT_URL",
                f"aud: {_show(claims['aud'])}, expected the service root URL {service_root_url!r}")
    return None


def _scope_ok(value: str, interaction: Interaction) -> bool:
    parts = value.split(" ")
    if parts[0] != interaction.requested_scope:
        return False
    rest = parts[1:]
    return len(rest) <= 1 and all(p in CONFIDENTIALITY_SCOPES for p in rest)


def _aud_ok(aud: str, interaction: Interaction, service_root_url: str) -> bool:
    if aud.rstrip("/") == service_root_url.rstrip("/"):
        return True
    return interaction.capability == "html" and aud == DSTU2_AUD


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _string_problem(resource: Mapping[str, Any], path: str) -> str | None:
    """``path: missing`` (or what it is instead) unless ``resource[path]`` is a non-empty string."""
    value = resource.get(path)
    if _nonempty_str(value):
        return None
    if path not in resource:
        return f"{path}: missing"
    return f"{path}: {'empty' if isinstance(value, str) else _kind(value)}, expected a non-empty string"


def _identifiers_problem(resource: Mapping[str, Any]) -> str | None:
    """What is wrong with the resource's identifiers: each needs a non-empty string system and value."""
    items = resource.get("identifier")
    if items is None:
        return "identifier: missing"
    if not isinstance(items, list) or not items:
        return f"identifier: {'empty' if isinstance(items, list) else _kind(items)}, expected a non-empty array"
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            return f"identifier[{index}]: {_kind(item)}, expected an object"
        for key in ("system", "value"):
            problem = _string_problem(item, key)
            if problem is not None:
                return f"identifier[{index}].{problem}"
    return None


def _device_problem(resource: Mapping[str, Any]) -> str | None:
    return _identifiers_problem(resource) or _string_problem(resource, "model") or _string_problem(resource, "version")


def _organization_problem(resource: Mapping[str, Any]) -> str | None:
    problem = _identifiers_problem(resource) or _string_problem(resource, "name")
    if problem is not None:
        return problem
    if not any(i["system"] in ODS_SYSTEMS for i in resource["identifier"]):
        return f"identifier: none with the ODS code system {ODS_SYSTEMS[0]!r}"
    return None


def _practitioner_problem(resource: Mapping[str, Any]) -> str | None:
    problem = _identifiers_problem(resource) or _string_problem(resource, "id")
    if problem is not None:
        return problem
    names = resource.get("name")
    if names is None:
        return "name: missing"
    if not isinstance(names, list) or not names or not all(isinstance(n, dict) for n in names):
        return f"name: {_kind(names)}, expected a non-empty array of HumanName objects"
    systems = {i["system"] for i in resource["identifier"]}
    for label, wanted in (("SDS user id", SDS_USER_SYSTEMS), ("SDS role profile id", SDS_ROLE_SYSTEMS)):
        if not systems & set(wanted):
            return f"identifier: none with the {label} system {wanted[0]!r}"
    return None
