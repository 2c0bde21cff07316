"""The JSON registry API under /api: CRUD with ETags, one-call registrations, the GP Connect resolve.

Reads are anonymous; writes need a bearer token. Each write view owns its transaction: the service
raises, the view rolls back, nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request, url_for
from marshmallow import Schema
from sqlalchemy.orm import Session

from sds_registry.db import begin_write
from sds_registry.domain.interactions import CATALOGUE
from sds_registry.errors import PreconditionRequired, RegistryError
from sds_registry.services import (
    accredited_systems,
    agreements,
    directory,
    mhs,
    organisations,
    records,
    registration,
)
from sds_registry.services.writes import Actor
from sds_registry.web import context
from sds_registry.web.api import schemas
from sds_registry.web.api.auth import authenticate
from sds_registry.web.api.errors import BadRequest, registry_error_response

bp = Blueprint("api", __name__)
T = TypeVar("T")
MAX_LIMIT = 500
DEFAULT_LIMIT = 100


@bp.errorhandler(RegistryError)
def _registry_error(exc: RegistryError) -> Response:
    return registry_error_response(exc)


@bp.before_app_request
def _refuse_nul() -> Response | None:
    """NUL (U+0000) in a path segment, query parameter or JSON string: 400 here, not PostgreSQL's error (500)."""
    if not request.path.startswith("/api/"):
        return None
    texts = [*(request.view_args or {}).values(), *request.args.keys(), *request.args.values()]
    if any(isinstance(t, str) and "\x00" in t for t in texts) or (
            request.is_json and _has_nul(request.get_json(silent=True))):
        return registry_error_response(BadRequest("text may not contain NUL (U+0000) characters"))
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


# ---- helpers --------------------------------------------------------------------------------------------


def _body() -> Any:
    if not request.is_json:
        raise BadRequest("the body must be JSON (Content-Type: application/json)", "Content-Type")
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("the body is not valid JSON", "body")
    return data


