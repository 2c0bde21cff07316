"""The JSON registry API: registration, resolve, validation errors, auth, ETags, audit, headers."""

from __future__ import annotations

import gzip
import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.domain.interactions import PROVIDER_DEFAULT
from sds_registry.models import AccreditedSystem, AuditEvent, MessageHandlingSystem
from tests.conftest import make_token

GPC = "urn:nhs:names:services:gpconnect:"
METADATA = GPC + "fhir:rest:read:metadata-1"
STRUCTURED = GPC + "fhir:operation:gpc.getstructuredrecord-1"


def counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (s.scalar(select(func.count()).select_from(AccreditedSystem)) or 0,
                s.scalar(select(func.count()).select_from(MessageHandlingSystem)) or 0,
                s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def codes(body: dict[str, Any]) -> list[str]:
    return [i["details"]["coding"][0]["code"] for i in body["issue"]]


def provider(ods: str = "A20047", **extra: Any) -> dict[str, Any]:
    return {"ods_code": ods, "fqdn": "gpc.supplier.thirdparty.nhs.uk", **extra}


def test_resolve_answers_the_seeded_demonstrator(client: FlaskClient, seeded: Engine) -> None:
    response = client.get(f"/api/resolve?ods=A20047&interaction={METADATA}")
    assert response.status_code == 200
    assert response.json == {
        "ods_code": "A20047", "interaction_id": METADATA,
        "service_root_url": "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect",
        "party_key": "A20047-821870", "asid": "918999198993", "fqdn": "orange.testlab.nhs.uk",
        "cpa_id": response.json["cpa_id"],
    }
    structured = client.get(f"/api/resolve?ods=T99999&interaction={STRUCTURED}").json
    assert structured["service_root_url"] == "https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured"
    assert structured["cpa_id"] == "472b35d4641b76454b13"
    assert structured["asid"] == "999999999999"


def test_resolve_404_and_400(client: FlaskClient, seeded: Engine) -> None:
    missing = client.get(f"/api/resolve?ods=Z99999&interaction={METADATA}")
    assert missing.status_code == 404
    assert codes(missing.json) == ["NO_RECORD_FOUND"]
    bad = client.get("/api/resolve?ods=A20047")
    assert bad.status_code == 400
    assert codes(bad.json) == ["BAD_REQUEST"]
    assert bad.json["issue"][0]["expression"] == ["interaction"]


def test_register_provider_creates_as_and_one_mhs_per_interaction(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str]
) -> None:
    response = client.post("/api/providers", json=provider(), headers=admin_headers)
    assert response.status_code == 201, response.json
    body = response.json
    system = body["accredited_system"]
    assert system["ods_code"] == "A20047"
    assert len(system["asid"]) == 12 and system["party_key"].startswith("A20047-")
    assert system["interactions"] == list(PROVIDER_DEFAULT)
    by_interaction = {m["interaction_id"]: m for m in body["message_handling_systems"]}
    assert set(by_interaction) == set(PROVIDER_DEFAULT)
    root = "https://gpc.supplier.thirdparty.nhs.uk/A20047/STU3/1"
    assert by_interaction[METADATA]["endpoints"] == [root + "/gpconnect"]
    assert by_interaction[GPC + "fhir:rest:search:slot-1"]["endpoints"] == [root + "/gpconnect"]
    assert by_interaction[STRUCTURED]["endpoints"] == [root + "/gpconnect/structured"]
    assert by_interaction[GPC + "documents:fhir:rest:read:binary-1"]["endpoints"] == [root + "/gpconnect/documents"]
    assert {m["party_key"] for m in by_interaction.values()} == {system["party_key"]}
    assert len({m["cpa_id"] for m in by_interaction.values()}) == len(PROVIDER_DEFAULT)
    resolved = client.get(f"/api/resolve?ods=A20047&interaction={STRUCTURED}").json
    assert resolved["asid"] == system["asid"]
    assert resolved["service_root_url"] == root + "/gpconnect/structured"


