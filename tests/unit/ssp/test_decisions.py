"""services/ssp.decide over a real database (SQLite and PostgreSQL): one refusal per check, and the order."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from sds_registry.db import begin_write
from sds_registry.services.agreements import create_agreement
from sds_registry.services.ssp import SspRequest, decide, target_under_endpoint
from sds_registry.services.writes import CLI_ACTOR
from tests.unit.ssp.fixtures import (
    BOOK,
    CONSUMER_ASID,
    CONSUMER_FQDN,
    FOUNDATIONS,
    METADATA,
    PROVIDER_ASID,
    SLOTS,
    STRANGER_ASID,
    STRANGER_ODS,
    UNKNOWN_ASID,
    FreshBearer,
    claims,
    make_jwt,
    seed,
    ssp_headers,
)

TARGET = FOUNDATIONS + "/metadata"


@pytest.fixture
def directory(session: Session) -> Session:
    seed(session)
    return session


def _decide(session: Session, method: str = "GET", target: str = TARGET, cn: str | None = None,
            mutual_tls: bool = False, **headers: str | FreshBearer) -> tuple[int, str]:
    base = ssp_headers()
    for name, value in headers.items():
        key = {"trace": "Ssp-TraceID", "sender": "Ssp-From", "receiver": "Ssp-To",
               "interaction": "Ssp-InteractionID", "authorization": "Authorization"}[name]
        if value == "<drop>":
            base.pop(key)
        else:
            base[key] = value.value() if isinstance(value, FreshBearer) else value
    decision = decide(session, SspRequest(method, target, base, client_cn=cn, mutual_tls=mutual_tls))
    return decision.status, decision.outcome


def test_allowed(directory: Session) -> None:
    decision = decide(directory, SspRequest("GET", TARGET, ssp_headers()))
    assert decision.allowed and decision.status == 200
    assert decision.endpoint == FOUNDATIONS and decision.cpa_id == "S000000000001"


def test_header_names_are_case_insensitive(directory: Session) -> None:
    headers = {k.upper(): v for k, v in ssp_headers().items()}
    assert decide(directory, SspRequest("get", TARGET, headers)).allowed


REFUSALS = [
    ("method not forwarded", dict(method="DELETE"), 405, "METHOD_NOT_ALLOWED"),
    ("trace id missing", dict(trace="<drop>"), 400, "MISSING_OR_INVALID_HEADER_Ssp-TraceID"),
    ("trace id not a UUID", dict(trace="abc"), 400, "MISSING_OR_INVALID_HEADER_Ssp-TraceID"),
    ("from missing", dict(sender="<drop>"), 400, "MISSING_OR_INVALID_HEADER_Ssp-From"),
    ("from not an ASID", dict(sender="12345"), 400, "MISSING_OR_INVALID_HEADER_Ssp-From"),
    ("to blank", dict(receiver=" "), 400, "MISSING_OR_INVALID_HEADER_Ssp-To"),
    ("interaction missing", dict(interaction="<drop>"), 400, "MISSING_OR_INVALID_HEADER_Ssp-InteractionID"),
    ("authorization missing", dict(authorization="<drop>"), 400, "MISSING_OR_INVALID_HEADER_Authorization"),
    ("authorization not bearer", dict(authorization="Basic eDp5"), 400, "MISSING_OR_INVALID_HEADER_Authorization"),
    ("unknown interaction", dict(interaction="urn:nhs:names:services:gpconnect:fhir:rest:read:nothing-1"), 400,
     "INTERACTION_ID_NOT_RECOGNISED_urn:nhs:names:services:gpconnect:fhir:rest:read:nothing-1"),
    ("verb is not the interaction's", dict(method="POST"), 405, "METHOD_POST_NOT_ALLOWED_FOR_INTERACTION"),
    ("sender not accredited for it", dict(method="POST", interaction=BOOK, target=FOUNDATIONS + "/Appointment"),
     403, f"ASID_CHECK_FAILED_MESSAGESENDER_{CONSUMER_ASID}"),
    ("sender unknown", dict(sender=UNKNOWN_ASID), 403, f"ASID_CHECK_FAILED_MESSAGESENDER_{UNKNOWN_ASID}"),
    ("certificate CN not the sender's FQDN", dict(cn="wrong.test", mutual_tls=True), 495,
     f"FQDN_CHECK_FAILED_MESSAGESENDER_{CONSUMER_ASID}"),
    ("no certificate CN", dict(cn=None, mutual_tls=True), 495, f"FQDN_CHECK_FAILED_MESSAGESENDER_{CONSUMER_ASID}"),
    ("receiver has no MHS for it", dict(interaction=SLOTS, target=FOUNDATIONS + "/Slot"), 403,
     f"PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_{PROVIDER_ASID}"),
    ("receiver unknown", dict(receiver=UNKNOWN_ASID), 403,
     f"PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_{UNKNOWN_ASID}"),
    ("target under another capability", dict(target="https://provider.test/A11111/STU3/1/metadata"), 400,
     "ENDPOINT_https://provider.test/A11111/STU3/1/gpconnect_CPAID_S000000000001_VARIES_FROM_TARGETURL_"
     "https://provider.test/A11111/STU3/1/metadata"),
    ("target with :443", dict(target="https://provider.test:443/A11111/STU3/1/gpconnect/metadata"), 400,
     "ENDPOINT_https://provider.test/A11111/STU3/1/gpconnect_CPAID_S000000000001_VARIES_FROM_TARGETURL_"
     "https://provider.test:443/A11111/STU3/1/gpconnect/metadata"),
    ("target with the host's IP", dict(target="https://127.0.0.1/A11111/STU3/1/gpconnect/metadata"), 400,
     "ENDPOINT_https://provider.test/A11111/STU3/1/gpconnect_CPAID_S000000000001_VARIES_FROM_TARGETURL_"
     "https://127.0.0.1/A11111/STU3/1/gpconnect/metadata"),
    ("target extends the last segment", dict(target=FOUNDATIONS + "x/metadata"), 400,
     f"ENDPOINT_{FOUNDATIONS}_CPAID_S000000000001_VARIES_FROM_TARGETURL_{FOUNDATIONS}x/metadata"),
    ("no data-sharing agreement", dict(sender=STRANGER_ASID), 403,
     f"FOT_CHECK_FAILED_MESSAGESENDER_{STRANGER_ASID}_MESSAGERECEIVER_{PROVIDER_ASID}"),
    ("JWT broken", dict(authorization=FreshBearer(scope="patient/*.read")), 400,
     "INVALID_JWT_REQUESTED_SCOPE_INVALID_FOR_INTERACTION"),
    ("JWT aud not the service root", dict(authorization=FreshBearer(aud="https://x.test/A/STU3/1")), 400,
     "INVALID_JWT_AUD_NOT_SERVICE_ROOT_URL"),
]


@pytest.mark.parametrize(("args", "status", "token"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(directory: Session, args: dict[str, str], status: int, token: str) -> None:
    assert _decide(directory, **args) == (status, token)  # type: ignore[arg-type]


def test_the_sender_fqdn_passes_in_any_case(directory: Session) -> None:
    assert _decide(directory, cn=CONSUMER_FQDN.upper(), mutual_tls=True) == (200, "ALLOWED")


def test_order_earlier_checks_win(directory: Session) -> None:
    # Everything wrong at once: the method check answers first, then headers, then the interaction...
    assert _decide(directory, method="PATCH", sender="x")[1] == "METHOD_NOT_ALLOWED"
    assert _decide(directory, sender="x", receiver=UNKNOWN_ASID)[1] == "MISSING_OR_INVALID_HEADER_Ssp-From"
    assert _decide(directory, sender=UNKNOWN_ASID, receiver=UNKNOWN_ASID)[1].startswith("ASID_CHECK_FAILED")
    assert _decide(directory, sender=UNKNOWN_ASID, cn="wrong.test", mutual_tls=True)[1].startswith("ASID_CHECK")
    assert _decide(directory, receiver=UNKNOWN_ASID, cn="wrong.test", mutual_tls=True)[1].startswith("FQDN_CHECK")
    assert _decide(directory, receiver=UNKNOWN_ASID, target="https://x.test/")[1].startswith("PARTYKEY_")
    assert _decide(directory, sender=STRANGER_ASID, target="https://x.test/")[1].startswith("ENDPOINT_")
    broken = "Bearer " + make_jwt(claims(scope="patient/*.read"))
    assert _decide(directory, sender=STRANGER_ASID, authorization=broken)[1].startswith("FOT_CHECK_FAILED")


def test_wildcard_agreements(directory: Session) -> None:
    assert _decide(directory, sender=STRANGER_ASID)[0] == 403
    directory.rollback()
    begin_write(directory)
    create_agreement(directory, {"consumer_ods": STRANGER_ODS, "provider_ods": "*"}, CLI_ACTOR)
    assert _decide(directory, sender=STRANGER_ASID) == (200, "ALLOWED")


def test_any_to_any_agreement(directory: Session) -> None:
    begin_write(directory)
    create_agreement(directory, {"consumer_ods": "*", "provider_ods": "*"}, CLI_ACTOR)
    assert _decide(directory, sender=STRANGER_ASID) == (200, "ALLOWED")


@pytest.mark.parametrize(("target", "endpoint", "ok"), [
    ("https://p.test/A/STU3/1/gpconnect", "https://p.test/A/STU3/1/gpconnect", True),
    ("https://p.test/A/STU3/1/gpconnect/metadata", "https://p.test/A/STU3/1/gpconnect", True),
    ("https://p.test/A/STU3/1/gpconnect?x=1", "https://p.test/A/STU3/1/gpconnect", True),
    ("https://p.test/A/STU3/1/gpconnect/structured/metadata", "https://p.test/A/STU3/1/gpconnect", True),
    ("https://p.test/A/STU3/1/gpconnectx", "https://p.test/A/STU3/1/gpconnect", False),
    ("https://p.test:443/A/STU3/1/gpconnect/metadata", "https://p.test/A/STU3/1/gpconnect", False),
    ("https://10.0.0.1/A/STU3/1/gpconnect/metadata", "https://p.test/A/STU3/1/gpconnect", False),
    ("https://P.TEST/A/STU3/1/gpconnect/metadata", "https://p.test/A/STU3/1/gpconnect", False),
    ("http://p.test/A/STU3/1/gpconnect/metadata", "https://p.test/A/STU3/1/gpconnect", False),
    ("https://p.test/A/STU3/1/gpconnect/metadata", "https://p.test/A/STU3/1/gpconnect/", True),
    ("https://p.test/A/STU3/1/gpconnect", "https://p.test/A/STU3/1/gpconnect/", False),
    ("https://p.test/A", "", False),
])
def test_target_under_endpoint(target: str, endpoint: str, ok: bool) -> None:
    assert target_under_endpoint(target, endpoint) is ok


def test_unknown_method_case_insensitive_interaction_catalogue(directory: Session) -> None:
    assert _decide(directory, method="OPTIONS") == (405, "METHOD_NOT_ALLOWED")
    assert _decide(directory, interaction=METADATA.upper())[1].startswith("INTERACTION_ID_NOT_RECOGNISED_")
