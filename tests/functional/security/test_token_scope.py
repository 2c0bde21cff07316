"""Per-ODS API tokens write only their own organisations' records, through every write route of /api; revoked
tokens are refused on every one; tokens are stored only as hashes.

The route table is checked against the app's URL map and /api/openapi.json: a new write route (POST, PUT,
PATCH or DELETE under /api) without a row here fails ``test_every_write_route_has_a_row``. Every case sends a
payload that is valid except for whom it touches (so a 403 is the ODS check, not validation) and the whole
database is compared before and after.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.cli import main
from sds_registry.domain.interactions import CATALOGUE
from sds_registry.models import AccreditedSystem, ApiClient, DataSharingAgreement, MessageHandlingSystem
from sds_registry.web.api.schemas import AccreditedSystemSchema, MhsSchema, OrganisationSchema
from tests.conftest import make_token
from tests.functional.security.snapshot import database_snapshot

OWN, OTHER = "B82617", "A20047"  # the token's organisation (COXWOLD SURGERY) and the demonstrator practice
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: POST routes that write no record: the SSP decision as JSON (anonymous; it adds only a decision audit row).
READ_ONLY_POSTS = frozenset({("/api/ssp/authorise", "POST")})


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: dict[str, Any] | None = None
    #: The record's current version, sent as If-Match (so a 428 or 409 cannot hide the 403).
    version: int | None = None


@dataclass(frozen=True)
class Records:
    """Keys and versions of seeded records: the other organisation's, the token's own, an agreement."""

    other_as: AccreditedSystem
    other_mhs: MessageHandlingSystem
    own_as: AccreditedSystem
    own_mhs: MessageHandlingSystem
    agreement: DataSharingAgreement
    admin_client: int
    #: A catalogue interaction the other organisation has no MHS record for (a create it could make).
    free_interaction: str


def _fields(schema: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The representation trimmed to what the write schema takes (what a client would PUT back)."""
    return {k: v for k, v in row.items() if k in schema().fields and v is not None}


def _as_body(row: AccreditedSystem, **change: Any) -> dict[str, Any]:
    from sds_registry.services.records import accredited_system_dict

    return {**_fields(AccreditedSystemSchema, accredited_system_dict(row)), **change}


def _mhs_body(row: MessageHandlingSystem, **change: Any) -> dict[str, Any]:
    from sds_registry.services.records import mhs_dict

    return {**_fields(MhsSchema, mhs_dict(row)), **change}


def _moved(row: MessageHandlingSystem) -> dict[str, Any]:
    """The change that moves an MHS record to the other organisation (its endpoints' ODS segment too)."""
    return {"ods_code": OTHER, "endpoints": [e.replace(f"/{OWN}/", f"/{OTHER}/") for e in row.endpoints]}


Builder = Callable[[Records], list[Case]]

