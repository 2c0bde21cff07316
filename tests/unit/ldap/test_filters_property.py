"""Property test: the SQL translation of random filters selects exactly the entries the reference
evaluator (evaluate.py, written from RFC 4511/4515/4517) accepts, on SQLite and on PostgreSQL.

The data is a fixed set of rows inserted with Core, with values chosen to stress the translation:
mixed case, LIKE/GLOB metacharacters (% _ * ? [ ] \\), absent optional attributes, several values in
child tables. Filters are drawn over every attribute (also unknown ones, any case of names) with values
taken from the data, case-flipped, cut into substrings, or random.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from sds_registry.config import Settings
from sds_registry.ldap import ast, dit, evaluate
from sds_registry.ldap.directory import Directory

ALPHABET = "aAbB%_*?[]\\ 0-"
BASES = ("ou=Services,o=nhs", "ou=Organisations,o=nhs")
KEY_ATTRS = ["uniqueIdentifier", "nhsIDCode", "nhsMHSPartyKey", "nhsMhsCPAId"]
KEYED: dict[str, list[tuple[str, str]]] = {}  # base -> (key attribute, value) in the loaded data (fixture)
ATTRS = sorted({f.attr for c in dit.SERVICE_CLASSES for f in c.fields}) + [
    "objectClass",
    "structuralObjectClass",
    "hasSubordinates",
    "entryDN",
    "createTimestamp",
    "noSuchAttribute",
    "o",
    "ou",
    "name",
    "description",
    "postalCode",
    "nhsOrgType",
]


def _word(rng: random.Random, n: int = 5) -> str:
    text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, n + 1)))
    return " ".join(text.split()) or "a"


def _rows(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    as_rows, mhs_rows = [], []
    children: dict[str, list[dict[str, Any]]] = {}
    for i in range(1, 25):

        def opt() -> str | None:
            return _word(rng) if rng.random() < 0.7 else None

        as_rows.append(
            {
                "id": i,
                "asid": f"{i:03d}{_word(rng, 3)}",
                "ods_code": _word(rng),
                "party_key": _word(rng),
                "manufacturer_org": opt(),
                "product_name": opt(),
                "product_key": opt(),
                "date_approved": rng.choice([None, "2019", "2020", "2021a", "A"]),
                "date_requested": opt(),
                "description": opt(),
            }
        )
        for f in dit.AS.fields:
            if f.child is not None:
                values = sorted({_word(rng) for _ in range(rng.randrange(0, 4))})
                children.setdefault(f.child[0].__tablename__, []).extend(
                    {f.child[1]: i, "position": p, f.child[2]: v} for p, v in enumerate(values)
                )
        mhs_rows.append(
            {
                "id": i,
                "unique_identifier": f"m{i:02d}{_word(rng, 3)}",
                "cpa_id": f"c{i:02d}{_word(rng, 3)}",
                "ods_code": _word(rng),
                "party_key": _word(rng),
                "interaction_id": _word(rng),
                "fqdn": opt(),
                "retries": rng.choice([None, 0, 3, 12]),
                "is_authenticated": opt(),
                "date_approved": rng.choice([None, "2019", "2020b"]),
                "product_name": opt(),
            }
        )
        for f in dit.MHS.fields:
            if f.child is not None:
                values = sorted({_word(rng) for _ in range(rng.randrange(0, 3))})
                children.setdefault(f.child[0].__tablename__, []).extend(
                    {f.child[1]: i, "position": p, f.child[2]: v} for p, v in enumerate(values)
                )
    return as_rows, mhs_rows, children


@pytest.fixture
def loaded(db: Engine) -> Iterator[tuple[Directory, list[tuple[str, dict[str, list[str]]]], list[str]]]:
    rng = random.Random(4515)
    as_rows, mhs_rows, children = _rows(rng)
    tables = {t.name: t for t in dit.AS.model.metadata.sorted_tables}
    with db.begin() as conn:
        conn.execute(insert(tables["accredited_systems"]), as_rows)
        conn.execute(insert(tables["message_handling_systems"]), mhs_rows)
        for name, rows in children.items():
            if rows:
                conn.execute(insert(tables[name]), rows)
        # organisations are always validated: ODS codes upper case (the translator relies on it)
        orgs = [
            {
                "id": i,
                "ods_code": f"{''.join(rng.choice('AB0') for _ in range(3))}{i:02d}",
                "name": _word(rng),
                "org_type": "GP Practice",
                "postcode": rng.choice([None, "LS1", "ls1 a"]),
            }
            for i in range(1, 9)
        ]
        conn.execute(insert(tables["organisations"]), orgs)
    directory = Directory(db, Settings(database_url=str(db.url)))
    view = []
    for base in BASES:
        everything = ast.SearchRequest(
            base, ast.Scope.ONE, ast.DerefAliases.NEVER, 0, 0, False, ast.Present("objectClass"), ("*", "+")
        )
        entries, result = directory.search(everything, 0, 0)
        assert result.code == 0
        view += [(e.dn, dict(e.attributes)) for e in entries]
    assert len(view) == 56
    pool = sorted({v for _, attrs in view for vs in attrs.values() for v in vs if len(v) < 40})
    for base in BASES:
        KEYED[base] = sorted(
            {(a, v) for d, attrs in view if d.endswith(base) for a in KEY_ATTRS for v in attrs.get(a, [])}
        )
    try:
        yield directory, view, pool
    finally:
        directory.close()


@st.composite
def _value(draw: st.DrawFn, pool: list[str]) -> str:
    kind = draw(st.integers(0, 4))
    if kind == 3:
        return draw(st.text(alphabet=ALPHABET, min_size=1, max_size=4))
    if kind == 4:
        return draw(
            st.sampled_from(
                [
                    "nhsAs",
                    "NHSMHS",
                    "top",
                    "noSuchClass",
                    "TRUE",
                    "FALSE",
                    "true",
                    "uniqueIdentifier=001,ou=services, o=NHS",
                    "ou=Services,o=nhs",
                    "services",
                    "NHS",
                ]
            )
        )
    v = pool[draw(st.integers(0, len(pool) - 1))]
    return [v, v.swapcase(), v.upper()][kind]


@st.composite
def _attr(draw: st.DrawFn) -> str:
    a = ATTRS[draw(st.integers(0, len(ATTRS) - 1))]
    return [a, a.lower(), a.upper()][draw(st.integers(0, 2))]


@st.composite
def _part(draw: st.DrawFn, pool: list[str]) -> str:
    if draw(st.booleans()):
        return draw(st.text(alphabet=ALPHABET, min_size=1, max_size=3))
    v = draw(_value(pool))
    start = draw(st.integers(0, max(0, len(v) - 1)))
    return v[start : start + draw(st.integers(1, 4))]


@st.composite
def _leaf(draw: st.DrawFn, pool: list[str]) -> ast.Filter:
    kind = draw(st.integers(0, 10))
    attr, value = draw(_attr()), draw(_value(pool))
    if kind >= 7:  # the lookups that matter most: a key attribute with a value an entry holds, in any case
        pairs = KEYED[draw(st.sampled_from(BASES))]
        attr, v = pairs[draw(st.integers(0, len(pairs) - 1))]
        return ast.Equality(attr, [v, v.swapcase(), v.upper(), v.lower()][draw(st.integers(0, 3))])
    if kind == 0:
        return ast.Equality(attr, value)
    if kind == 1:
        return ast.Approx(attr, value)
    if kind == 2:
        return ast.Present(attr)
    if kind == 3:
        return ast.GreaterOrEqual(attr, value)
    if kind == 4:
        return ast.LessOrEqual(attr, value)
    if kind == 5:
        initial = draw(st.none() | _part(pool))
        any_ = tuple(draw(st.lists(_part(pool), max_size=2)))
        final = draw(st.none() | _part(pool))
        if initial is None and not any_ and final is None:
            final = "a"
        return ast.Substrings(attr, initial, any_, final)
    rule = draw(st.sampled_from([None, "caseExactMatch", "2.5.13.2", "caseIgnoreMatch", "1.2.3"]))
    return ast.Extensible(rule, draw(st.none() | _attr()), value, draw(st.booleans()))


def _filters(pool: list[str]) -> st.SearchStrategy[ast.Filter]:
    return st.recursive(
        _leaf(pool),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda xs: ast.And(tuple(xs))),
            st.lists(inner, max_size=3).map(lambda xs: ast.Or(tuple(xs))),
            inner.map(ast.Not),
        ),
        max_leaves=6,
    )


def test_translation_agrees_with_the_reference_evaluator(loaded: Any) -> None:
    directory, view, pool = loaded

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_filters(pool), st.integers(0, len(view) - 1))
    def check(f: ast.Filter, pick: int) -> None:
        got = []
        for base_dn in BASES:
            req = ast.SearchRequest(base_dn, ast.Scope.ONE, ast.DerefAliases.NEVER, 0, 0, False, f, ("1.1",))
            entries, result = directory.search(req, 0, 0)
            assert result.code == 0
            got += [e.dn for e in entries]
        got.sort()
        want = sorted(d for d, attrs in view if evaluate.evaluate(f, attrs, d) is True)
        assert got == want, f
        # the same filter on one entry read by its DN (base scope: the filter becomes a CASE column)
        entry_dn, attrs = view[pick]
        base = ast.SearchRequest(entry_dn.upper(), ast.Scope.BASE, ast.DerefAliases.NEVER, 0, 0, False, f, ("1.1",))
        entries, result = directory.search(base, 0, 0)
        assert result.code == 0
        assert [e.dn for e in entries] == ([entry_dn] if evaluate.evaluate(f, attrs, entry_dn) is True else []), f

    check()
