"""Bearer-token authentication for /api writes (reads are anonymous, as SDS lookups are)."""

from __future__ import annotations

from flask import request

from sds_registry.errors import Unauthorized
from sds_registry.services.clients import actor_for_token
from sds_registry.services.writes import Actor
from sds_registry.web import context


def authenticate() -> Actor:
    """The Actor behind ``Authorization: Bearer <token>``; Unauthorized when missing or unknown."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("writes need 'Authorization: Bearer <token>' (create one with 'sds token create')")
    actor = actor_for_token(context.session(), token.strip())
    if actor is None:
        raise Unauthorized("the bearer token is unknown or revoked")
    return actor


def require_admin() -> Actor:
    from sds_registry.errors import Forbidden

    actor = authenticate()
    if not actor.admin:
        raise Forbidden("this resource needs an admin token")
    return actor
