"""API clients: bearer tokens (stored as sha256 hex), each bound to ODS codes or admin. Takes a Session."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.domain import formats
from sds_registry.errors import Conflict, InvalidIdentifier
from sds_registry.models import ApiClient, ApiClientOds
from sds_registry.services.writes import Actor


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def actor_for_token(session: Session, token: str) -> Actor | None:
    """The Actor a bearer token stands for, or None when the token is unknown or revoked."""
    client = session.scalar(select(ApiClient).where(ApiClient.token_hash == hash_token(token)))
    if client is None or client.revoked:
        return None
    return Actor(name=client.name, admin=client.admin, ods_codes=client.ods_codes)


def create_client(session: Session, name: str, *, admin: bool = False, ods_codes: tuple[str, ...] = ()) -> str:
    """Create a client and return its new token (shown once; only its hash is stored)."""
    if not admin and not ods_codes:
        raise InvalidIdentifier.single("ods", "required", "a non-admin token must be bound to at least one ODS code")
    codes = [formats.ods_code(code, "ods") for code in ods_codes]
    if session.scalar(select(ApiClient.id).where(ApiClient.name == name)) is not None:
        raise Conflict(f"an API client named {name!r} already exists")
    token = "sds_" + secrets.token_urlsafe(32)
    client = ApiClient(name=name, token_hash=hash_token(token), admin=admin)
    client.ods_rows = [ApiClientOds(ods_code=code) for code in dict.fromkeys(codes)]
    session.add(client)
    session.flush()
    return token
