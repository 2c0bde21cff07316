"""Administration under /api: API clients (tokens), data-sharing agreements and the write audit (/changes).

``/clients`` and ``/changes`` need an admin token. Agreements read anonymously like every registry record;
creating one needs a token bound to both organisations (or admin), deleting one a token bound to either.
Views own their transaction (the helpers of views.py); errors are the /api OperationOutcomes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, url_for
from marshmallow import RAISE, Schema, fields
from sqlalchemy.orm import Session

from sds_registry.db import begin_write
from sds_registry.domain import formats
from sds_registry.errors import Forbidden, InvalidIdentifier, NotFound, RegistryError
from sds_registry.services import agreements, audit, clients, records
from sds_registry.services.writes import Actor
from sds_registry.web import context
from sds_registry.web.api import schemas
from sds_registry.web.api.auth import require_admin
from sds_registry.web.api.errors import BadRequest, registry_error_response
from sds_registry.web.api.ssp import _time as query_time
from sds_registry.web.api.views import _body, _if_match, _limit, _page, _respond, _write

bp = Blueprint("api_admin", __name__)
DB_INT_MAX = 2**31 - 1  # ids are INTEGER columns


@bp.errorhandler(RegistryError)
def _registry_error(exc: RegistryError) -> Response:
    return registry_error_response(exc)


def _admin_read() -> None:
    """Check the admin token of a read; commit, so the token's ``last_used_at`` is kept."""
    session = context.session()
    begin_write(session)
    try:
        require_admin()
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _db_id(record_id: int) -> int:
    """An id from the URL; past the INTEGER range no record has it (and PostgreSQL would refuse the query)."""
    if record_id > DB_INT_MAX:
        raise NotFound(f"no record has id {record_id}")
    return record_id


def _as_admin(actor: Actor) -> Actor:
    if not actor.admin:
        raise Forbidden("API clients are managed with an admin token")
    return actor


# ---- API clients -----------------------------------------------------------------------------------------


class ClientSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.Raw(required=True)  # the service says what a name may be
    admin = fields.Boolean(load_default=False)
    ods_codes = fields.List(fields.String(), load_default=list)


def _client_location(client_id: int) -> str:
    return url_for("api_admin.client", client_id=client_id)


@bp.get("/clients")
def list_clients() -> Response:
    """Clients in id order (never a token or its hash); ``revoked=false`` leaves revoked ones out."""
    _admin_read()
    limit, after = _limit()
    live_only = request.args.get("revoked", "").lower() == "false"
    rows = clients.list_clients(context.session(), live_only=live_only, limit=limit + 1, after_id=after)
    return _page(rows, limit, clients.client_dict)


@bp.post("/clients")
def create_client() -> Response:
    """A new client; the answer carries its token, the only time it is shown."""
    data = schemas.load(ClientSchema, _body())

    def issue(session: Session, actor: Actor) -> tuple[Any, str]:
        return clients.issue_client(session, data["name"], admin=data["admin"], ods_codes=data["ods_codes"],
                                    actor=_as_admin(actor))

    row, token = _write(issue)
    return _respond({**clients.client_dict(row), "token": token}, 201, location=_client_location(row.id))


@bp.get("/clients/<int:client_id>")
def client(client_id: int) -> Response:
    _admin_read()
    return _respond(clients.client_dict(clients.get_client(context.session(), _db_id(client_id))))


@bp.delete("/clients/<int:client_id>")
def revoke_client(client_id: int) -> Response:
    """Revoke: the token gets 401 from the next request on; the client stays listed, as revoked."""
    def revoke(session: Session, actor: Actor) -> None:
        admin = _as_admin(actor)
        clients.revoke_client(session, clients.get_client(session, _db_id(client_id)), admin)

    _write(revoke)
    return Response(status=204)


# ---- data-sharing agreements -----------------------------------------------------------------------------


@bp.get("/data-sharing-agreements")
def list_agreements() -> Response:
    """Agreements in id order; filters ``consumer_ods`` and ``provider_ods`` (exact; ``*`` finds wildcards).
    (POST on this path is views.create_agreement.)"""
    limit, after = _limit()
    rows = agreements.find_agreements(
        context.session(), consumer_ods=request.args.get("consumer_ods") or None,
        provider_ods=request.args.get("provider_ods") or None, limit=limit + 1, after_id=after)
    return _page(rows, limit, records.agreement_dict)


@bp.get("/data-sharing-agreements/<int:agreement_id>")
def agreement(agreement_id: int) -> Response:
    row = agreements.get_agreement(context.session(), _db_id(agreement_id))
    return _respond(records.agreement_dict(row), version=row.version)


@bp.delete("/data-sharing-agreements/<int:agreement_id>")
def delete_agreement(agreement_id: int) -> Response:
    expected = _if_match()
    _write(lambda s, actor: agreements.delete_agreement(s, agreements.get_agreement(s, _db_id(agreement_id)), expected,
                                                        actor))
    return Response(status=204)


# ---- the write audit -------------------------------------------------------------------------------------


@bp.get("/changes")
def changes() -> Response:
    """Registry writes in id order (oldest first), paged with ``limit`` and ``after``. Filters: ``record``
    (``TYPE``, ``TYPE:KEY`` or ``KEY``), ``ods``, ``actor``, ``since`` (inclusive), ``until`` (exclusive)."""
    _admin_read()
    limit, after = _limit()
    record_type, record_key = audit.parse_record(request.args.get("record", ""))
    ods = request.args.get("ods") or None
    if ods is not None:
        try:
            formats.ods_code(ods, "ods")
        except InvalidIdentifier as exc:
            raise BadRequest(str(exc), "ods") from None
    rows = audit.list_write_events(
        context.session(), record_type=record_type, record_key=record_key, actor=request.args.get("actor") or None,
        ods=ods, since=query_time("since"), until=query_time("until"), after=after, limit=limit + 1)
    return _page(rows, limit, audit.write_event_dict)