#: (URL rule, method) -> the cases that aim at another organisation. Every case must answer 403.
ROUTES: dict[tuple[str, str], Builder] = {
    ("/api/organisations", "POST"): lambda r: [
        Case("POST", "/api/organisations", {"ods_code": "A20048", "name": "Not ours"})],
    ("/api/organisations/<key>", "PUT"): lambda r: [
        Case("PUT", f"/api/organisations/{OTHER}",
             _fields(OrganisationSchema, {"ods_code": OTHER, "name": "Taken over"}), 1)],
    ("/api/organisations/<key>", "PATCH"): lambda r: [
        Case("PATCH", f"/api/organisations/{OTHER}", {"name": "Taken over"}, 1)],
    ("/api/organisations/<key>", "DELETE"): lambda r: [Case("DELETE", f"/api/organisations/{OTHER}", None, 1)],
    ("/api/accredited-systems", "POST"): lambda r: [
        Case("POST", "/api/accredited-systems", _as_body(r.other_as, asid="918999198000",
                                                         party_key=f"{OTHER}-800001"))],
    ("/api/accredited-systems/<key>", "PUT"): lambda r: [
        Case("PUT", f"/api/accredited-systems/{r.other_as.asid}", _as_body(r.other_as, product_version="9"),
             r.other_as.version),
        Case("PUT", f"/api/accredited-systems/{r.own_as.asid}", _as_body(r.own_as, ods_code=OTHER),
             r.own_as.version)],
    ("/api/accredited-systems/<key>", "PATCH"): lambda r: [
        Case("PATCH", f"/api/accredited-systems/{r.other_as.asid}", {"product_version": "9"}, r.other_as.version),
        Case("PATCH", f"/api/accredited-systems/{r.own_as.asid}", {"ods_code": OTHER}, r.own_as.version)],
    ("/api/accredited-systems/<key>", "DELETE"): lambda r: [
        Case("DELETE", f"/api/accredited-systems/{r.other_as.asid}", None, r.other_as.version)],
    ("/api/mhs", "POST"): lambda r: [
        Case("POST", "/api/mhs", _mhs_body(r.other_mhs, unique_identifier="a20047cpa0000000001",
                                           cpa_id="a20047cpa0000000001", interaction_id=r.free_interaction))],
    ("/api/mhs/<key>", "PUT"): lambda r: [
        Case("PUT", f"/api/mhs/{r.other_mhs.unique_identifier}", _mhs_body(r.other_mhs, retries=5),
             r.other_mhs.version),
        Case("PUT", f"/api/mhs/{r.own_mhs.unique_identifier}", _mhs_body(r.own_mhs, **_moved(r.own_mhs)),
             r.own_mhs.version)],
    ("/api/mhs/<key>", "PATCH"): lambda r: [
        Case("PATCH", f"/api/mhs/{r.other_mhs.unique_identifier}", {"retries": 5}, r.other_mhs.version),
        Case("PATCH", f"/api/mhs/{r.own_mhs.unique_identifier}", _moved(r.own_mhs), r.own_mhs.version)],
    ("/api/mhs/<key>", "DELETE"): lambda r: [
        Case("DELETE", f"/api/mhs/{r.other_mhs.unique_identifier}", None, r.other_mhs.version)],
    ("/api/providers", "POST"): lambda r: [
        Case("POST", "/api/providers", {"ods_code": OTHER, "fqdn": "hijack.example.thirdparty.nhs.uk",
                                        "interactions": [METADATA], "replace": True})],
    ("/api/consumers", "POST"): lambda r: [
        Case("POST", "/api/consumers", {"ods_code": OTHER, "product_name": "Hijack", "interactions": [METADATA]})],
    ("/api/data-sharing-agreements", "POST"): lambda r: [
        Case("POST", "/api/data-sharing-agreements", {"consumer_ods": OTHER, "provider_ods": "T99999"}),
        Case("POST", "/api/data-sharing-agreements", {"consumer_ods": OWN, "provider_ods": OTHER}),
        Case("POST", "/api/data-sharing-agreements", {"consumer_ods": OWN, "provider_ods": "*"})],
    ("/api/data-sharing-agreements/<int:agreement_id>", "DELETE"): lambda r: [
        Case("DELETE", f"/api/data-sharing-agreements/{r.agreement.id}", None, r.agreement.version)],
    ("/api/clients", "POST"): lambda r: [
        Case("POST", "/api/clients", {"name": "other-org", "ods_codes": [OTHER]}),
        Case("POST", "/api/clients", {"name": "own-org", "ods_codes": [OWN]})],
    ("/api/clients/<int:client_id>", "DELETE"): lambda r: [Case("DELETE", f"/api/clients/{r.admin_client}")],
}


def _records(engine: Engine) -> Records:
    with Session(engine, expire_on_commit=False) as s:
        def first(model: Any, *where: Any) -> Any:
            row = s.scalars(select(model).where(*where).order_by(model.id)).first()
            assert row is not None, f"the seed has no {model.__name__} for {where}"
            return row

        taken = set(s.scalars(select(MessageHandlingSystem.interaction_id)
                              .where(MessageHandlingSystem.ods_code == OTHER)))
        return Records(
            other_as=first(AccreditedSystem, AccreditedSystem.ods_code == OTHER),
            other_mhs=first(MessageHandlingSystem, MessageHandlingSystem.ods_code == OTHER),
            own_as=first(AccreditedSystem, AccreditedSystem.ods_code == OWN),
            own_mhs=first(MessageHandlingSystem, MessageHandlingSystem.ods_code == OWN),
            agreement=first(DataSharingAgreement, DataSharingAgreement.consumer_ods != OWN,
                            DataSharingAgreement.provider_ods != OWN),
            admin_client=first(ApiClient, ApiClient.admin.is_(True)).id,
            free_interaction=next(i.id for i in CATALOGUE if i.id not in taken),
        )


def _send(client: FlaskClient, case: Case, token: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if case.version is not None:
        headers["If-Match"] = f'W/"{case.version}"'
    return client.open(case.path, method=case.method, json=case.body, headers=headers)


def _sds(engine: Engine, *args: str) -> Result:
    """An ``sds`` command on the test database, as a user runs it."""
    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, list(args), env={"SDS_DATABASE_URL": url}, catch_exceptions=False)


def _codes(body: dict[str, Any]) -> list[str]:
    return [issue["details"]["coding"][0]["code"] for issue in body["issue"]]


def _write_rules(client: FlaskClient) -> set[tuple[str, str]]:
    rules = {(rule.rule, method) for rule in client.application.url_map.iter_rules()
             if rule.rule.startswith("/api/") for method in (rule.methods or set()) & WRITE_METHODS}
    spec = client.get("/api/openapi.json").json
    documented = {(re.sub(r"\{(\w+)\}", r"<\1>", path), method.upper()) for path, item in spec["paths"].items()
                  for method in item if method.upper() in WRITE_METHODS}
    # OpenAPI paths carry no converters: compare on the parameter names.
    plain = {(re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule), method) for rule, method in rules}
    assert documented <= plain, f"documented write routes the app lacks: {sorted(documented - plain)}"
    assert plain <= documented, f"write routes missing from /api/openapi.json: {sorted(plain - documented)}"
    return rules


