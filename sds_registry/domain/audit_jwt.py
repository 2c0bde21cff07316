"""The GP Connect cross-organisation audit JWT (reference §5.7): shape and claim rules. Pure: no Flask, no I/O.

``check_jwt`` returns None when the token is acceptable, or the refusal token naming the first broken rule
(``INVALID_JWT_<RULE>``). Rules, in the order they are checked:

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


def check_jwt(
    token: str, *, interaction: Interaction, service_root_url: str, now: int, max_future_seconds: int
) -> str | None:
    """None when ``token`` passes every rule, else ``INVALID_JWT_<RULE>`` for the first rule it breaks."""
    rule = _first_broken_rule(token, interaction, service_root_url, now, max_future_seconds)
    return None if rule is None else PREFIX + rule


def _first_broken_rule(
    token: str, interaction: Interaction, service_root_url: str, now: int, max_future_seconds: int
) -> str | None:
    if not _SHAPE.fullmatch(token):
        return "NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE"
    # Unsecured JWT (alg "none"): no signature to verify, and _SHAPE has already checked the base64url
    # alphabet, so pyjwt's decoding helper and json suffice. (jwt.decode(..., verify_signature=False) gives
    # the same answer but re-checks the alphabet character by character in Python: a quarter of the
    # SSP's CPU per request.)
    head, body, _ = token.split(".")
    try:
        header, claims = json.loads(base64url_decode(head)), json.loads(base64url_decode(body))
    except (ValueError, binascii.Error):
        return "NOT_JSON"
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "NOT_JSON"
    if header.get("alg") != "none":
        return "ALG_NOT_NONE"
    if header.get("typ") != "JWT":
        return "TYP_NOT_JWT"
    return _claims_rule(claims, interaction, service_root_url, now, max_future_seconds)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _claims_rule(
    claims: Mapping[str, Any], interaction: Interaction, service_root_url: str, now: int, max_future_seconds: int
) -> str | None:
    for name in CLAIMS:
        if name not in claims or claims[name] is None:
            return f"CLAIM_MISSING_{name}"
    for name in _STRING_CLAIMS:
        if not isinstance(claims[name], str) or not claims[name].strip():
            return f"CLAIM_INVALID_{name}"
    for name in ("exp", "iat"):
        if not _is_int(claims[name]):
            return f"CLAIM_INVALID_{name}"
    for name in _RESOURCE_CLAIMS:
        if not isinstance(claims[name], dict):
            return f"CLAIM_INVALID_{name}"
    if claims["exp"] != claims["iat"] + LIFETIME_SECONDS:
        return "EXP_NOT_IAT_PLUS_300"
    if claims["exp"] < now:
        return "EXPIRED"
    if claims["iat"] > now + max_future_seconds:
        return "IAT_IN_FUTURE"
    if claims["reason_for_request"] not in reasons_for(interaction):
        return "REASON_FOR_REQUEST_NOT_ALLOWED"
    if not _scope_ok(claims["requested_scope"], interaction):
        return "REQUESTED_SCOPE_INVALID_FOR_INTERACTION"
    for name, resource_type in _RESOURCE_CLAIMS.items():
        if claims[name].get("resourceType") != resource_type:
            return f"RESOURCE_TYPE_INVALID_{name}"
    for name, check in (
        ("requesting_device", _device_ok),
        ("requesting_organization", _organization_ok),
        ("requesting_practitioner", _practitioner_ok),
    ):
        if not check(claims[name]):
            return f"CLAIM_INVALID_{name}"
    if claims["sub"] != claims["requesting_practitioner"].get("id"):
        return "SUB_NOT_PRACTITIONER_ID"
    if not _aud_ok(claims["aud"], interaction, service_root_url):
        return "AUD_NOT_SERVICE_ROOT_URL"
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


def _identifiers(resource: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The resource's identifiers when each has a non-empty string system and value, else None."""
    items = resource.get("identifier")
    if not isinstance(items, list) or not items:
        return None
    for item in items:
        if not isinstance(item, dict):
            return None
        if not all(isinstance(item.get(k), str) and item[k].strip() for k in ("system", "value")):
            return None
    return items


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _device_ok(resource: Mapping[str, Any]) -> bool:
    return _identifiers(resource) is not None and _nonempty_str(resource.get("model")) and _nonempty_str(
        resource.get("version")
    )


def _organization_ok(resource: Mapping[str, Any]) -> bool:
    identifiers = _identifiers(resource)
    if identifiers is None or not _nonempty_str(resource.get("name")):
        return False
    return any(i["system"] in ODS_SYSTEMS for i in identifiers)


def _practitioner_ok(resource: Mapping[str, Any]) -> bool:
    identifiers = _identifiers(resource)
    if identifiers is None or not _nonempty_str(resource.get("id")):
        return False
    names = resource.get("name")
    if not isinstance(names, list) or not names or not all(isinstance(n, dict) for n in names):
        return False
    systems = {i["system"] for i in identifiers}
    return bool(systems & set(SDS_USER_SYSTEMS)) and bool(systems & set(SDS_ROLE_SYSTEMS))
