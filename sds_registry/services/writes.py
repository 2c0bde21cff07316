"""What every registry write shares: the Actor, the audit row, flush, version check, merge and apply.

Takes a Session and never commits: the view or CLI command owns the transaction. No aggregate's own
rules live here (those are in organisations.py, accredited_systems.py, mhs.py, agreements.py).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from sds_registry.db import utcnow
from sds_registry.errors import Conflict, Forbidden, InvalidIdentifier, StaleVersion
from sds_registry.models import AccreditedSystem, AuditEvent, MessageHandlingSystem

RNG = random.SystemRandom()


@dataclass(frozen=True)
class Actor:
    """Who writes: an API client (admin, or bound to ODS codes) or a CLI command (admin)."""

    name: str
    admin: bool = False
    ods_codes: frozenset[str] = field(default_factory=frozenset)

    def check_may_write(self, *ods_codes: str | None) -> None:
        if self.admin:
            return
        for code in ods_codes:
            if code is not None and code not in self.ods_codes:
                raise Forbidden(f"client {self.name!r} may not write records of organisation {code!r}")


CLI_ACTOR = Actor("cli", admin=True)


def add_audit(session: Session, actor: Actor, action: str, record_type: str, key: str,
              before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> None:
    session.add(AuditEvent(
        actor=actor.name, action=action, record_type=record_type, record_key=key,
        before=json.dumps(before, sort_keys=True, default=str) if before is not None else None,
        after=json.dumps(after, sort_keys=True, default=str) if after is not None else None,
    ))


def flush(session: Session, what: str) -> None:
    """Flush, turning a uniqueness violation or a concurrent update into our own errors."""
    try:
        session.flush()
    except StaleDataError:
        raise StaleVersion(f"{what} was changed by another request; fetch it again") from None
    except IntegrityError as exc:
        raise Conflict(f"{what} conflicts with an existing record: {exc.orig}") from None


def check_version(row: Any, expected: int | None, what: str) -> None:
    if expected is not None and row.version != expected:
        raise StaleVersion(f"{what} is at version {row.version}, not {expected}")


def apply(row: Any, values: Mapping[str, Any], scalars: tuple[str, ...], lists: tuple[str, ...],
          flags: list[str], replace: bool) -> None:
    clear_changed_lists(row, {n: values[n] if n in values else [] for n in lists if n in values or replace})
    for name in scalars:
        if name in values:
            setattr(row, name, values[name])
        elif replace:
            setattr(row, name, None)
    for name in lists:
        if name in values:
            setattr(row, name, list(values[name] or []))
        elif replace:
            setattr(row, name, [])
    row.flags = " ".join(flags) or None
    touch(row)


def clear_changed_lists(row: Any, lists: Mapping[str, Any]) -> None:
    """Empty, and flush, each stored multi-valued field of ``row`` that ``lists`` (name -> new values) changes.

    Child rows are keyed by (parent, position): replacing a collection in one flush turns an old child and the
    new one at the same position into an UPDATE, so a value that moves up a place (``[A, B, C]`` -> ``[A, C]``)
    meets its old row under the (parent, value) unique constraint before that row goes. Deleting the changed
    collections first makes it deletes, then inserts. Only the child tables are written by this flush."""
    session = object_session(row)
    if session is None or row.id is None:
        return
    cleared = False
    for name, new in lists.items():
        current = list(getattr(row, name))
        if current and current != list(new or []):
            setattr(row, name, [])
            cleared = True
    if cleared:
        session.flush()


def touch(row: Any) -> None:
    """Mark ``row`` updated now. ``updated_at`` has second precision, so it is flagged as modified: the
    UPDATE (and with it the version, the ETag) happens even when only child rows changed within one second."""
    row.updated_at = utcnow()
    flag_modified(row, "updated_at")


def merge(current: Mapping[str, Any], names: tuple[str, ...], data: Mapping[str, Any], *, partial: bool,
          pinned: Mapping[str, Any]) -> dict[str, Any]:
    """The record an update asks for: PATCH keeps stored values the body leaves out, PUT replaces them all; the
    key stays pinned; None means unset."""
    base = {k: current[k] for k in names} if partial else {}
    return {k: v for k, v in {**base, **data, **pinned}.items() if v is not None}


def immutable(data: Mapping[str, Any], name: str, current: str) -> None:
    if name in data and data[name] != current:
        raise InvalidIdentifier.single(name, "immutable", f"{name} cannot change (it is {current!r})")


def service_namespace_free(session: Session, identifier: str, *, exclude_as: int | None = None,
                           exclude_mhs: int | None = None) -> None:
    """ASIDs and MHS unique identifiers share ou=Services (both are uniqueIdentifier=<x>): keep them distinct."""
    lower = identifier.lower()
    as_match = func.lower(AccreditedSystem.asid) == lower
    with session.no_autoflush:
        as_row = session.scalar(select(AccreditedSystem.id).where(as_match))
        mhs_row = session.scalar(
            select(MessageHandlingSystem.id).where(func.lower(MessageHandlingSystem.unique_identifier) == lower)
        )
    if (as_row is not None and as_row != exclude_as) or (mhs_row is not None and mhs_row != exclude_mhs):
        raise Conflict(f"uniqueIdentifier={identifier},ou=Services,o=nhs already exists")


def delete(session: Session, row: Any, key: str, expected_version: int | None, actor: Actor, record_type: str,
           render: Callable[[Any], dict[str, Any]]) -> None:
    """Delete one versioned record the actor may write, auditing what it was."""
    what = f"{record_type.replace('_', ' ')} {key!r}"
    actor.check_may_write(row.ods_code)
    check_version(row, expected_version, what)
    before = render(row)
    session.delete(row)
    flush(session, what)
    add_audit(session, actor, "delete", record_type, key, before, None)