def test_invalid_service_root_gives_one_issue_per_rule_and_stores_nothing(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str]
) -> None:
    before = counts(db)
    response = client.post("/api/providers", headers=admin_headers,
                           json={"ods_code": "A20047", "service_root": "https://x.example.nhs.uk/A20047/stu3/1/"})
    assert response.status_code == 422
    issues = response.json["issue"]
    assert {i["details"]["coding"][0]["code"] for i in issues} == {"INVALID_RESOURCE"}
    diagnostics = sorted(i["diagnostics"] for i in issues)
    assert len(issues) == 2
    assert "rule: fhir-version-uppercase" in diagnostics[0] and "rule: no-trailing-slash" in diagnostics[1]
    assert all(i["expression"] == ["service_root"] for i in issues)
    assert counts(db) == before

    mhs = {"ods_code": "A20047", "party_key": "A20047-123456", "interaction_id": METADATA,
           "endpoints": ["https://x.example.nhs.uk/A20047/stu3/1/"]}
    response = client.post("/api/mhs", json=mhs, headers=admin_headers)
    assert response.status_code == 422
    assert sorted(i["expression"][0] for i in response.json["issue"]) == ["endpoints[0]", "endpoints[0]"]
    assert counts(db) == before


def test_failure_late_in_a_registration_rolls_back_everything(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str]
) -> None:
    first = client.post("/api/providers", json=provider(asid="918999198993"), headers=admin_headers)
    assert first.status_code == 201
    before = counts(db)
    # Same practice, new ASID, but the CPA id of the last interaction is already taken: AS and 22 MHS
    # records are written before the conflict; none may remain.
    taken = first.json["message_handling_systems"][0]["cpa_id"]
    second = client.post("/api/providers", headers=admin_headers, json=provider(
        "B82617", cpa_ids={PROVIDER_DEFAULT[-1]: taken}))
    assert second.status_code == 409
    assert codes(second.json) == ["DUPLICATE_REJECTED"]
    assert counts(db) == before