def test_every_write_route_has_a_row(client: FlaskClient) -> None:
    rules = _write_rules(client)
    missing = rules - set(ROUTES) - READ_ONLY_POSTS
    assert not missing, f"write routes with no ODS-scope case in this table: {sorted(missing)}"
    assert not set(ROUTES) - rules, f"rows for routes that no longer exist: {sorted(set(ROUTES) - rules)}"


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda route: f"{route[1]} {route[0]}")
def test_an_ods_token_cannot_write_another_organisation(client: FlaskClient, seeded: Engine,
                                                        route: tuple[str, str]) -> None:
    make_token(seeded, "test-admin", admin=True)
    token = make_token(seeded, "coxwold-supplier", ods=(OWN,))
    cases = ROUTES[route](_records(seeded))
    for case in cases:
        before = database_snapshot(seeded)
        response = _send(client, case, token)
        assert response.status_code == 403, (case, response.status_code, response.get_data(as_text=True))
        assert response.json["resourceType"] == "OperationOutcome"
        assert _codes(response.json) == ["ACCESS_DENIED"], response.json
        assert database_snapshot(seeded) == before, f"{case} changed the database"


def test_the_table_cases_are_writes_the_owner_may_make(client: FlaskClient, seeded: Engine) -> None:
    """The same payloads with an admin token succeed: the 403s above are the ODS check, not a bad payload."""
    admin = make_token(seeded, "test-admin", admin=True)
    records = _records(seeded)
    for route in (("/api/accredited-systems/<key>", "PATCH"), ("/api/mhs/<key>", "PUT"),
                  ("/api/providers", "POST"), ("/api/consumers", "POST"), ("/api/mhs", "POST"),
                  ("/api/data-sharing-agreements", "POST"), ("/api/accredited-systems", "POST")):
        case = ROUTES[route](records)[0]
        response = _send(client, case, admin)
        assert response.status_code in (200, 201), (case, response.get_data(as_text=True))


@pytest.mark.parametrize("revoke_by", ["api", "cli"])
def test_a_revoked_token_is_refused_on_every_write_route(client: FlaskClient, seeded: Engine, revoke_by: str) -> None:
    admin = make_token(seeded, "test-admin", admin=True)
    token = make_token(seeded, "revoked-admin", admin=True)  # an admin token: only revocation can stop it
    records = _records(seeded)
    with Session(seeded) as s:
        revoked_id = s.scalar(select(ApiClient.id).where(ApiClient.name == "revoked-admin"))
    if revoke_by == "api":
        assert client.delete(f"/api/clients/{revoked_id}",
                             headers={"Authorization": f"Bearer {admin}"}).status_code == 204
    else:
        assert _sds(seeded, "token", "revoke", "revoked-admin").exit_code == 0
    before = database_snapshot(seeded)
    for route in sorted(ROUTES):
        for case in ROUTES[route](records):
            response = _send(client, case, token)
            assert response.status_code == 401, (case, response.get_data(as_text=True))
            assert _codes(response.json) == ["AUTHOR_CREDENTIALS_ERROR"]
    assert database_snapshot(seeded) == before


def test_tokens_are_stored_only_as_hashes(client: FlaskClient, db: Engine) -> None:
    """Tokens from the service, the API and the CLI: no column of any table holds one, or a long piece of it."""
    admin = make_token(db, "test-admin", admin=True)
    tokens = [admin, make_token(db, "bound", ods=(OWN, OTHER))]
    created = client.post("/api/clients", json={"name": "from-api", "ods_codes": [OWN]},
                          headers={"Authorization": f"Bearer {admin}"})
    assert created.status_code == 201
    tokens.append(created.json["token"])
    result = _sds(db, "token", "create", "--name", "from-cli", "--admin")
    assert result.exit_code == 0, result.output
    tokens.append(result.output.strip().splitlines()[-1].strip())
    # The tokens work (so they are the real ones), then the whole database is searched for them.
    for token in tokens:
        assert client.post("/api/organisations", json={"ods_code": OWN, "name": "x"},
                           headers={"Authorization": f"Bearer {token}"}).status_code in (201, 409)
    text = repr(database_snapshot(db, keep_volatile=True))
    for token in tokens:
        secret = token.removeprefix("sds_")
        assert len(secret) >= 32, token
        pieces = {secret[i:i + 16] for i in range(0, len(secret) - 15, 4)}
        assert not [p for p in pieces if p in text], f"a piece of a token is stored in plain text: {token[:8]}..."
