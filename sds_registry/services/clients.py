"""API clients: bearer tokens (stored as sha256 hex), each bound to ODS codes or admin; created, listed, revoked.

Takes a Session and never commits. A revoked client keeps its row, so the write audit's actor names stay
explained; its name may be given to a new client. The token itself is returned once, by ``issue_client``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.db import utcnow
from sds_registry.domain import formats
from sds_registry.errors import Conflict, InvalidIdentifier, NotFound
from sds_registry.models import ApiClient, ApiClientOds
from sds_registry.services.writes import Actor, add_audit, flush

NAME_MAX = 100
#: ``last_used_at`` is rewritten at most this often, so a busy token doesn't update its row on every write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
RECORD_TYPE = "api_client"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they are stored in UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def actor_for_token(session: Session, token: str) -> Actor | None:
    """The Actor a bearer token stands for, or None when the token is unknown or revoked. Notes the use in
    ``last_used_at`` (stored if the caller commits)."""
    return actor_for_token_hash(session, hash_token(token))


def actor_for_token_hash(session: Session, token_hash: str) -> Actor | None:
    """actor_for_token for a token known by its hash (the web pages keep the hash in their session, not the token)."""
    client = session.scalar(select(ApiClient).where(ApiClient.token_hash == token_hash))
    if client is None or client.revoked_at is not None:
        return None
    now = utcnow()
    last = _aware(client.last_used_at)
    if last is None or now - last >= LAST_USED_RESOLUTION:
        client.last_used_at = now
    return Actor(name=client.name, admin=client.admin, ods_codes=client.ods_codes)


def client_name(value: object) -> str:
    """A client's name: 1-100 printable characters, no surrounding spaces; ``cli`` is the CLI's audit name."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidIdentifier.single("name", "required", "a client needs a non-empty name")
    if value != value.strip():
        raise InvalidIdentifier.single("name", "format", "the name may not start or end with spaces")
    if len(value) > NAME_MAX:
        raise InvalidIdentifier.single("name", "length", f"the name is longer than {NAME_MAX} characters")
    if not value.isprintable():
        raise InvalidIdentifier.single("name", "format", "the name may hold printable characters only")
    if value == "cli" or value.startswith("cli:"):
        raise InvalidIdentifier.single("name", "reserved", "'cli' names the command line in the write audit")
    return value


def client_dict(row: ApiClient) -> dict[str, Any]:
    """What may be shown of a client: never the token nor its hash."""
    def iso(value: datetime | None) -> str | None:
        aware = _aware(value)
        return aware.isoformat().replace("+00:00", "Z") if aware is not None else None

    return {
        "id": row.id, "name": row.name, "admin": row.admin, "ods_codes": sorted(row.ods_codes),
        "created_at": iso(row.created_at), "last_used_at": iso(row.last_used_at),
        "revoked": row.revoked_at is not None, "revoked_at": iso(row.revoked_at),
    }


def issue_client(session: Session, name: object, *, admin: bool = False, ods_codes: Sequence[str] = (),
                 actor: Actor | None = None) -> tuple[ApiClient, str]:
    """Create a client; return it and its new token (shown once; only its hash is stored). Audited when
    ``actor`` says who asked."""
    checked = client_name(name)
    if admin and ods_codes:
        raise InvalidIdentifier.single("ods_codes", "exclusive", "an admin token is not bound to ODS codes")
    if not admin and not ods_codes:
        raise InvalidIdentifier.single("ods", "required", "a non-admin token must be bound to at least one ODS code")
    codes = [formats.ods_code(code, "ods") for code in ods_codes]
    if _live_by_name(session, checked) is not None:
        raise Conflict(f"a live API client named {checked!r} already exists (revoke it first, or pick another name)")
    token = "sds_" + secrets.token_urlsafe(32)
    client = ApiClient(name=checked, token_hash=hash_token(token), admin=admin)
    client.ods_rows = [ApiClientOds(ods_code=code) for code in dict.fromkeys(codes)]
    session.add(client)
    flush(session, f"API client {checked!r}")
    if actor is not None:
        add_audit(session, actor, "create", RECORD_TYPE, str(client.id), None, client_dict(client))
    return client, token


def create_client(session: Session, name: str, *, admin: bool = False, ods_codes: tuple[str, ...] = (),
                  actor: Actor | None = None) -> str:
    """Create a client and return its new token (shown once; only its hash is stored)."""
    return issue_client(session, name, admin=admin, ods_codes=ods_codes, actor=actor)[1]


def _live_by_name(session: Session, name: str) -> ApiClient | None:
    return session.scalar(select(ApiClient).where(ApiClient.name == name, ApiClient.revoked_at.is_(None)))


def get_client(session: Session, client_id: int) -> ApiClient:
    client = session.get(ApiClient, client_id)
    if client is None:
        raise NotFound(f"no API client with id {client_id}")
    return client


def find_client(session: Session, name_or_id: str) -> ApiClient:
    """The live client of that name; else, for digits, the client of that id (live or not)."""
    client = _live_by_name(session, name_or_id)
    if client is None and name_or_id.isdigit():
        client = session.get(ApiClient, int(name_or_id))
    if client is None:
        raise NotFound(f"no live API client named {name_or_id!r}" + (" and no client with that id"
                                                                    if name_or_id.isdigit() else ""))
    return client


def list_clients(session: Session, *, live_only: bool = False, limit: int | None = None,
                 after_id: int | None = None) -> list[ApiClient]:
    """Clients in id order (revoked ones too unless ``live_only``), from ``after_id`` (exclusive)."""
    query = select(ApiClient).order_by(ApiClient.id)
    if live_only:
        query = query.where(ApiClient.revoked_at.is_(None))
    if after_id is not None:
        query = query.where(ApiClient.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def revoke_client(session: Session, client: ApiClient, actor: Actor) -> ApiClient:
    """Revoke ``client``: its token is refused from the next request on. The row stays (the audit names it)."""
    if client.revoked_at is not None:
        raise Conflict(f"API client {client.name!r} (id {client.id}) is already revoked")
    before = client_dict(client)
    client.revoked_at = utcnow()
    flush(session, f"API client {client.name!r}")
    add_audit(session, actor, "revoke", RECORD_TYPE, str(client.id), before, client_dict(client))
    return client