def test_writes_need_a_token_and_respect_its_ods_binding(client: FlaskClient, db: Engine) -> None:
    before = counts(db)
    anonymous = client.post("/api/providers", json=provider())
    assert anonymous.status_code == 401
    assert codes(anonymous.json) == ["AUTHOR_CREDENTIALS_ERROR"]
    unknown = client.post("/api/providers", json=provider(), headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401
    bound = {"Authorization": "Bearer " + make_token(db, "b82617-supplier", ods=("B82617",))}
    forbidden = client.post("/api/providers", json=provider("A20047"), headers=bound)
    assert forbidden.status_code == 403
    assert codes(forbidden.json) == ["ACCESS_DENIED"]
    assert counts(db) == before
    allowed = client.post("/api/providers", json=provider("B82617"), headers=bound)
    assert allowed.status_code == 201
    asid = allowed.json["accredited_system"]["asid"]
    # ...and may not move its record to another organisation.
    moved = client.patch(f"/api/accredited-systems/{asid}", json={"ods_code": "A20047"},
                         headers={**bound, "If-Match": 'W/"1"'})
    assert moved.status_code == 403
    assert client.get(f"/api/accredited-systems/{asid}").json["ods_code"] == "B82617"


def test_etag_if_match_and_prefer(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    created = client.post("/api/organisations", json={"ods_code": "A20047", "name": "Dr Legg's Surgery"},
                          headers=admin_headers)
    assert created.status_code == 201
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"] == "/api/organisations/A20047"
    got = client.get("/api/organisations/A20047")
    assert got.headers["ETag"] == 'W/"1"' and got.json["name"] == "Dr Legg's Surgery"

    no_match = client.put("/api/organisations/A20047", json={"name": "X"}, headers=admin_headers)
    assert no_match.status_code == 428
    updated = client.put("/api/organisations/A20047", json={"name": "New name", "postcode": "LS1 4HR"},
                         headers={**admin_headers, "If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.headers["ETag"] == 'W/"2"'
    assert updated.json["name"] == "New name" and updated.json["org_type"] == "GP Practice"
    stale = client.put("/api/organisations/A20047", json={"name": "Lost update"},
                       headers={**admin_headers, "If-Match": 'W/"1"'})
    assert stale.status_code == 409
    assert client.get("/api/organisations/A20047").json["name"] == "New name"

    minimal = client.patch("/api/organisations/A20047", json={"locality": "Leeds"},
                           headers={**admin_headers, "If-Match": 'W/"2"', "Prefer": "return=minimal"})
    assert minimal.status_code == 200 and minimal.data == b"" and minimal.headers["ETag"] == 'W/"3"'
    assert client.get("/api/organisations/A20047").json["postcode"] == "LS1 4HR"

    gone = client.delete("/api/organisations/A20047", headers={**admin_headers, "If-Match": 'W/"3"'})
    assert gone.status_code == 204
    assert client.get("/api/organisations/A20047").status_code == 404


def test_malformed_and_invalid_bodies(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    not_json = client.post("/api/organisations", data="{nope", headers={**admin_headers,
                                                                      "Content-Type": "application/json"})
    assert not_json.status_code == 400 and codes(not_json.json) == ["BAD_REQUEST"]
    wrong_types = client.post("/api/mhs", headers=admin_headers, json={"retries": "two", "endpoints": "x",
                                                                      "colour": "red"})
    assert wrong_types.status_code == 422
    fields = {i["expression"][0]: i["diagnostics"] for i in wrong_types.json["issue"]}
    assert set(fields) == {"retries", "endpoints", "colour"}
    assert "unknown-field" in fields["colour"]
    bad_if_match = client.put("/api/organisations/X", json={}, headers={**admin_headers, "If-Match": "soon"})
    assert bad_if_match.status_code == 400


def test_every_write_is_audited_in_the_same_transaction(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str]
) -> None:
    client.post("/api/organisations", json={"ods_code": "A20047", "name": "A"}, headers=admin_headers)
    client.patch("/api/organisations/A20047", json={"name": "B"}, headers={**admin_headers, "If-Match": 'W/"1"'})
    client.post("/api/organisations", json={"ods_code": "bad", "name": "C"}, headers=admin_headers)
    with Session(db) as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [(e.actor, e.action, e.record_type, e.record_key) for e in events] == [
            ("test-admin", "create", "organisation", "A20047"),
            ("test-admin", "update", "organisation", "A20047"),
        ]
        assert events[0].before is None and json.loads(events[0].after or "")["name"] == "A"
        assert json.loads(events[1].before or "")["name"] == "A"
        assert json.loads(events[1].after or "")["name"] == "B"


def test_listing_filters_pages_and_ignores_unknown_parameters(
    client: FlaskClient, seeded: Engine
) -> None:
    page = client.get("/api/mhs?ods_code=A20047&limit=10&colour=blue")
    assert page.status_code == 200
    assert len(page.json["items"]) == 10
    seen = [m["unique_identifier"] for m in page.json["items"]]
    while page.json["next"]:
        page = client.get(page.json["next"])
        seen += [m["unique_identifier"] for m in page.json["items"]]
    assert len(seen) == len(set(seen)) == len(PROVIDER_DEFAULT)
    by_interaction = client.get(f"/api/accredited-systems?interaction={METADATA}").json["items"]
    assert {s["asid"] for s in by_interaction} >= {"918999198993", "200000000359", "200000042019"}
    assert client.get("/api/mhs?limit=0").status_code == 400


def test_headers_on_every_response_and_gzip(client: FlaskClient, seeded: Engine) -> None:
    for path in ("/api/mhs?limit=50", "/api/organisations/NOPE", "/api/nothing-here"):
        response = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    big = client.get("/api/mhs?limit=50", headers={"Accept-Encoding": "gzip, deflate"})
    assert big.headers["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(big.data))["items"]) > 20
    plain = client.get("/api/mhs?limit=50")
    assert "Content-Encoding" not in plain.headers
    unknown = client.get("/api/nothing-here")
    assert unknown.status_code == 404 and unknown.json["resourceType"] == "OperationOutcome"
    wrong_method = client.delete("/api/resolve")
    assert wrong_method.status_code == 405 and wrong_method.json["resourceType"] == "OperationOutcome"


def test_consumer_registration(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    response = client.post("/api/consumers", headers=admin_headers, json={
        "ods_code": "K81045", "interactions": [METADATA, STRUCTURED], "manufacturer_org": "K81045"})
    assert response.status_code == 201
    assert response.json["interactions"] == [METADATA, STRUCTURED]
    assert response.json["clients"] == ["K81045"]
    missing = client.post("/api/consumers", headers=admin_headers, json={"ods_code": "K81045"})
    assert missing.status_code == 422


def test_mhs_patch_and_put(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    created = client.post("/api/providers", json=provider(), headers=admin_headers).json
    record = next(m for m in created["message_handling_systems"] if m["interaction_id"] == METADATA)
    uid, cpa = record["unique_identifier"], record["cpa_id"]
    patched = client.patch(f"/api/mhs/{uid}", headers={**admin_headers, "If-Match": 'W/"1"'},
                           json={"endpoints": ["https://new.host.nhs.uk/A20047/STU3/1/gpconnect"]})
    assert patched.status_code == 200, patched.json
    assert patched.json["fqdn"] == "new.host.nhs.uk"  # derived again from the new endpoint
    assert patched.json["party_key"] == record["party_key"] and patched.json["cpa_id"] == cpa
    body = {"ods_code": "A20047", "party_key": record["party_key"], "interaction_id": METADATA,
            "endpoints": ["https://third.host.nhs.uk/A20047/STU3/1/gpconnect"]}
    put = client.put(f"/api/mhs/{uid}", json=body, headers={**admin_headers, "If-Match": 'W/"2"'})
    assert put.status_code == 200, put.json
    assert put.json["cpa_id"] == cpa and put.json["fqdn"] == "third.host.nhs.uk"
    assert put.json["retries"] is None and put.json["version"] == 3
    bad = client.patch(f"/api/mhs/{uid}", headers={**admin_headers, "If-Match": 'W/"3"'},
                       json={"endpoints": ["https://third.host.nhs.uk/A20047/STU3/1/gpconnect/"]})
    assert bad.status_code == 422
    assert client.get(f"/api/mhs/{uid}").json["endpoints"] == ["https://third.host.nhs.uk/A20047/STU3/1/gpconnect"]


def test_as_patch_drops_a_middle_interaction_and_bumps_the_version_each_time(
        client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    docs = GPC + "fhir:rest:search:patient-1"
    created = client.post("/api/consumers", headers=admin_headers, json={
        "ods_code": "K81045", "interactions": [METADATA, STRUCTURED, docs], "manufacturer_org": "K81045"}).json
    path = f"/api/accredited-systems/{created['asid']}"
    # [A, B, C] -> [A, C]: C moves up a position, onto the row B held (unique per system and interaction)
    first = client.patch(path, headers={**admin_headers, "If-Match": 'W/"1"'}, json={"interactions": [METADATA, docs]})
    assert first.status_code == 200, first.json
    assert first.json["interactions"] == [METADATA, docs] and first.headers["ETag"] == 'W/"2"'
    # only a list changes, within the same second as the last write: still a new version
    second = client.patch(path, headers={**admin_headers, "If-Match": 'W/"2"'}, json={"interactions": [docs]})
    assert second.status_code == 200, second.json
    assert second.json["interactions"] == [docs] and second.headers["ETag"] == 'W/"3"'
    assert client.get(path).json["interactions"] == [docs]
    stale = client.patch(path, headers={**admin_headers, "If-Match": 'W/"2"'}, json={"interactions": [METADATA]})
    assert stale.status_code == 409
