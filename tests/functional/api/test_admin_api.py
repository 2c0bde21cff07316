"""/api/clients (tokens: list, read, create, revoke), /api/data-sharing-agreements (list, read, delete) and
/api/changes (the write audit), through the real Flask client on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.models import ApiClient, AuditEvent, DataSharingAgreement
from tests.conftest import make_token

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def codes(body: dict[str, Any]) -> list[str]:
    return [i["details"]["coding"][0]["code"] for i in body["issue"]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- clients ---------------------------------------------------------------------------------------------


def test_create_list_read_and_revoke_a_client(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    created = client.post("/api/clients", headers=admin_headers, json={"name": "supplier", "ods_codes": ["A20047"]})
    assert created.status_code == 201, created.json
    token = created.json.pop("token")
    assert token.startswith("sds_")
    assert created.headers["Location"] == f"/api/clients/{created.json['id']}"
    assert created.json["name"] == "supplier" and created.json["ods_codes"] == ["A20047"]
    assert created.json["admin"] is False and created.json["revoked"] is False

    # The token writes its organisation's records at once; its use is noted.
    wrote = client.post("/api/organisations", headers=bearer(token), json={"ods_code": "A20047", "name": "A"})
    assert wrote.status_code == 201

    listing = client.get("/api/clients", headers=admin_headers)
    assert listing.status_code == 200
    by_name = {c["name"]: c for c in listing.json["items"]}
    assert set(by_name) == {"test-admin", "supplier"}
    assert by_name["supplier"]["last_used_at"] is not None
    assert all("token" not in c and "token_hash" not in c for c in listing.json["items"])
    assert token not in listing.get_data(as_text=True)
    one = client.get(created.headers["Location"], headers=admin_headers)
    assert one.status_code == 200 and one.json["name"] == "supplier"

    revoked = client.delete(created.headers["Location"], headers=admin_headers)
    assert revoked.status_code == 204
    refused = client.post("/api/organisations", headers=bearer(token), json={"ods_code": "B82617", "name": "B"})
    assert refused.status_code == 401 and codes(refused.json) == ["AUTHOR_CREDENTIALS_ERROR"]
    after = client.get(created.headers["Location"], headers=admin_headers).json
    assert after["revoked"] is True and after["revoked_at"] is not None
    again = client.delete(created.headers["Location"], headers=admin_headers)
    assert again.status_code == 409
    live = client.get("/api/clients?revoked=false", headers=admin_headers).json["items"]
    assert [c["name"] for c in live] == ["test-admin"]

    # Both writes to the client are in the write audit, without the token's hash.
    with Session(db) as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.record_type == "api_client")
                           .order_by(AuditEvent.id)).all()
        assert [(e.actor, e.action) for e in events] == [("test-admin", "create"), ("test-admin", "revoke")]
        hashed = s.scalar(select(ApiClient.token_hash).where(ApiClient.name == "supplier"))
        assert hashed is not None and all(hashed not in (e.before or "") + (e.after or "") for e in events)


def test_names_are_required_and_unique_among_live_clients(
    client: FlaskClient, db: Engine, admin_headers: dict[str, str]
) -> None:
    empty = client.post("/api/clients", headers=admin_headers, json={"name": "", "admin": True})
    assert empty.status_code == 422
    assert empty.json["issue"][0]["expression"] == ["name"] and "required" in empty.json["issue"][0]["diagnostics"]
    spaces = client.post("/api/clients", headers=admin_headers, json={"name": "   ", "admin": True})
    assert spaces.status_code == 422
    unbound = client.post("/api/clients", headers=admin_headers, json={"name": "x"})
    assert unbound.status_code == 422
    first = client.post("/api/clients", headers=admin_headers, json={"name": "ci", "admin": True})
    assert first.status_code == 201
    duplicate = client.post("/api/clients", headers=admin_headers, json={"name": "ci", "admin": True})
    assert duplicate.status_code == 409 and codes(duplicate.json) == ["DUPLICATE_REJECTED"]
    assert client.delete(f"/api/clients/{first.json['id']}", headers=admin_headers).status_code == 204
    reused = client.post("/api/clients", headers=admin_headers, json={"name": "ci", "admin": True})
    assert reused.status_code == 201 and reused.json["id"] != first.json["id"]
    with Session(db) as s:
        assert s.scalar(select(func.count()).select_from(ApiClient).where(ApiClient.name == "ci")) == 2


def test_clients_need_an_admin_token(client: FlaskClient, db: Engine) -> None:
    bound = bearer(make_token(db, "bound", ods=("A20047",)))
    assert client.get("/api/clients").status_code == 401
    for response in (client.get("/api/clients", headers=bound), client.get("/api/clients/1", headers=bound),
                     client.post("/api/clients", headers=bound, json={"name": "x", "admin": True}),
                     client.delete("/api/clients/1", headers=bound)):
        assert response.status_code == 403 and codes(response.json) == ["ACCESS_DENIED"]
    with Session(db) as s:
        assert s.scalar(select(func.count()).select_from(ApiClient)) == 1


def test_unknown_client_is_404(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    for response in (client.get("/api/clients/999", headers=admin_headers),
                     client.delete("/api/clients/999", headers=admin_headers),
                     client.get("/api/clients/abc", headers=admin_headers)):
        assert response.status_code == 404 and response.json["resourceType"] == "OperationOutcome"


# ---- agreements ------------------------------------------------------------------------------------------


def test_agreements_list_filter_page_read_and_delete(client: FlaskClient, seeded: Engine) -> None:
    everything = client.get("/api/data-sharing-agreements")
    assert everything.status_code == 200
    pairs = [(a["consumer_ods"], a["provider_ods"]) for a in everything.json["items"]]
    assert ("K81045", "B82617") in pairs and ("GPC001", "*") in pairs
    page = client.get("/api/data-sharing-agreements?limit=1")
    seen = [a["id"] for a in page.json["items"]]
    while page.json["next"]:
        page = client.get(page.json["next"])
        seen += [a["id"] for a in page.json["items"]]
    assert seen == [a["id"] for a in everything.json["items"]]
    wildcard = client.get("/api/data-sharing-agreements?consumer_ods=*").json["items"]
    assert {a["provider_ods"] for a in wildcard} == {"A20047", "T99999"}
    coxwold = client.get("/api/data-sharing-agreements?provider_ods=B82617").json["items"]
    assert [(a["consumer_ods"], a["provider_ods"]) for a in coxwold] == [("K81045", "B82617")]

    location = f"/api/data-sharing-agreements/{coxwold[0]['id']}"
    one = client.get(location)
    assert one.status_code == 200 and one.headers["ETag"] == 'W/"1"'

    # Either party may end it: a token bound to the provider (not the consumer) deletes it; a stranger may not.
    stranger = bearer(make_token(seeded, "stranger", ods=("A20047",)))
    provider = bearer(make_token(seeded, "coxwold", ods=("B82617",)))
    assert client.delete(location, headers=provider).status_code == 428
    forbidden = client.delete(location, headers={**stranger, "If-Match": 'W/"1"'})
    assert forbidden.status_code == 403 and codes(forbidden.json) == ["ACCESS_DENIED"]
    stale = client.delete(location, headers={**provider, "If-Match": 'W/"7"'})
    assert stale.status_code == 409
    assert client.delete(location, headers={**provider, "If-Match": 'W/"1"'}).status_code == 204
    assert client.get(location).status_code == 404
    with Session(seeded) as s:
        event = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert event is not None
        assert (event.actor, event.action, event.record_key) == ("coxwold", "delete", "K81045->B82617")
        assert s.scalar(select(func.count()).select_from(DataSharingAgreement)) == len(pairs) - 1


def test_wildcard_agreement_is_deleted_by_the_named_side_or_an_admin(
    client: FlaskClient, seeded: Engine, admin_headers: dict[str, str]
) -> None:
    items = client.get("/api/data-sharing-agreements?consumer_ods=*&provider_ods=A20047").json["items"]
    location = f"/api/data-sharing-agreements/{items[0]['id']}"
    other = bearer(make_token(seeded, "other", ods=("B82617",)))
    assert client.delete(location, headers={**other, "If-Match": 'W/"1"'}).status_code == 403
    assert client.delete(location, headers={**admin_headers, "If-Match": 'W/"1"'}).status_code == 204


# ---- the write audit -------------------------------------------------------------------------------------


def test_changes_filters_and_pages(client: FlaskClient, db: Engine, admin_headers: dict[str, str]) -> None:
    bound = bearer(make_token(db, "k81045-supplier", ods=("K81045", "B82617")))
    for ods in ("A20047", "B82617"):
        assert client.post("/api/organisations", headers=admin_headers,
                           json={"ods_code": ods, "name": "Old"}).status_code == 201
    assert client.patch("/api/organisations/A20047", json={"name": "New"},
                        headers={**admin_headers, "If-Match": 'W/"1"'}).status_code == 200
    assert client.post("/api/data-sharing-agreements", headers=bound,
                       json={"consumer_ods": "K81045", "provider_ods": "B82617"}).status_code == 201

    assert client.get("/api/changes").status_code == 401
    assert client.get("/api/changes", headers=bound).status_code == 403
    everything = client.get("/api/changes", headers=admin_headers)
    assert everything.status_code == 200
    items = everything.json["items"]
    assert [(e["actor"], e["action"], e["record_type"], e["record_key"]) for e in items] == [
        ("test-admin", "create", "organisation", "A20047"),
        ("test-admin", "create", "organisation", "B82617"),
        ("test-admin", "update", "organisation", "A20047"),
        ("k81045-supplier", "create", "data_sharing_agreement", "K81045->B82617"),
    ]
    update = items[2]
    assert update["before"]["name"] == "Old" and update["after"]["name"] == "New"
    assert items[0]["before"] is None and update["at"].endswith("Z")
    assert [e["id"] for e in items] == sorted(e["id"] for e in items)

    def keys(query: str) -> list[tuple[str, str]]:
        response = client.get(f"/api/changes?{query}", headers=admin_headers)
        assert response.status_code == 200, response.json
        return [(e["action"], e["record_key"]) for e in response.json["items"]]

    assert keys("record=organisation:A20047") == [("create", "A20047"), ("update", "A20047")]
    assert keys("record=A20047") == [("create", "A20047"), ("update", "A20047")]
    assert keys("record=agreement") == [("create", "K81045->B82617")]
    assert keys("ods=B82617") == [("create", "B82617"), ("create", "K81045->B82617")]
    assert keys("ods=K81045") == [("create", "K81045->B82617")]
    assert keys("actor=k81045-supplier") == [("create", "K81045->B82617")]
    assert keys("since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z") == []
    assert len(keys("since=2000-01-01T00:00:00Z")) == 4

    first = client.get("/api/changes?limit=3", headers=admin_headers).json
    assert len(first["items"]) == 3 and first["next"]
    rest = client.get(first["next"], headers=admin_headers).json
    assert [e["id"] for e in first["items"] + rest["items"]] == [e["id"] for e in items] and rest["next"] is None

    bad_ods = client.get("/api/changes?ods=a2", headers=admin_headers)
    assert bad_ods.status_code == 400 and bad_ods.json["issue"][0]["expression"] == ["ods"]
    bad_time = client.get("/api/changes?since=yesterday", headers=admin_headers)
    assert bad_time.status_code == 400 and bad_time.json["issue"][0]["expression"] == ["since"]
