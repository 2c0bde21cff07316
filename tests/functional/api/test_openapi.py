"""The /api contract: GET /api/openapi.json is a valid OpenAPI 3 document naming every /api rule, real answers
conform to it (openapi-core), and /api/docs serves Swagger UI from the swagger-ui-bundle package."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate
from sqlalchemy.engine import Engine

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def spec(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document: dict[str, Any] = response.json  # type: ignore[assignment]
    return document


def test_the_document_is_valid_openapi(client: FlaskClient) -> None:
    document = spec(client)
    validate(document)  # type: ignore[arg-type]
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_every_api_rule_and_method_is_in_the_document(app: Flask, client: FlaskClient) -> None:
    paths = spec(client)["paths"]
    seen = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api"):
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths.get(path, {}), f"{method} {path} is not in /api/openapi.json"
            seen += 1
    assert seen >= 30


def test_operations_declare_errors_headers_security_and_examples(client: FlaskClient) -> None:
    paths = spec(client)["paths"]
    put = paths["/api/organisations/{key}"]["put"]
    assert {"400", "401", "403", "404", "409", "422", "428", "500"} <= set(put["responses"])
    assert put["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/OperationOutcome")
    assert {p["name"] for p in put["parameters"]} >= {"key", "If-Match", "Prefer"}
    assert "ETag" in put["responses"]["200"]["headers"]
    assert put["security"] == [{"bearer": []}]
    assert put["requestBody"]["content"]["application/json"]["example"]["name"] == "Dr Legg's Surgery"  # the seed
    provider = paths["/api/providers"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert provider["asid"] == "918999198993"
    assert "security" not in paths["/api/organisations"]["get"]  # reads are anonymous
    assert paths["/api/clients"]["get"]["security"] == [{"bearer": []}]  # admin reads are not
    patch_ref = paths["/api/organisations/{key}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert patch_ref["$ref"].endswith("/OrganisationInputPatch")


def test_real_answers_conform_to_the_document(client: FlaskClient, seeded: Engine,
                                              admin_headers: dict[str, str]) -> None:
    contract = OpenAPI.from_dict(spec(client))  # type: ignore[arg-type]

    def check(method: str, url: str, status: int, **kwargs: Any) -> Any:
        response = client.open(url, method=method, **kwargs)
        assert response.status_code == status, response.get_data(as_text=True)
        path, _, query = url.partition("?")
        request = MockRequest("http://localhost", method.lower(), path, args=dict(parse_qsl(query)))
        contract.validate_response(request, MockResponse(response.get_data(), status_code=status,
                                                         headers=dict(response.headers),
                                                         content_type=response.mimetype))
        return response

    check("GET", "/api/organisations?limit=2", 200)
    check("GET", "/api/accredited-systems?limit=2", 200)
    check("GET", "/api/mhs?limit=2", 200)
    check("GET", "/api/interactions", 200)
    check("GET", "/api/data-sharing-agreements", 200)
    check("GET", "/api/organisations/ZZZ999", 404)
    check("GET", "/api/resolve?ods=A20047", 400)
    created = check("POST", "/api/organisations", 201, headers=admin_headers,
                    json={"ods_code": "Y12345", "name": "Contract Surgery"})
    etag = created.headers["ETag"]
    check("PATCH", "/api/organisations/Y12345", 200, headers={**admin_headers, "If-Match": etag},
          json={"postcode": "LS1 6AE"})
    check("PATCH", "/api/organisations/Y12345", 409, headers={**admin_headers, "If-Match": etag},
          json={"postcode": "LS1 6AE"})
    check("POST", "/api/organisations", 401, json={"ods_code": "Y12346", "name": "No token"})
    check("POST", "/api/organisations", 422, headers=admin_headers, json={"ods_code": "Y12346", "colour": "red"})
    check("GET", "/api/clients", 200, headers=admin_headers)
    check("GET", "/api/changes?limit=3", 200, headers=admin_headers)
    check("GET", "/api/audit", 200, headers=admin_headers)
    check("POST", "/api/ssp/authorise", 200, json={"method": "GET", "targetUrl": "https://x.example/fhir/metadata",
                                                    "headers": {"Ssp-InteractionID": METADATA}})


def test_docs_page_serves_swagger_ui_from_the_package(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    for asset in re.findall(r'(?:src|href)="(docs/[^"]+)"', html):
        answer = client.get(f"/api/{asset}")
        assert answer.status_code == 200 and len(answer.get_data()) > 0, asset
    bundle = client.get("/api/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and b"SwaggerUIBundle" in bundle.get_data()
    assert b"openapi.json" in client.get("/api/docs/init.js").get_data()
    missing = client.get("/api/docs/index.html")
    assert missing.status_code == 404 and missing.json["resourceType"] == "OperationOutcome"


def test_numbers_schemathesis_broke_are_4xx_not_500(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    """Found by schemathesis: '²' passes str.isdigit but not int(); ids past 2**31 overflowed PostgreSQL's INTEGER."""
    for url in ("/api/organisations?after=%C2%B2", "/api/organisations?limit=%C2%B2",
                "/api/organisations?after=99999999999999999999999", "/api/audit?after=%C2%B2"):
        answer = client.get(url, headers=admin_headers)
        assert answer.status_code == 400 and answer.json["resourceType"] == "OperationOutcome", url
    for url in ("/api/data-sharing-agreements/99999999999999999999999", "/api/clients/902827012102"):
        assert client.get(url, headers=admin_headers).status_code == 404, url
    stale = client.delete("/api/organisations/A20047", headers={**admin_headers, "If-Match": 'W/"\u00b2"'})
    assert stale.status_code == 400


def test_nul_characters_are_400_not_500(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    """Found by schemathesis on PostgreSQL: text with NUL reached the database, whose error was a 500."""
    for url in ("/api/resolve?ods=A%00&interaction=x", "/api/organisations?ods_code=%00",
                "/api/organisations/A%00", "/api/changes?actor=%00"):
        answer = client.get(url, headers=admin_headers)
        assert answer.status_code == 400 and answer.json["resourceType"] == "OperationOutcome", url
    posted = client.post("/api/organisations", headers=admin_headers, json={"ods_code": "A20047", "name": "\x00"})
    assert posted.status_code == 400
