"""The web pages over the seed directory (Flask's client, SQLite and PostgreSQL): search, organisation,
system, interactions and SSP activity. Registration is in test_register_pages.py, a real browser in tests/browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

from sds_registry.models import MessageHandlingSystem, SspDecision
from sds_registry.services.audit import decision_row

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"


def text(web: FlaskClient, path: str, status: int = 200) -> str:
    answer = web.get(path)
    assert answer.status_code == status, (path, answer.status_code)
    assert answer.mimetype == "text/html"
    return answer.get_data(as_text=True)


def test_pages_are_off_unless_sds_web_is_on(client: FlaskClient) -> None:
    assert client.get("/").status_code == 404
    assert client.get("/register").status_code == 404


def test_search_finds_each_kind_of_identifier(seeded: Engine, web: FlaskClient) -> None:
    by_ods = text(web, "/?q=a20047")  # any case
    assert "the ODS code <strong>A20047</strong>" in by_ods and "918999198993" in by_ods
    assert "/organisations/A20047" in by_ods
    by_asid = text(web, "/?q=918999198993")
    assert "the ASID <strong>918999198993</strong>" in by_asid and "/systems/918999198993" in by_asid
    by_party_key = text(web, "/?q=T99999-9999999")
    assert "https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured" in by_party_key
    by_interaction = text(web, f"/?q={STRUCTURED}")
    assert "https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured" in by_interaction
    by_fqdn = text(web, "/?q=ORANGE.testlab.nhs.uk")
    assert "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect" in by_fqdn
    assert "Accredited systems" not in by_fqdn  # an FQDN names MHS records only
    by_cpa_id = text(web, "/?q=472b35d4641b76454b13")  # as an SSP ENDPOINT_..._CPAID_... refusal names it
    assert "the CPA id <strong>472b35d4641b76454b13</strong>" in by_cpa_id
    assert "https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured" in by_cpa_id


def test_pages_carry_a_content_security_policy(web: FlaskClient) -> None:
    answer = web.get("/")
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_search_says_what_it_could_not_read(seeded: Engine, web: FlaskClient) -> None:
    page = text(web, "/?q=not%20an%20id!", 400)
    assert 'aria-invalid="true"' in page and "none of: an ODS code" in page


def test_search_pages_with_a_cursor(seeded: Engine, web: FlaskClient) -> None:
    first = text(web, f"/?q={METADATA}")
    assert "Next page" not in first  # the seed directory fits one page
    later = text(web, f"/?q={METADATA}&after_mhs=999999999&after_as=999999999")
    assert later.count("<td colspan=\"5\">None.</td>") == 2


def test_organisation_page_shows_endpoints_status_and_consumer_calls(seeded: Engine, web: FlaskClient) -> None:
    with seeded.begin() as conn:  # a record a lenient import flagged
        conn.execute(update(MessageHandlingSystem).where(MessageHandlingSystem.ods_code == "A20047",
                                                         MessageHandlingSystem.interaction_id == METADATA)
                     .values(flags="endpoints[0]:no-trailing-slash product_key:format"))
    page = text(web, "/organisations/A20047")
    assert "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect" in page
    assert "conforms to the service root URL rules" in page
    assert "endpoints[0] ends with &#39;/&#39; (a service root URL must not)" in page
    assert "product_key breaks its format rule" in page
    assert ("ldapsearch -x -H ldap://127.0.0.1:1389 -b &#39;ou=services, o=nhs&#39; &#39;(&amp;(nhsIDCode=A20047)"
            f"(objectClass=nhsMhs)(nhsMhsSvcIA={METADATA}))&#39; nhsMhsEndPoint nhsMhsPartyKey") in page
    assert (f"http://localhost/spine-directory/FHIR/R4/Endpoint?organization=https://fhir.nhs.uk/Id/ods-organization-"
            f"code|A20047&amp;identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|{METADATA}") in page
    assert f"curl &#39;http://localhost/api/resolve?ods=A20047&amp;interaction={METADATA}&#39;" in page
    assert "Nothing is registered" in text(web, "/organisations/ZZ999", 404)


def test_system_page_shows_interactions_product_and_history(seeded: Engine, web: FlaskClient,
                                                            admin_token: str) -> None:
    changed = web.patch("/api/accredited-systems/918999198993", json={"product_version": "9.9.9"},
                        headers={"Authorization": f"Bearer {admin_token}", "If-Match": 'W/"1"'})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    page = text(web, "/systems/918999198993")
    assert "A20047" in page and METADATA in page
    assert "test-admin" in page and "update" in page and "product_version: " in page and "9.9.9" in page
    assert "No accredited system has the ASID" in text(web, "/systems/000000000000", 404)


def test_interaction_catalogue_page(web: FlaskClient) -> None:
    page = text(web, "/interactions")
    assert STRUCTURED in page and "/gpconnect/structured" in page and "patient/*.read" in page


def test_ssp_page_filters_explains_and_charts(db: Engine, web: FlaskClient) -> None:
    now = datetime.now(UTC)
    rows = [
        decision_row(trace_id="t-allowed", from_asid="200000000359", to_asid="918999198993", interaction_id=METADATA,
                     method="GET", target_url="https://x/metadata", outcome="ALLOWED", status=200,
                     provider_status=200, at=now - timedelta(minutes=3)),
        decision_row(trace_id="t-refused", from_asid="111111111111", to_asid="918999198993", interaction_id=METADATA,
                     method="GET", target_url="https://x/metadata",
                     outcome="ASID_CHECK_FAILED_MESSAGESENDER_111111111111", status=403, at=now - timedelta(minutes=1)),
        decision_row(trace_id="t-old", from_asid="111111111111", to_asid="222222222222", interaction_id=METADATA,
                     method="GET", target_url="https://x/metadata", outcome="ALLOWED", status=200,
                     at=now - timedelta(hours=3)),
    ]
    with db.begin() as conn:
        conn.execute(insert(SspDecision), rows)
    page = text(web, "/ssp")
    assert "the sender, ASID 111111111111, has no accredited system listing this interaction" in page
    assert page.index("t-refused") < page.index("t-allowed") < page.index("t-old")  # newest first
    assert "<svg" in page and "allowed: 1" in page and "sender not accredited: 1" in page  # the last hour only
    refused = text(web, "/ssp?outcome=refused")
    assert "t-refused" in refused and "t-allowed" not in refused
    by_kind = text(web, "/ssp?outcome=sender+not+accredited")
    assert "t-refused" in by_kind and "t-allowed" not in by_kind and "t-old" not in by_kind
    assert "t-refused" not in text(web, "/ssp?outcome=audit+JWT")
    by_asid = text(web, "/ssp?asid=918999198993")
    assert "t-refused" in by_asid and "t-allowed" in by_asid and "t-old" not in by_asid
    by_trace = text(web, "/ssp?trace_id=t-old")
    assert "t-old" in by_trace and "t-refused" not in by_trace


def test_malformed_addresses_and_filters_are_answered_not_failed(seeded: Engine, web: FlaskClient) -> None:
    for path in ("/organisations/A2%00", "/organisations/%F0%9F%98%80", "/systems/9189991%00", "/systems/abc"):
        assert web.get(path).status_code == 404, path
    for path in ("/ssp?asid=%00&trace_id=x%00y&outcome=%00", "/ssp?before=%00~1", "/ssp?before=2026-01-01T00:00~99",
                 "/?q=%00", "/?q=A20047&after_as=-1&after_mhs=99999999999999999999999"):
        assert web.get(path).status_code in (200, 400), path
