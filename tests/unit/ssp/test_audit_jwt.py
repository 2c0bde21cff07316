"""The audit JWT rules (domain/audit_jwt.py): one row per rule, each token breaking exactly that rule."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from sds_registry.domain.audit_jwt import bearer_token, check_jwt
from sds_registry.domain.interactions import lookup
from tests.unit.ssp.fixtures import (
    FOUNDATIONS,
    METADATA,
    MIGRATE_STRUCTURED,
    READ_PATIENT,
    STRUCTURED,
    STRUCTURED_RECORD,
    claims,
    make_jwt,
)

NOW = 1_700_000_000
Claims = dict[str, Any]


def _check(token: str, interaction: str = METADATA, root: str = FOUNDATIONS, max_future: int = 300) -> str | None:
    entry = lookup(interaction)
    assert entry is not None
    return check_jwt(token, interaction=entry, service_root_url=root, now=NOW, max_future_seconds=max_future)


def _with(change: Callable[[Claims], None], scope: str = "organization/*.read") -> str:
    payload = claims(scope=scope, now=NOW)
    change(payload)
    return make_jwt(payload)


def test_a_good_token_passes() -> None:
    assert _check(make_jwt(claims(now=NOW))) is None


def test_confidentiality_scope_and_trailing_slash_on_aud_pass() -> None:
    payload = claims(aud=FOUNDATIONS + "/", scope="organization/*.read conf/N", now=NOW)
    assert _check(make_jwt(payload)) is None


def test_iat_within_the_leeway_passes() -> None:
    payload = claims(now=NOW + 200)
    assert _check(make_jwt(payload)) is None


def _set(name: str, value: Any) -> Callable[[Claims], None]:
    def change(payload: Claims) -> None:
        payload[name] = value
    return change


def _drop(name: str) -> Callable[[Claims], None]:
    def change(payload: Claims) -> None:
        del payload[name]
    return change


def _nested(claim: str, key: str, value: Any) -> Callable[[Claims], None]:
    def change(payload: Claims) -> None:
        payload[claim] = copy.deepcopy(payload[claim])
        if value is None:
            del payload[claim][key]
        else:
            payload[claim][key] = value
    return change


GOOD = make_jwt(claims(now=NOW))
HEADER, PAYLOAD, _ = GOOD.split(".")

SHAPE_CASES = [
    ("two parts", f"{HEADER}.{PAYLOAD}", "NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE"),
    ("four parts", f"{HEADER}.{PAYLOAD}..", "NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE"),
    ("signature present", make_jwt(claims(now=NOW), signature="c2ln"),
     "NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE"),
    ("padding", f"{HEADER}==.{PAYLOAD}.", "NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE"),
    ("not base64url", f"{HEADER}.{PAYLOAD}+/.", "NOT_THREE_BASE64URL_PARTS_WITH_EMPTY_SIGNATURE"),
    ("payload not JSON", f"{HEADER}.bm90IGpzb24.", "NOT_JSON"),
    ("payload a JSON list", f"{HEADER}.WzEsMl0.", "NOT_JSON"),
    ("alg HS256", make_jwt(claims(now=NOW), header={"alg": "HS256", "typ": "JWT"}), "ALG_NOT_NONE"),
    ("alg missing", make_jwt(claims(now=NOW), header={"typ": "JWT"}), "ALG_NOT_NONE"),
    ("typ missing", make_jwt(claims(now=NOW), header={"alg": "none"}), "TYP_NOT_JWT"),
]


@pytest.mark.parametrize(("token", "rule"), [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_shape_rules(token: str, rule: str) -> None:
    assert _check(token) == "INVALID_JWT_" + rule


CLAIM_CASES: list[tuple[str, Callable[[Claims], None], str]] = [
    *[(f"{name} missing", _drop(name), f"CLAIM_MISSING_{name}") for name in (
        "iss", "sub", "aud", "exp", "iat", "reason_for_request", "requested_scope",
        "requesting_device", "requesting_organization", "requesting_practitioner")],
    ("aud null", _set("aud", None), "CLAIM_MISSING_aud"),
    ("aud empty", _set("aud", ""), "CLAIM_INVALID_aud"),
    ("iss a number", _set("iss", 7), "CLAIM_INVALID_iss"),
    ("iat a string", _set("iat", str(NOW)), "CLAIM_INVALID_iat"),
    ("exp a float", _set("exp", NOW + 300.0), "CLAIM_INVALID_exp"),
    ("device a string", _set("requesting_device", "Device"), "CLAIM_INVALID_requesting_device"),
    ("exp = iat + 299", _set("exp", NOW + 299), "EXP_NOT_IAT_PLUS_300"),
    ("exp = iat + 301", _set("exp", NOW + 301), "EXP_NOT_IAT_PLUS_300"),
    ("expired", lambda c: c.update(iat=NOW - 600, exp=NOW - 300), "EXPIRED"),
    ("iat too far ahead", lambda c: c.update(iat=NOW + 301, exp=NOW + 601), "IAT_IN_FUTURE"),
    ("reason other", _set("reason_for_request", "secondaryuses"), "REASON_FOR_REQUEST_NOT_ALLOWED"),
    ("reason migration on a direct-care interaction", _set("reason_for_request", "migration"),
     "REASON_FOR_REQUEST_NOT_ALLOWED"),
    ("patient scope for metadata", _set("requested_scope", "patient/*.read"),
     "REQUESTED_SCOPE_INVALID_FOR_INTERACTION"),
    ("unknown scope", _set("requested_scope", "system/*.*"), "REQUESTED_SCOPE_INVALID_FOR_INTERACTION"),
    ("unknown confidentiality scope", _set("requested_scope", "organization/*.read conf/X"),
     "REQUESTED_SCOPE_INVALID_FOR_INTERACTION"),
    ("device is a Patient", _nested("requesting_device", "resourceType", "Patient"),
     "RESOURCE_TYPE_INVALID_requesting_device"),
    ("organisation is a Device", _nested("requesting_organization", "resourceType", "Device"),
     "RESOURCE_TYPE_INVALID_requesting_organization"),
    ("practitioner is a Patient", _nested("requesting_practitioner", "resourceType", "Patient"),
     "RESOURCE_TYPE_INVALID_requesting_practitioner"),
    ("device without identifier", _nested("requesting_device", "identifier", None), "CLAIM_INVALID_requesting_device"),
    ("device without model", _nested("requesting_device", "model", None), "CLAIM_INVALID_requesting_device"),
    ("organisation without ODS identifier",
     _nested("requesting_organization", "identifier", [{"system": "https://example.org/x", "value": "1"}]),
     "CLAIM_INVALID_requesting_organization"),
    ("practitioner without name", _nested("requesting_practitioner", "name", None),
     "CLAIM_INVALID_requesting_practitioner"),
    ("practitioner without sds-role-profile-id",
     _nested("requesting_practitioner", "identifier",
             [{"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "UNK"}]),
     "CLAIM_INVALID_requesting_practitioner"),
    ("sub is not the practitioner id", _set("sub", "10020"), "SUB_NOT_PRACTITIONER_ID"),
    ("aud another provider", _set("aud", "https://other.test/A11111/STU3/1/gpconnect"), "AUD_NOT_SERVICE_ROOT_URL"),
    ("aud with :443", _set("aud", "https://provider.test:443/A11111/STU3/1/gpconnect"), "AUD_NOT_SERVICE_ROOT_URL"),
    ("aud the DSTU2 token URL on STU3", _set("aud", "https://authorize.fhir.nhs.net/token"),
     "AUD_NOT_SERVICE_ROOT_URL"),
]


@pytest.mark.parametrize(("change", "rule"), [c[1:] for c in CLAIM_CASES], ids=[c[0] for c in CLAIM_CASES])
def test_claim_rules(change: Callable[[Claims], None], rule: str) -> None:
    assert _check(_with(change)) == "INVALID_JWT_" + rule


def test_scope_follows_the_interaction() -> None:
    read = make_jwt(claims(scope="patient/*.read", now=NOW))
    assert _check(read, READ_PATIENT) is None
    structured = make_jwt(claims(aud=STRUCTURED, scope="patient/*.read", now=NOW))
    assert _check(structured, STRUCTURED_RECORD, STRUCTURED) is None
    write = make_jwt(claims(aud=STRUCTURED, scope="patient/*.write", now=NOW))
    assert _check(write, STRUCTURED_RECORD, STRUCTURED) == "INVALID_JWT_REQUESTED_SCOPE_INVALID_FOR_INTERACTION"


def test_migrate_interactions_need_reason_migration() -> None:
    payload = claims(aud=STRUCTURED, scope="patient/*.read", now=NOW)
    assert _check(make_jwt(payload), MIGRATE_STRUCTURED, STRUCTURED) == "INVALID_JWT_REASON_FOR_REQUEST_NOT_ALLOWED"
    payload["reason_for_request"] = "migration"
    assert _check(make_jwt(payload), MIGRATE_STRUCTURED, STRUCTURED) is None


def test_future_leeway_is_configurable() -> None:
    payload = claims(now=NOW + 200)
    assert _check(make_jwt(payload), max_future=100) == "INVALID_JWT_IAT_IN_FUTURE"


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc.def.", "abc.def."), ("bearer abc.def.", "abc.def."), ("Bearer  abc.def. ", "abc.def."),
    ("Basic abc", None), ("Bearer", None), ("Bearer a b", None), ("", None), (None, None),
])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
