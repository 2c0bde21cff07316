"""LDAP filter values never reach SQL unbound: fuzzed filters (every RFC 4515 special character, \\xx escapes,
NUL, UTF-8, huge values) through the real LDAP server, with the SQL it runs captured, and the answers checked.

The directory runs its plans on raw DBAPI connections (no SQLAlchemy execution, so ``before_cursor_execute``
never sees them). The capture is therefore one level lower, in the DBAPI driver itself: the engine the
directory uses is made with a cursor class that records every statement and its parameters (sqlite3's
``factory`` connection argument, psycopg's ``cursor_factory``) and then runs it unchanged. Each value carries
a marker; the marker must never appear in a statement's text, and must appear in its parameters.

The answers are checked for every value in the domain the SQL matching agrees with the LDAP matching rules
on: ASCII values without insignificant spaces. Two known gaps are left out of that check (the binding check
covers them): caseIgnore folding of non-ASCII letters (Python folds the assertion value, SQLite's lower()
folds ASCII only, so a stored 'À' is not found by searching 'À'), and RFC 4518 insignificant-space handling
of the stored value (only the assertion value is prepared).
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import ldap3
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.config import Settings
from sds_registry.db import make_engine
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.evaluate import prep
from sds_registry.models import AccreditedSystem
from tests.support.ldap import RunningServer, base_settings, running_server

MARKER = "Qz9Kx"
SPECIALS = "*()\\\x00 \t'\";%_[]?-=<>~&|!$"
BASE = "ou=services,o=nhs"
PLANTED, DECOY = "918000000001", "918000000002"


class Statements:
    """What the driver was asked to run: (SQL text, parameters), from every connection of the engine."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, Any]] = []

    def add(self, sql: Any, params: Any) -> None:
        with self.lock:
            self.seen.append((str(sql), params))

    def take(self) -> list[tuple[str, Any]]:
        with self.lock:
            out, self.seen = self.seen, []
        return out


STATEMENTS = Statements()


class _SqliteCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        STATEMENTS.add(sql, parameters)
        return super().execute(sql, parameters)


class _SqliteConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _SqliteCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)


class _PgCursor(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        STATEMENTS.add(query, params)
        return super().execute(query, params, **kwargs)


@pytest.fixture
def watched_server(db: Engine, database_url: str) -> Iterator[RunningServer]:
    """The LDAP server in this process on an engine whose driver records every statement."""
    if database_url.startswith("sqlite"):
        args: dict[str, Any] = {"check_same_thread": False, "factory": _SqliteConnection}
    else:
        args = {"cursor_factory": _PgCursor}
    engine = make_engine(database_url, connect_args=args)
    directory = Directory(engine, Settings())
    try:
        with running_server(base_settings(), directory) as server:
            yield server
    finally:
        directory.close()
        engine.dispose()


def _escape(value: str, rng: random.Random) -> str:
    """RFC 4515 assertion value: the specials always as \\xx, other characters sometimes (either hex case)."""
    out = []
    for char in value:
        if char in "*()\\\x00" or rng.random() < 0.2:
            hexes = "".join(f"\\{b:02x}" for b in char.encode("utf-8"))
            out.append(hexes.upper() if rng.random() < 0.5 else hexes)
        else:
            out.append(char)
    return "".join(out)


values = st.builds(
    lambda text, repeat: MARKER + text * repeat,
    st.text(st.one_of(st.sampled_from(SPECIALS), st.characters(codec="utf-8", exclude_categories=("Cs",))),
            max_size=30),
    st.sampled_from([1, 1, 1, 2, 500]),  # now and then a value of several kilobytes
)


def _plant(engine: Engine, value: str, store: bool) -> None:
    with Session(engine) as s:
        s.execute(delete(AccreditedSystem))
        rows = [AccreditedSystem(asid=DECOY, ods_code="B82617", party_key="B82617-1",
                                 description="x" + (value if store else value.replace("\x00", "")))]
        if store:
            rows.append(AccreditedSystem(asid=PLANTED, ods_code="B82617", party_key="B82617-2", description=value))
        s.add_all(rows)
        s.commit()


def _search(conn: ldap3.Connection, flt: str) -> set[str]:
    conn.search(BASE, flt, attributes=["uniqueIdentifier"])
    assert conn.result["result"] == 0, (flt[:200], conn.result)
    return {str(e.entry_dn).split(",")[0].split("=")[1] for e in conn.entries}


def _bound(statements: list[tuple[str, Any]]) -> bool:
    """No statement's text holds the marker; at least one statement carries it as a parameter."""
    for sql, _ in statements:
        assert MARKER.lower() not in sql.lower(), f"a filter value is in the SQL text: {sql[:300]}"
    return any(MARKER.lower() in repr(params).lower() for _, params in statements)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values, seed=st.integers(0, 2**32 - 1), cut=st.integers(1, 1000))
@example(value=MARKER + "\x00", seed=0, cut=1)  # on PostgreSQL this was LDAP 80 'internal server error'
@example(value=MARKER + "*()\\ a'; DROP TABLE accredited_systems; --", seed=1, cut=3)
@example(value=MARKER + "é(*)" * 3000, seed=2, cut=7)
def test_filter_values_are_bound_parameters_and_answers_stay_right(
        watched_server: RunningServer, db: Engine, database_url: str, value: str, seed: int, cut: int) -> None:
    rng = random.Random(seed)
    # PostgreSQL text cannot hold NUL: such a value is searched for but not stored (it must match nothing).
    store = "\x00" not in value or database_url.startswith("sqlite")
    _plant(db, value, store)
    esc = _escape(value, rng)
    at = 1 + cut % max(1, len(value) - 1)
    head, tail = _escape(value[:at], rng), _escape(value[at:], rng)
    expected = {PLANTED} if store else set()
    checked = value.isascii() and prep(value) == value  # see the module docstring
    conn = ldap3.Connection(ldap3.Server(watched_server.host, port=watched_server.port), auto_bind=True,
                            auto_escape=False)
    try:
        STATEMENTS.take()
        why = f"value {value[:200]!r} escaped {esc[:300]!r}"
        answers = [
            (_search(conn, f"(&(objectClass=nhsAs)(description={esc}))") == expected, why),
            (_search(conn, f"(|(uniqueIdentifier={esc})(nhsIDCode={esc})(nhsMhsSvcIA={esc})"
                           f"(description={esc}))") == expected, why),
            (_search(conn, f"(description:caseExactMatch:={esc})") == expected, why),
            (expected <= _search(conn, f"(description={head}*{tail})"), (why, head, tail)),
            (expected <= _search(conn, f"(description=*{head}*)"), (why, head)),
            (PLANTED not in _search(conn, f"(&(objectClass=nhsAs)(!(description={esc})))"), why),
            (DECOY in _search(conn, f"(&(objectClass=nhsAs)(!(description={esc})))"), why),
        ]
        for right, message in answers:
            assert right or not checked, message
        _search(conn, f"(description>={esc})")
        _search(conn, f"(description<={esc})")
        _search(conn, f"(description~={esc})")
        statements = STATEMENTS.take()
    finally:
        conn.unbind()
    assert statements, "the searches ran no SQL on the watched engine"
    # A NUL value on PostgreSQL is answered without asking the database (no stored text can hold NUL).
    assert _bound(statements) or not store, "the marker reached the database in no parameter"
