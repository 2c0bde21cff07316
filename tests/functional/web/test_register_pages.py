"""The registration pages (Flask's client, SQLite and PostgreSQL): the token once per session, CSRF, the same
rules as /api beside each field, and nothing stored when a rule is broken."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.models import AccreditedSystem, MessageHandlingSystem
from tests.conftest import make_token
from tests.functional.web.conftest import csrf, sign_in

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"


def counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as s:
        return (s.scalar(select(func.count()).select_from(AccreditedSystem)) or 0,
                s.scalar(select(func.count()).select_from(MessageHandlingSystem)) or 0)


def provider_form(web: FlaskClient, **fields: object) -> tuple[int, str]:
    page = web.get("/register/provider").get_data(as_text=True)
    answer = web.post("/register/provider", data={"csrf_token": csrf(page), **fields})
    return answer.status_code, answer.get_data(as_text=True)


def test_register_asks_for_the_token_once_per_session(seeded: Engine, web: FlaskClient) -> None:
    assert web.get("/register/provider").status_code == 303  # no token yet
    page = web.get("/register").get_data(as_text=True)
    wrong = web.post("/register", data={"csrf_token": csrf(page), "token": "sds_not-a-token"})
    assert wrong.status_code == 400 and "this token is unknown or revoked" in wrong.get_data(as_text=True)
    sign_in(web, make_token(seeded, "web-user", ods=("B86041",)))
    assert "Signed in with the API token of <strong>web-user</strong>" in web.get("/register").get_data(as_text=True)
    assert web.get("/register/provider").status_code == 200
    assert "sds_" not in (web.get_cookie("sds_session").value if web.get_cookie("sds_session") else "")


def test_a_post_without_the_csrf_token_changes_nothing(seeded: Engine, web: FlaskClient) -> None:
    sign_in(web, make_token(seeded, "web-admin", admin=True))
    before = counts(seeded)
    answer = web.post("/register/provider", data={"ods_code": "B86041", "fqdn": "gp.example.nhs.uk"})
    assert answer.status_code == 422 and "CSRF" in answer.get_data(as_text=True)
    assert counts(seeded) == before
    web.post("/register/sign-out", data={})  # no CSRF token: still signed in
    assert web.get("/register/provider").status_code == 200
    token_form = web.__class__(web.application).post("/register", data={"token": "sds_x"})  # a fresh session
    assert token_form.status_code == 400 and "CSRF token is missing" in token_form.get_data(as_text=True)


def test_provider_registration_stores_what_api_would(seeded: Engine, web: FlaskClient) -> None:
    sign_in(web, make_token(seeded, "web-b86041", ods=("B86041",)))
    status, page = provider_form(web, ods_code="B86041", fqdn="gp.example.nhs.uk", fhir_version="STU3",
                                 gpc_major_version="1", interactions=[METADATA, STRUCTURED], product_name="Web GP")
    assert status == 201, page
    assert "https://gp.example.nhs.uk/B86041/STU3/1/gpconnect/structured" in page
    with Session(seeded) as s:
        system = s.scalars(select(AccreditedSystem).where(AccreditedSystem.ods_code == "B86041")).one()
        assert list(system.interactions) == [METADATA, STRUCTURED] and system.product_name == "Web GP"
    found = web.get(f"/api/resolve?ods=B86041&interaction={STRUCTURED}").get_json()
    assert found["asid"] == system.asid


def test_a_broken_rule_is_shown_beside_its_field_and_nothing_is_stored(seeded: Engine, web: FlaskClient) -> None:
    sign_in(web, make_token(seeded, "web-admin", admin=True))
    before = counts(seeded)
    status, page = provider_form(web, ods_code="B86041", fqdn="10.0.0.1", gpc_major_version="one",
                                 interactions=[METADATA])
    assert status == 422
    fqdn_field = page[page.index('id="fqdn"'):page.index('id="fhir_version"')]
    assert "fqdn-error" in fqdn_field and "is an IP address" in fqdn_field
    major_field = page[page.index('id="gpc_major_version"'):page.index('id="interactions"')]
    assert "must be an integer" in major_field and "(rule: gpc-major-version)" in major_field
    assert counts(seeded) == before


def test_a_token_for_another_organisation_is_refused_beside_the_ods_code(seeded: Engine, web: FlaskClient) -> None:
    sign_in(web, make_token(seeded, "web-other", ods=("Y02891",)))
    before = counts(seeded)
    status, page = provider_form(web, ods_code="B86041", fqdn="gp.example.nhs.uk", interactions=[METADATA])
    assert status == 422
    ods_field = page[page.index('id="ods_code"'):page.index('for="fqdn"')]
    assert "ods_code-error" in ods_field and "B86041" in ods_field
    assert counts(seeded) == before


def test_consumer_registration_and_its_conflict(seeded: Engine, web: FlaskClient) -> None:
    sign_in(web, make_token(seeded, "web-admin", admin=True))
    fields = {"ods_code": "Y02891", "product_name": "Web consumer", "manufacturer_org": "YGM24",
              "interactions": [METADATA], "fqdn": "consumer.example.nhs.uk"}
    page = web.get("/register/consumer").get_data(as_text=True)
    answer = web.post("/register/consumer", data={"csrf_token": csrf(page), **fields})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert "consumer.example.nhs.uk" in answer.get_data(as_text=True)
    again = web.post("/register/consumer", data={"csrf_token": csrf(page), **fields})
    assert again.status_code == 422 and "already has an accredited system for product" in again.get_data(as_text=True)


def test_a_revoked_token_ends_the_session(seeded: Engine, web: FlaskClient, admin_token: str) -> None:
    sign_in(web, make_token(seeded, "web-soon-revoked", admin=True))
    listed = web.get("/api/clients", headers={"Authorization": f"Bearer {admin_token}"}).get_json()["items"]
    ident = next(c["id"] for c in listed if c["name"] == "web-soon-revoked")
    revoked = web.delete(f"/api/clients/{ident}", headers={"Authorization": f"Bearer {admin_token}"})
    assert revoked.status_code in (200, 204), revoked.get_data(as_text=True)
    assert web.get("/register/provider").status_code == 303
    assert "Registering needs an API token" in web.get("/register").get_data(as_text=True)
