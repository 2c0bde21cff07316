"""The OpenAPI 3 contract of /api, generated from the marshmallow schemas (apispec), and its docs page.

``GET /api/openapi.json`` is the document; ``GET /api/docs`` is Swagger UI, its files served from the
``swagger-ui-bundle`` package (no CDN). The document walks the app's url_map, so every /api rule is in it;
what each operation takes and answers is the table ``OPERATIONS`` below (bodies are the schemas of schemas.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Blueprint, Flask, Response, current_app, jsonify
from marshmallow import Schema
from werkzeug.exceptions import NotFound

from sds_registry.web.api import schemas
from sds_registry.web.api.admin import ClientSchema
from sds_registry.web.api.errors import http_error_response
from sds_registry.web.api.views import MAX_LIMIT

bp = Blueprint("api_docs", __name__)

_OUTCOME = "OperationOutcome"
_WHY = {
    400: "Malformed request (not JSON, bad query parameter or header syntax)",
    401: "No bearer token, or an unknown or revoked one",
    403: "The token may not do this",
    404: "No such record",
    409: "A duplicate, or the record changed since the If-Match version was read",
    422: "The body breaks a rule (one issue per broken rule, the field in expression)",
    428: "If-Match is missing",
}


@dataclass(frozen=True)
class Op:
    summary: str
    ok: int = 200
    body: type[Schema] | None = None  # the success body (None: no body, e.g. 204)
    request: type[Schema] | None = None
    errors: tuple[int, ...] = ()
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    paged: bool = False
    write: bool = False  # needs a bearer token
    admin: bool = False  # needs an admin token (reads included)
    etag: bool = False  # answers ETag
    if_match: bool = False
    prefer: bool = False
    location: bool = False
    partial: bool = False  # PATCH: every request field optional
    example: dict[str, Any] | None = None
    tags: tuple[str, ...] = field(default=())


_WRITE_ERRORS = (400, 401, 403, 422)
_Resource = tuple[str, type[Schema], type[Schema], tuple[tuple[str, str], ...], dict[str, Any]]
_RESOURCES: dict[str, _Resource] = {
    "organisations": ("Organisation", schemas.OrganisationSchema, schemas.OrganisationRecord,
                      (("ods_code", "exact ODS code"),),
                      {"ods_code": "A20047", "name": "Example Surgery", "postcode": "LS1 6AE"}),
    "accredited_systems": ("Accredited system", schemas.AccreditedSystemSchema, schemas.AccreditedSystemRecord,
                           (("ods_code", "exact ODS code"), ("party_key", "exact party key"),
                            ("interaction", "an interaction ID the system serves"),
                            ("manufacturer_org", "the manufacturer's ODS code")),
                           {"asid": "918999198738", "ods_code": "A20047", "party_key": "A20047-821870",
                            "interactions": ["urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"]}),
    "mhs": ("MHS record", schemas.MhsSchema, schemas.MhsRecord,
            (("ods_code", "exact ODS code"), ("party_key", "exact party key"),
             ("interaction", "an interaction ID the record serves")),
            {"unique_identifier": "A20047-821870-gpc", "ods_code": "A20047", "party_key": "A20047-821870",
             "fqdn": "gpc.example.nhs.uk"}),
}
_PAGING = (("limit", f"page size, 1 to {MAX_LIMIT} (default 100)"),
           ("after", "the cursor of the previous page's 'next' link"))


def _resource_ops() -> dict[tuple[str, str], Op]:
    ops: dict[tuple[str, str], Op] = {}
    for name, (label, request, record, filters, example) in _RESOURCES.items():
        tags = (name,)
        ops[(f"api.{name}_collection", "get")] = Op(
            f"List {label}s", body=schemas.page_of(record), errors=(400,), query=filters, paged=True, tags=tags)
        ops[(f"api.{name}_collection", "post")] = Op(
            f"Create an {label}" if label[0] in "AO" else f"Create a {label}", 201, record, request,
            (*_WRITE_ERRORS, 409), write=True, etag=True, prefer=True, location=True, example=example, tags=tags)
        ops[(f"api.{name}_item", "get")] = Op(f"Read one {label}", body=record, errors=(404,), etag=True, tags=tags)
        ops[(f"api.{name}_item", "put")] = Op(
            f"Replace one {label}", body=record, request=request, errors=(*_WRITE_ERRORS, 404, 409, 428),
            write=True, etag=True, if_match=True, prefer=True, example=example, tags=tags)
        ops[(f"api.{name}_item", "patch")] = Op(
            f"Change fields of one {label}", body=record, request=request, errors=(*_WRITE_ERRORS, 404, 409, 428),
            write=True, etag=True, if_match=True, prefer=True, partial=True, tags=tags)
        ops[(f"api.{name}_item", "delete")] = Op(
            f"Delete one {label}", 204, errors=(400, 401, 403, 404, 409, 428), write=True, if_match=True, tags=tags)
    return ops


OPERATIONS: dict[tuple[str, str], Op] = {
    **_resource_ops(),
    ("api.register_provider", "post"): Op(
        "Register a provider system (accredited system and MHS records) in one call", 201,
        schemas.ProviderRegistered, schemas.ProviderRegistrationSchema, (*_WRITE_ERRORS, 409), write=True,
        prefer=True, location=True, tags=("registrations",),
        example={"ods_code": "A20047", "fqdn": "gpc.example.nhs.uk", "service_root": "https://gpc.example.nhs.uk/fhir",
                 "asid": "918999198738", "party_key": "A20047-821870", "manufacturer_org": "YEA",
                 "product_name": "Example GP", "product_version": "1.0",
                 "interactions": ["urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"]}),
    ("api.register_consumer", "post"): Op(
        "Register a consumer system in one call", 201, schemas.ConsumerRegistered,
        schemas.ConsumerRegistrationSchema, (*_WRITE_ERRORS, 409), write=True, etag=True, prefer=True,
        location=True, tags=("registrations",),
        example={"ods_code": "B82617", "asid": "200000000359", "party_key": "B82617-807423",
                 "manufacturer_org": "YEA", "product_name": "Example consumer", "product_version": "1.0",
                 "interactions": ["urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"]}),
    ("api.create_agreement", "post"): Op(
        "Create a data-sharing agreement", 201, schemas.AgreementRecord, schemas.AgreementSchema,
        (*_WRITE_ERRORS, 409), write=True, etag=True, prefer=True, tags=("agreements",),
        example={"consumer_ods": "B82617", "provider_ods": "A20047", "description": "example"}),
    ("api.resolve", "get"): Op(
        "Resolve an ODS code and interaction to the provider's endpoint (the GP Connect lookup)",
        body=schemas.Resolved, errors=(400, 404, 422),
        query=(("ods", "the provider's ODS code (required)"), ("interaction", "the interaction ID (required)")),
        tags=("resolve",)),
    ("api.interactions", "get"): Op(
        "The interaction catalogue", body=schemas.page_of(schemas.Interaction), tags=("resolve",)),
    ("api_admin.list_clients", "get"): Op(
        "List API clients", body=schemas.page_of(schemas.ClientRecord), errors=(400, 401, 403),
        query=(("revoked", "'false' leaves revoked clients out"),), paged=True, admin=True, tags=("clients",)),
    ("api_admin.create_client", "post"): Op(
        "Create an API client (the answer carries its token, shown once)", 201, schemas.ClientIssued,
        ClientSchema, (*_WRITE_ERRORS, 409), write=True, admin=True, prefer=True, location=True, tags=("clients",),
        example={"name": "supplier", "ods_codes": ["A20047"]}),
    ("api_admin.client", "get"): Op(
        "Read one API client", body=schemas.ClientRecord, errors=(401, 403, 404), admin=True, tags=("clients",)),
    ("api_admin.revoke_client", "delete"): Op(
        "Revoke an API client", 204, errors=(401, 403, 404, 409), write=True, admin=True, tags=("clients",)),
    ("api_admin.list_agreements", "get"): Op(
        "List data-sharing agreements", body=schemas.page_of(schemas.AgreementRecord), errors=(400,),
        query=(("consumer_ods", "exact consumer ODS code ('*' finds wildcards)"),
               ("provider_ods", "exact provider ODS code ('*' finds wildcards)")), paged=True, tags=("agreements",)),
    ("api_admin.agreement", "get"): Op(
        "Read one data-sharing agreement", body=schemas.AgreementRecord, errors=(404,), etag=True,
        tags=("agreements",)),
    ("api_admin.delete_agreement", "delete"): Op(
        "Delete a data-sharing agreement", 204, errors=(400, 401, 403, 404, 409, 428), write=True, if_match=True,
        tags=("agreements",)),
    ("api_admin.changes", "get"): Op(
        "The write audit: registry writes, oldest first", body=schemas.page_of(schemas.WriteEvent),
        errors=(400, 401, 403), paged=True, admin=True, tags=("audit",),
        query=(("record", "TYPE, TYPE:KEY or KEY"), ("ods", "an ODS code"), ("actor", "the writer's client name"),
               ("since", "ISO 8601 date-time, inclusive"), ("until", "ISO 8601 date-time, exclusive"))),
    ("ssp.authorise", "post"): Op(
        "The SSP's decision for a request, without forwarding it", body=schemas.AuthoriseDecision,
        request=schemas.AuthoriseRequest, errors=(400,), tags=("ssp",),
        example={"method": "GET", "targetUrl": "https://gpc.example.nhs.uk/fhir/metadata",
                 "headers": {"Ssp-From": "200000000359", "Ssp-To": "918999198738",
                             "Ssp-InteractionID": "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1",
                             "Ssp-TraceID": "09a01679-2564-0fb4-5129-aecc81ea2706"}}),
    ("ssp_audit.list_decisions", "get"): Op(
        "SSP decisions, in id order", body=schemas.page_of(schemas.SspDecisionRecord), errors=(400, 401, 403),
        paged=True, admin=True, tags=("audit",),
        query=(("asid", "sender or receiver ASID"), ("trace_id", "Ssp-TraceID"),
               ("since", "ISO 8601 date-time, inclusive"), ("until", "ISO 8601 date-time, exclusive"))),
    ("api_docs.openapi_json", "get"): Op("This document", tags=("docs",)),
    ("api_docs.docs", "get"): Op("Swagger UI for this document (HTML)", tags=("docs",)),
    ("api_docs.docs_asset", "get"): Op("Swagger UI's static files", errors=(404,), tags=("docs",)),
}

_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "integer"} if conv == "int" else {"type": "string"}}
              for conv, name in _CONVERTER.findall(rule)]
    return _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", rule), params


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


def _operation(op: Op, path_params: list[dict[str, Any]], schema_name: dict[type[Schema], str]) -> dict[str, Any]:
    def ref(schema: type[Schema]) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{schema_name[schema]}"}

    params = list(path_params)
    for name, description in (*op.query, *(_PAGING if op.paged else ())):
        params.append({"name": name, "in": "query", "required": name in ("ods", "interaction")
                       and op.summary.startswith("Resolve"), "description": description, "schema": {"type": "string"}})
    if op.if_match:
        params.append({"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                       "description": 'W/"<version>", the ETag read (without it: 428)', "example": 'W/"1"'})
    if op.prefer:
        params.append({"name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
                       "description": "return=minimal (no body) or return=representation (the default)"})
    headers: dict[str, Any] = {}
    if op.etag:
        headers["ETag"] = _header('W/"<version>": send it back as If-Match to update or delete')
    if op.location:
        headers["Location"] = _header("the new record's URL")
    if op.prefer:
        headers["Preference-Applied"] = _header("the Prefer honoured")
    success: dict[str, Any] = {"description": "OK" if op.ok < 300 else "Done"}
    if op.body is not None:
        success["content"] = {"application/json": {"schema": ref(op.body)}}
    elif op.ok != 204 and op.summary.startswith("Swagger UI"):
        success["content"] = {"text/html": {"schema": {"type": "string"}}}
    elif op.ok != 204:
        success["content"] = {"application/json": {"schema": {"type": "object"}}} if op.summary == "This document" \
            else {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    if headers:
        success["headers"] = headers
    responses: dict[str, Any] = {str(op.ok): success}
    outcome = {"content": {"application/json": {"schema": ref(schemas.OperationOutcome)}}}
    for status in sorted({*op.errors, *((401, 403) if op.write or op.admin else ())}):
        responses[str(status)] = {"description": _WHY[status], **outcome}
    responses["500"] = {"description": "Unexpected internal error", **outcome}
    operation: dict[str, Any] = {"summary": op.summary, "tags": list(op.tags), "responses": responses}
    if params:
        operation["parameters"] = params
    if op.request is not None:
        media: dict[str, Any] = {"schema": ref(op.request)}
        if op.example is not None:
            media["example"] = op.example
        operation["requestBody"] = {"required": True, "content": {"application/json": media}}
    if op.write or op.admin:
        operation["security"] = [{"bearer": []}]
    return operation


def _schema_name(schema: Any) -> str:
    resolved = resolve_schema_cls(schema)
    cls = resolved[0] if isinstance(resolved, list) else resolved
    name = cls.__name__.lstrip("_")
    return f"{name.removesuffix('Schema')}Input" if name.endswith("Schema") else name


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI document for every /api rule of ``app``."""
    spec = APISpec(title="sds-registry /api", version=version("sds-registry"), openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
                   info={"description": "The JSON registry API: reads are anonymous, writes need a bearer token "
                                        "('sds token create'). Errors are FHIR OperationOutcomes."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    wanted = {op.body for op in OPERATIONS.values()} | {op.request for op in OPERATIONS.values()}
    wanted |= {schemas.OperationOutcome}
    names = {schema: _schema_name(schema) for schema in wanted if schema is not None}
    for schema in sorted(names, key=lambda s: s.__name__):
        if names[schema] not in spec.components.schemas:  # nested ones are added with their parent
            spec.components.schema(names[schema], schema=schema)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not (rule.rule == "/api" or rule.rule.startswith("/api/")):
            continue
        path, params = _path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op = OPERATIONS.get((rule.endpoint, method.lower()))
            if op is None:
                raise LookupError(f"{rule.endpoint} {method} has no entry in web/api/openapi.py OPERATIONS")
            paths.setdefault(path, {})[method.lower()] = _operation(op, params, names)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document: dict[str, Any] = spec.to_dict()
    _mark_partial(document)
    _seed_examples(document)
    return document


_SEED_SECTIONS = {"OrganisationInput": "organisations", "AccreditedSystemInput": "accredited_systems",
                  "MhsInput": "message_handling_systems", "ProviderRegistrationInput": "providers",
                  "ConsumerRegistrationInput": "consumers", "AgreementInput": "data_sharing_agreements"}
_SEED_KEYS = {"/api/organisations/{key}": ("organisations", "ods_code"),
              "/api/accredited-systems/{key}": ("accredited_systems", "asid"),
              "/api/mhs/{key}": ("message_handling_systems", "unique_identifier")}


@cache
def _seed() -> dict[str, Any]:
    seed: dict[str, Any] = json.loads((resources.files("sds_registry") / "seed_data" / "directory.json").read_text())
    return seed


def _seed_examples(document: dict[str, Any]) -> None:
    """Request bodies and path keys take the sample directory's values (the first record of each kind)."""
    components = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path in _SEED_KEYS:
                section, key = _SEED_KEYS[path]
                record = _seed()[section][0]
                for param in operation.get("parameters", []):
                    if param["in"] == "path" and key in record:
                        param["example"] = record[key]
            media = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if not media:
                continue
            name = media["schema"]["$ref"].rsplit("/", 1)[1].removesuffix("Patch")
            if name in _SEED_SECTIONS:
                record = _seed()[_SEED_SECTIONS[name]][0]
                media["example"] = {k: v for k, v in record.items() if k in components[name]["properties"]}


def _mark_partial(document: dict[str, Any]) -> None:
    """PATCH bodies: the same schema with nothing required (apispec renders one schema per class)."""
    for operations in document["paths"].values():
        patch = operations.get("patch")
        if patch and "requestBody" in patch:
            media = patch["requestBody"]["content"]["application/json"]
            name = media["schema"]["$ref"].rsplit("/", 1)[1]
            full = document["components"]["schemas"][name]
            document["components"]["schemas"].setdefault(
                f"{name}Patch", {k: v for k, v in full.items() if k != "required"})
            media["schema"] = {"$ref": f"#/components/schemas/{name}Patch"}


_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
           "swagger-ui-standalone-preset.js": "text/javascript"}


@cache
def _asset(name: str) -> bytes:
    """One of Swagger UI's files, read once from the swagger-ui-bundle package."""
    import swagger_ui_bundle

    return (Path(swagger_ui_bundle.swagger_ui_path) / name).read_bytes()


@bp.get("/openapi.json")
def openapi_json() -> Response:
    state = current_app.extensions["sds"]
    if "openapi" not in state:
        state["openapi"] = build(current_app)
    return jsonify(state["openapi"])


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sds-registry /api</title>
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/swagger-ui-standalone-preset.js"></script>
<script src="docs/init.js"></script>
</body></html>
"""
_INIT = """window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
"""


@bp.get("/docs")
def docs() -> Response:
    return Response(_PAGE, mimetype="text/html")


@bp.get("/docs/<path:name>")
def docs_asset(name: str) -> Response:
    if name == "init.js":
        return Response(_INIT, mimetype="text/javascript")
    if name not in _ASSETS:
        return http_error_response(NotFound())
    return Response(_asset(name), mimetype=_ASSETS[name])
