"""What an audit JWT refusal says besides its token: the claim and the part of it at fault (domain/audit_jwt.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from sds_registry.domain.audit_jwt import JwtRefusal, check_jwt, explain_jwt
from sds_registry.domain.interactions import lookup
from tests.unit.ssp.fixtures import FOUNDATIONS, METADATA, claims, make_jwt

NOW = 1_700_000_000
Claims = dict[str, Any]


def _explain(token: str) -> JwtRefusal | None:
    entry = lookup(METADATA)
    assert entry is not None
    return explain_jwt(token, interaction=entry, service_root_url=FOUNDATIONS, now=NOW, max_future_seconds=300)


def _token(change: Callable[[Claims], None]) -> str:
    payload = copy.deepcopy(claims(now=NOW))
    change(payload)
    return make_jwt(payload)


def _del(*path: str | int) -> Callable[[Claims], None]:
    def change(payload: Claims) -> None:
        node: Any = payload
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]
    return change


def _put(value: Any, *path: str | int) -> Callable[[Claims], None]:
    def change(payload: Claims) -> None:
        node: Any = payload
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return change


PRACTITIONER = "INVALID_JWT_CLAIM_INVALID_requesting_practitioner"
CASES = [
    (_del("requesting_practitioner", "identifier", 0, "system"), PRACTITIONER,
     "requesting_practitioner.identifier[0].system: missing"),
    (_put(" ", "requesting_practitioner", "identifier", 1, "value"), PRACTITIONER,
     "requesting_practitioner.identifier[1].value: empty, expected a non-empty string"),
    (_put([{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "1"}], "requesting_practitioner", "identifier"),
     PRACTITIONER, "requesting_practitioner.identifier: none with the SDS role profile id system "
     "'https://fhir.nhs.uk/Id/sds-role-profile-id'"),
    (_del("requesting_practitioner", "name"), PRACTITIONER, "requesting_practitioner.name: missing"),
    (_del("requesting_device", "model"), "INVALID_JWT_CLAIM_INVALID_requesting_device",
     "requesting_device.model: missing"),
    (_put([], "requesting_organization", "identifier"), "INVALID_JWT_CLAIM_INVALID_requesting_organization",
     "requesting_organization.identifier: empty, expected a non-empty array"),
    (_del("aud"), "INVALID_JWT_CLAIM_MISSING_aud", "aud: missing"),
    (_put("7", "iat"), "INVALID_JWT_CLAIM_INVALID_iat", "iat: a string, expected an integer (seconds since 1970)"),
    (_put(NOW + 299, "exp"), "INVALID_JWT_EXP_NOT_IAT_PLUS_300", f"exp: {NOW + 299}, expected iat + 300 = {NOW + 300}"),
    (_put("patient/*.read", "requested_scope"), "INVALID_JWT_REQUESTED_SCOPE_INVALID_FOR_INTERACTION",
     f"requested_scope: 'patient/*.read', expected 'organization/*.read' (optionally followed by ' conf/N' or "
     f"' conf/R') for {METADATA}"),
    (_put("Patient", "requesting_device", "resourceType"), "INVALID_JWT_RESOURCE_TYPE_INVALID_requesting_device",
     "requesting_device.resourceType: 'Patient', expected 'Device'"),
    (_put("1", "sub"), "INVALID_JWT_SUB_NOT_PRACTITIONER_ID", "sub: '1', expected requesting_practitioner.id '10019'"),
]


@pytest.mark.parametrize(("change", "token", "detail"), CASES, ids=[c[2].split(":")[0] for c in CASES])
def test_the_detail_names_the_claim_and_part(change: Callable[[Claims], None], token: str, detail: str) -> None:
    jwt = _token(change)
    assert _explain(jwt) == JwtRefusal(token, detail)
    entry = lookup(METADATA)
    assert entry is not None
    assert check_jwt(jwt, interaction=entry, service_root_url=FOUNDATIONS, now=NOW, max_future_seconds=300) == token


def test_header_details() -> None:
    refusal = _explain(make_jwt(claims(now=NOW), header={"alg": "HS256", "typ": "JWT"}))
    assert refusal == JwtRefusal("INVALID_JWT_ALG_NOT_NONE", "header.alg: 'HS256', expected 'none'")
    signed = _explain(make_jwt(claims(now=NOW), signature="c2ln"))
    assert signed is not None and "signature part is not empty" in signed.detail


def test_a_good_token_has_no_refusal() -> None:
    assert _explain(make_jwt(claims(now=NOW))) is None
