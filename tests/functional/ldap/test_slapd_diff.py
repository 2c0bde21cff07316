"""Differential test: bench/ldapkit's searches through our Directory and through a real slapd, same data.

The data comes from bench.ldapkit.data and goes into slapd with slapadd and into the registry with
import_ldif. Each search's result code, DNs and attribute values must agree, compared as
bench.ldapkit.diff compares (DNs and attribute names case-insensitively, values as sets; "count" searches
by code and count only). The comparison is shown able to fail: slapds broken on purpose (caseIgnore rules
everywhere, one entry missing) must differ from the reference. Runs on both database backends. Needs
slapd, ldapsearch and ldap3.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bench.ldapkit import data, diff, searches, slapd
from bench.ldapkit.searches import Search
from sds_registry.config import Settings
from sds_registry.db import make_sessionmaker
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.ldif import import_ldif
from tests.functional.ldap import slapd_support as support

pytestmark = pytest.mark.skipif(not support.available(), reason="slapd or ldapsearch is not installed")

PRACTICES = 60

#: Searches beyond the kit's set: edge cases where slapd's behaviour is worth pinning down.
EXTRA: list[dict[str, Any]] = [
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(objectClass=top)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(!(objectClass=noSuchClass))", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(objectClass=noSuchClass)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(!(nhsMHSIsAuthenticated=*one*))", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(uniqueIdentifier=0*)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(!(uniqueIdentifier=0*))", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsMHSRetries=0)", "attrs": ["nhsMHSRetries"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsProductName~=damson gp)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsProductName=  Damson   gp )", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsIDCode:caseIgnoreMatch:=z99999)", "attrs": ["1.1"]},
    {"base": "ou=Services,o=nhs", "scope": "sub", "filter": "(nhsMhsFQDN=*birch*)", "attrs": ["1.1"]},
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


def _extra(i: int, spec: dict[str, Any]) -> Search:
    return Search(f"x{i:02d}", spec["base"], spec["scope"], spec["filter"], tuple(spec["attrs"]),
                  spec.get("sizelimit", 0), spec.get("compare", "full"), "extra")  # fmt: skip


def _answers(url: str, wanted: list[Search]) -> dict[str, diff.Answer]:
    import ldap3

    conn = ldap3.Connection(ldap3.Server(url, get_info=ldap3.NONE), auto_bind=True, read_only=True,
                            raise_exceptions=False, check_names=False)  # fmt: skip
    try:
        return {s.id: diff.ldap3_answer(conn, s) for s in wanted}
    finally:
        conn.unbind()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    pytest.importorskip("ldap3")
    root = tmp_path_factory.mktemp("slapd_diff")
    records = data.generate(PRACTICES)
    ldif, _ = data.write(records, root / "data")
    wanted = searches.build(records) + [_extra(i, spec) for i, spec in enumerate(EXTRA)]
    with slapd.running(ldif, root / "slapd") as url:
        expected = _answers(url, wanted)
    yield {"ldif": ldif, "records": records, "searches": wanted, "expected": expected}


def _differing(bench: dict[str, Any], got: dict[str, diff.Answer]) -> list[tuple[str, str, str, list[str]]]:
    out = []
    for s in bench["searches"]:
        lines = diff.differences(bench["expected"][s.id], got[s.id], s.compare == "count")
        if lines:
            out.append((s.id, s.why, s.filter, lines))
    return out


def test_directory_answers_as_slapd(bench: dict[str, Any], db: Engine) -> None:
    with make_sessionmaker(db)() as session:
        report = import_ldif(session, bench["ldif"])
        assert report.ok, report.lines()[:10]
        session.commit()
    directory = Directory(db, Settings(database_url=str(db.url)))
    try:
        got = {s.id: support.directory_answer(directory, s) for s in bench["searches"]}
    finally:
        directory.close()
    differences = _differing(bench, got)
    assert differences == [], "\n".join(map(str, differences[:20])) + f"\n{len(differences)} different"


def _entry_number(bench: dict[str, Any], ods: str) -> int:
    """1-based position in the LDIF of the practice's nhsAs entry (2 root entries come first)."""
    kinds = [(r.kind, r.first("nhsIDCode")) for r in bench["records"]]
    return 3 + kinds.index(("as", ods))


@pytest.mark.parametrize("broken", ["case_ignore", "drop_entry"])
def test_comparison_sees_a_broken_slapd(bench: dict[str, Any], tmp_path: Path, broken: str) -> None:
    """caseIgnore everywhere: lower-case ODS codes and upper-case interactions match. A practice's AS entry
    missing: the GP Connect step 2 lookup for it comes back empty."""
    step2 = next(s for s in bench["searches"] if s.why.startswith("GP Connect step 2"))
    ods = re.search(r"nhsidcode=(\w+)", step2.filter)
    assert ods is not None
    options = {"case_ignore": True} if broken == "case_ignore" else {"drop_entry": _entry_number(bench, ods[1])}
    with slapd.running(bench["ldif"], tmp_path / "broken", **options) as url:
        differences = _differing(bench, _answers(url, bench["searches"]))
    whys = {why for _, why, _, _ in differences}
    if broken == "case_ignore":
        assert any("(caseExact: none)" in why for why in whys), differences[:5]
    else:
        assert step2.id in {sid for sid, _, _, _ in differences}, differences[:5]


def test_a_second_slapd_answers_the_same(bench: dict[str, Any], tmp_path: Path) -> None:
    """No false alarms: an intact second slapd gives no differences, over the wire with ldapsearch too."""
    with slapd.running(bench["ldif"], tmp_path / "ref") as a, slapd.running(bench["ldif"], tmp_path / "b") as b:
        assert diff.compare(a, b, bench["searches"]) == []