def cursor_like(raw: str) -> bool:
    """ASCII digits that fit a database integer (str.isdigit alone takes '²', and int() then fails)."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 18


def _if_match() -> int:
    header = request.headers.get("If-Match")
    if header is None:
        raise PreconditionRequired("updates and deletes need If-Match: W/\"<version>\" (the ETag you read)")
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not cursor_like(value):
        raise BadRequest(f"If-Match {header!r} is not an ETag of the form W/\"<version>\"", "If-Match")
    return int(value)


def _write(action: Callable[[Session, Actor], T]) -> T:
    """Authenticate, run ``action`` in one transaction, commit; any error rolls everything back."""
    session = context.session()
    begin_write(session)
    try:
        actor = authenticate()
        result = action(session, actor)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return result


def _minimal() -> bool:
    prefer = request.headers.get("Prefer", "")
    return any(p.strip().lower() == "return=minimal" for p in prefer.split(","))


def _respond(body: Any, status: int = 200, *, version: int | None = None, location: str | None = None) -> Response:
    if _minimal() and request.method != "GET":
        response = Response(status=status)
        response.headers["Preference-Applied"] = "return=minimal"
    else:
        response = jsonify(body)
        response.status_code = status
        if "Prefer" in request.headers:
            response.headers["Preference-Applied"] = "return=representation"
    if version is not None:
        response.headers["ETag"] = f'W/"{version}"'
    if location:
        response.headers["Location"] = location
    return response


def _limit() -> tuple[int, int | None]:
    raw_limit = request.args.get("limit", str(DEFAULT_LIMIT))
    raw_after = request.args.get("after")
    if not cursor_like(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", "limit")
    if raw_after is not None and not cursor_like(raw_after):
        raise BadRequest("after must be the cursor from a previous page's 'next' link", "after")
    return int(raw_limit), int(raw_after) if raw_after is not None else None


def _page(rows: list[Any], limit: int, render: Callable[[Any], dict[str, Any]]) -> Response:
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        args = {k: v for k, v in request.args.items() if k != "after"}
        args["after"] = str(rows[-1].id)
        next_url = f"{request.path}?{urlencode(args)}"
    return _respond({"items": [render(r) for r in rows], "next": next_url})


# ---- resources (organisations, accredited systems, MHS records) -----------------------------------------


@dataclass(frozen=True)
class Resource:
    name: str
    path: str
    key: str
    schema: type[Schema]
    get: Callable[[Session, str], Any]
    render: Callable[[Any], dict[str, Any]]
    create: Callable[[Session, dict[str, Any], Actor], Any]
    update: Callable[..., Any]
    delete: Callable[[Session, str, int | None, Actor], None]
    find: Callable[..., Sequence[Any]]
    filters: tuple[tuple[str, str], ...]  # (query parameter, service keyword)


RESOURCES = (
    Resource("organisations", "/organisations", "ods_code", schemas.OrganisationSchema,
             directory.get_organisation, records.organisation_dict, organisations.create_organisation,
             organisations.update_organisation, organisations.delete_organisation, directory.find_organisations,
             (("ods_code", "ods_code"),)),
    Resource("accredited_systems", "/accredited-systems", "asid", schemas.AccreditedSystemSchema,
             directory.get_accredited_system, records.accredited_system_dict,
             accredited_systems.create_accredited_system, accredited_systems.update_accredited_system,
             accredited_systems.delete_accredited_system, directory.find_accredited_systems,
             (("ods_code", "ods_code"), ("party_key", "party_key"), ("interaction", "interaction_id"),
              ("manufacturer_org", "manufacturer_org"))),
    Resource("mhs", "/mhs", "unique_identifier", schemas.MhsSchema, directory.get_mhs, records.mhs_dict,
             mhs.create_mhs, mhs.update_mhs, mhs.delete_mhs, directory.find_mhs,
             (("ods_code", "ods_code"), ("party_key", "party_key"), ("interaction", "interaction_id"))),
)


def _register(res: Resource) -> None:
    def location(row: Any) -> str:
        return url_for(f"api.{res.name}_item", key=getattr(row, res.key))

    def collection() -> Response:
        if request.method == "POST":
            data = schemas.load(res.schema, _body())
            row = _write(lambda s, actor: res.create(s, data, actor))
            return _respond(res.render(row), 201, version=row.version, location=location(row))
        limit, after = _limit()
        filters = {kw: request.args[param] for param, kw in res.filters if request.args.get(param)}
        rows = list(res.find(context.session(), **filters, limit=limit + 1, after_id=after))
        return _page(rows, limit, res.render)

    def item(key: str) -> Response:
        if request.method == "GET":
            row = res.get(context.session(), key)
            return _respond(res.render(row), version=row.version)
        expected = _if_match()
        if request.method == "DELETE":
            _write(lambda s, actor: res.delete(s, key, expected, actor))
            return Response(status=204)
        partial = request.method == "PATCH"
        data = schemas.load(res.schema, _body(), partial=partial)
        row = _write(lambda s, actor: res.update(s, key, data, expected, actor, partial=partial))
        return _respond(res.render(row), version=row.version)

    bp.add_url_rule(res.path, f"{res.name}_collection", collection, methods=["GET", "POST"])
    bp.add_url_rule(f"{res.path}/<key>", f"{res.name}_item", item, methods=["GET", "PUT", "PATCH", "DELETE"])


for _resource in RESOURCES:
    _register(_resource)


# ---- one-call registrations, agreements, resolve, catalogue ---------------------------------------------


@bp.post("/providers")
def register_provider() -> Response:
    data = schemas.load(schemas.ProviderRegistrationSchema, _body())
    result = _write(lambda s, actor: registration.register_provider(s, data, actor))
    system = result.accredited_system
    body = {
        "accredited_system": records.accredited_system_dict(system),
        "message_handling_systems": [records.mhs_dict(m) for m in result.message_handling_systems],
    }
    return _respond(body, 201, location=url_for("api.accredited_systems_item", key=system.asid))


@bp.post("/consumers")
def register_consumer() -> Response:
    data = schemas.load(schemas.ConsumerRegistrationSchema, _body())
    result = _write(lambda s, actor: registration.register_consumer_system(s, data, actor))
    system = result.accredited_system
    body = records.accredited_system_dict(system)
    if result.message_handling_system is not None:  # registered with fqdn: the record the SSP's check 6 reads
        body["message_handling_systems"] = [records.mhs_dict(result.message_handling_system)]
    return _respond(body, 201, version=system.version,
                    location=url_for("api.accredited_systems_item", key=system.asid))


@bp.post("/data-sharing-agreements")
def create_agreement() -> Response:
    data = schemas.load(schemas.AgreementSchema, _body())
    row = _write(lambda s, actor: agreements.create_agreement(s, data, actor))
    return _respond(records.agreement_dict(row), 201, version=row.version)


@bp.get("/resolve")
def resolve() -> Response:
    ods = request.args.get("ods", "").strip()
    interaction = request.args.get("interaction", "").strip()
    for name, value in (("ods", ods), ("interaction", interaction)):
        if not value:
            raise BadRequest(f"the query parameter '{name}' is required", name, "required")
    found = directory.resolve(context.session(), ods, interaction)
    return _respond({
        "ods_code": found.ods_code,
        "interaction_id": found.interaction_id,
        "service_root_url": found.service_root_url,
        "party_key": found.party_key,
        "asid": found.asid,
        "fqdn": found.fqdn,
        "cpa_id": found.cpa_id,
    })


@bp.get("/interactions")
def interactions() -> Response:
    return _respond({"items": [
        {"id": i.id, "capability": i.capability, "http_method": i.http_method, "path_pattern": i.path_pattern,
         "requested_scope": i.requested_scope, "routing_segment": i.routing_segment, "description": i.description,
         "current": i.current}
        for i in CATALOGUE
    ]})
