"""The registration pages (/register): a holder of an API token enters it once per browser session (its hash is
kept in the signed session cookie, never the token), then registers a provider or a consumer through the same
services as /api/providers and /api/consumers; each broken rule is shown beside its field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import redirect, session, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from sds_registry.db import begin_write
from sds_registry.errors import Conflict, Forbidden, InvalidIdentifier
from sds_registry.services import registration
from sds_registry.services.clients import actor_for_token_hash, hash_token
from sds_registry.services.writes import Actor
from sds_registry.web import context
from sds_registry.web.api import schemas
from sds_registry.web.pages import bp
from sds_registry.web.pages.common import page
from sds_registry.web.pages.forms import ConsumerForm, ProviderForm, SignOutForm, TokenForm, place_issues

_TOKEN_KEY = "token_sha256"


def _actor() -> Actor | None:
    """The holder of the session's token; None (and the session forgotten) when there is none or it was revoked."""
    token_hash = session.get(_TOKEN_KEY)
    if not isinstance(token_hash, str):
        return None
    actor = actor_for_token_hash(context.session(), token_hash)
    if actor is None:
        session.pop(_TOKEN_KEY, None)
    return actor


@bp.route("/register", methods=["GET", "POST"])
def register() -> Response:
    actor = _actor()
    form = TokenForm()
    if actor is None and form.validate_on_submit():
        token = (form.token.data or "").strip()
        actor = actor_for_token_hash(context.session(), hash_token(token))
        if actor is None:
            form.token.errors = ["this token is unknown or revoked (sds token list shows the live ones)"]
        else:
            context.session().commit()  # last_used_at
            session.clear()
            session[_TOKEN_KEY] = hash_token(token)
            return redirect(url_for("pages.register"), 303)  # type: ignore[return-value]
    status = 400 if form.errors else 200
    return page("register.html", status, title="Register", actor=actor, form=form, sign_out=SignOutForm())


@bp.post("/register/sign-out")
def sign_out() -> Response:
    if SignOutForm().validate_on_submit():
        session.clear()
    return redirect(url_for("pages.register"), 303)  # type: ignore[return-value]


def _registration_page(form: Any, kind: str, write: Callable[[Session, dict[str, Any], Actor], Any]) -> Response:
    actor = _actor()
    if actor is None:
        return redirect(url_for("pages.register"), 303)  # type: ignore[return-value]
    problems: list[str] = []
    if form.validate_on_submit():
        body = form.registration()
        db = context.session()
        db.rollback()  # end the read that found the actor: the write transaction starts afresh (SQLite: locked)
        begin_write(db)
        try:
            write_actor = _actor()  # again, inside the write transaction
            if write_actor is None:
                raise Forbidden("the session's token was revoked; enter a live one")
            result = write(db, schemas.load(
                schemas.ProviderRegistrationSchema if kind == "provider" else schemas.ConsumerRegistrationSchema,
                body), write_actor)
            db.commit()
        except InvalidIdentifier as exc:
            db.rollback()
            problems = place_issues(form, exc.issues)
        except (Conflict, Forbidden) as exc:
            db.rollback()
            form.ods_code.errors = [*form.ods_code.errors, str(exc)]
        except BaseException:
            db.rollback()
            raise
        else:
            return page("registered.html", 201, title="Registered", kind=kind, result=result)
    elif form.is_submitted() and form.csrf_token.errors:
        problems = ["the form's CSRF token is missing or expired (rule: csrf): nothing was stored; send it again"]
    status = 422 if (form.errors or problems) else 200
    return page("register_form.html", status, title=f"Register a {kind}", kind=kind, form=form, actor=actor,
                problems=problems)


@bp.route("/register/provider", methods=["GET", "POST"])
def register_provider() -> Response:
    return _registration_page(ProviderForm(), "provider", registration.register_provider)


@bp.route("/register/consumer", methods=["GET", "POST"])
def register_consumer() -> Response:
    return _registration_page(ConsumerForm(), "consumer", registration.register_consumer_system)
