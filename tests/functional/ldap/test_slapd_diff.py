"""Differential test: gen_filters.py's searches through our Directory and through a real slapd, same data.

The data comes from the bench kit (gen_data.py), goes into slapd with slapadd and into the registry with
import_ldif. Each search's result code, DNs and attribute values must agree (as ldap_diff.py compares:
DNs and attribute names case-insensitively, values as sets; "count" searches by code and count only).
Runs on both database backends. Needs /usr/sbin/slapd and ldap3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from sds_registry.config import Settings
from sds_registry.db import make_sessionmaker
from sds_registry.ldap import ast
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.filterstr import parse_filter
from sds_registry.ldap.ldif import import_ldif
from tests.functional.ldap import slapd_support as support

pytestmark = pytest.mark.skipif(not support.available(), reason="slapd or the bench kit is not installed")

PRACTICES = 60
SCOPES = {"base": ast.Scope.BASE, "one": ast.Scope.ONE, "sub": ast.Scope.SUB}

#: Searches beyond gen_filters.py: edge cases where slapd's behaviour is worth pinning down.
EXTRA: list[dict[str, Any]] = [
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(objectClass=top)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(!(objectClass=noSuchClass))", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(objectClass=noSuchClass)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(!(nhsMHSIsAuthenticated=*one*))", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(uniqueIdentifier=0*)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(!(uniqueIdentifier=0*))", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsMHSRetries=0)", "attrs": ["nhsMHSRetries"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsProductName~=provider4 gp)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsProductName=  Provider4   GP )", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsIDCode:caseIgnoreMatch:=z99999)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsMhsFQDN=*provider2*)", "attrs": ["1.1"]},
    {
        "base": "ou=Services,o=nhs",
        "scope": "sub",
        "filter": "(|(nhsDateRequested<=2018)(!(nhsAsClient=*)))",
        "attrs": ["1.1"],
    },
    {"base": "o=nhs", "scope": "one", "filter": "(ou=services)", "attrs": ["*"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(o=NHS)", "attrs": []},
    {"base": "cn=nobody,ou=Services,o=nhs", "scope": "base", "filter": "(objectClass=*)", "attrs": []},
    {"base": "ou=Organisations,o=nhs", "scope": "sub", "filter": "(objectClass=*)", "attrs": []},
    {"base": "noSuchAttr=x,o=nhs", "scope": "base", "filter": "(objectClass=*)", "attrs": []},
    {"base": "o=nhs", "scope": "sub", "filter": "(createTimestamp=*)", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(hasSubordinates=TRUE)", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(!(hasSubordinates=FALSE))", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(structuralObjectClass=nhsAs)", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(objectClass=2.5.6.5)", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(name=nhs)", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(o:dn:=nhs)", "attrs": ["1.1"]},
    {
        "base": "o=nhs",
        "scope": "sub",
        "filter": "(ou:dn:=Services)",
        "attrs": ["1.1"],
        "sizelimit": 7,
        "compare": "count",
    },
    {"base": "o=nhs", "scope": "sub", "filter": "(entryDN=ou=services,o=NHS)", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(nhsMHSRetries>=0)", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(!(nhsMHSRetries<=0))", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(nhsIDCode:caseExactMatch:=ZZZ)", "attrs": ["1.1"]},
    {"base": "o=nhs", "scope": "sub", "filter": "(!(nhsIDCode:1.2.3:=ZZZ))", "attrs": ["1.1"]},
    {
        "base": "o=nhs",
        "scope": "sub",
        "filter": "(!(nhsIDCode~=zzz))",
        "attrs": ["1.1"],
        "sizelimit": 3,
        "compare": "count",
    },
    {"base": "o=nhs", "scope": "base", "filter": "(objectClass=*)", "attrs": ["hasSubordinates", "entryDN"]},
    {"base": "", "scope": "base", "filter": "(objectClass=*)", "attrs": ["namingContexts", "supportedLDAPVersion"]},
    {"base": "", "scope": "one", "filter": "(objectClass=*)", "attrs": ["1.1"]},
    {"base": "cn=Subschema", "scope": "base", "filter": "(objectClass=subschema)", "attrs": ["1.1"]},
    {
        "base": "ou=Services,o=nhs",
        "scope": "sub",
        "filter": "(&(objectClass=nhsAs)(nhsDateApproved>=2023))",
        "attrs": ["nhsDateApproved"],
        "sizelimit": 3,
        "compare": "count",
    },
]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ldap3 = pytest.importorskip("ldap3")
    root = tmp_path_factory.mktemp("slapd_diff")
    support.gen_data(root / "data", PRACTICES)
    support.gen_filters(root / "data" / "sds.jsonl", root / "filters.jsonl")
    searches = [json.loads(x) for x in (root / "filters.jsonl").read_text().splitlines() if x.strip()]
    searches += [dict(s, id=f"x{i:02d}", why="extra") for i, s in enumerate(EXTRA)]
    with support.slapd(root / "data" / "sds.ldif", root / "slapd") as url:
        conn = ldap3.Connection(
            ldap3.Server(url, get_info=ldap3.NONE),
            auto_bind=True,
            read_only=True,
            raise_exceptions=False,
            check_names=False,
        )
        expected = {s["id"]: support.slapd_search(conn, s) for s in searches}
        conn.unbind()
    yield {"ldif": root / "data" / "sds.ldif", "searches": searches, "expected": expected}


def _ours(directory: Directory, s: dict[str, Any]) -> tuple[int, list[tuple[str, dict[str, list[str]]]]]:
    req = ast.SearchRequest(
        s["base"],
        SCOPES[s["scope"]],
        ast.DerefAliases.NEVER,
        s.get("sizelimit") or 0,
        0,
        False,
        parse_filter(s["filter"]),
        tuple(s["attrs"]),
    )
    entries, result = directory.search(req, s.get("sizelimit") or 0, 0)
    return result.code, [(e.dn, dict(e.attributes)) for e in entries]


def test_directory_answers_as_slapd(bench: dict[str, Any], db: Engine) -> None:
    with make_sessionmaker(db)() as session:
        report = import_ldif(session, bench["ldif"])
        assert report.ok, report.lines()[:10]
        session.commit()
    directory = Directory(db, Settings(database_url=str(db.url)))
    differences = []
    try:
        for s in bench["searches"]:
            want_code, want = bench["expected"][s["id"]]
            got_code, got = _ours(directory, s)
            if s.get("compare") == "count":
                same = (want_code, len(want)) == (got_code, len(got))
            else:
                same = want_code == got_code and support.normalise(want) == support.normalise(got)
            if not same:
                differences.append(
                    (
                        s["id"],
                        s["why"],
                        s["base"],
                        s["scope"],
                        s["filter"],
                        s["attrs"],
                        (want_code, len(want)),
                        (got_code, len(got)),
                    )
                )
    finally:
        directory.close()
    assert differences == [], "\n".join(map(str, differences[:20])) + f"\n{len(differences)} different"
