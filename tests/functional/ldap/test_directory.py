"""Directory.search/compare against the registry on both backends: DIT, scopes, limits, selection, consistency."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from sds_registry.config import Settings
from sds_registry.db import make_sessionmaker
from sds_registry.ldap import ast
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.filterstr import parse_filter
from sds_registry.services.mhs import delete_mhs, update_mhs
from sds_registry.services.organisations import create_organisation
from sds_registry.services.registration import register_consumer, register_provider
from sds_registry.services.writes import CLI_ACTOR

STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"
METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
ASID, PK = "012345678901", "A12345-1234567"


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    with make_sessionmaker(db)() as s:
        yield s


@pytest.fixture
def directory(db: Engine, session: Session) -> Iterator[Directory]:
    register_provider(
        session,
        {
            "ods_code": "A12345",
            "fqdn": "gpc.example.nhs.uk",
            "asid": ASID,
            "party_key": PK,
            "interactions": [STRUCTURED, METADATA],
        },
        CLI_ACTOR,
    )
    session.commit()
    d = Directory(db, Settings())
    yield d
    d.close()


def search(
    d: Directory,
    base: str,
    flt: str,
    attrs: tuple[str, ...] = (),
    scope: ast.Scope = ast.Scope.SUB,
    size: int = 0,
    types_only: bool = False,
    time_limit: float = 0,
) -> tuple[ast.Result, dict[str, dict[str, list[str]]]]:
    req = ast.SearchRequest(base, scope, ast.DerefAliases.NEVER, size, 0, types_only, parse_filter(flt), attrs)
    entries, result = d.search(req, size, time_limit)
    return result, {e.dn: dict(e.attributes) for e in entries}


def test_gp_connect_two_steps(directory: Directory) -> None:
    result, found = search(
        directory,
        "ou=services, o=nhs",
        f"(&(nhsidcode=A12345) (objectClass=nhsMhs) (nhsMhsSvcIA={STRUCTURED}))",
        ("nhsMhsEndPoint", "nhsMhsPartyKey"),
    )
    assert result.code == 0
    [(mhs_dn, attrs)] = found.items()
    # Named attributes come back under the client's spelling, in the client's order (GP Connect worked example).
    assert list(attrs.items()) == [
        ("nhsMhsEndPoint", ["https://gpc.example.nhs.uk/A12345/STU3/1/gpconnect/structured"]),
        ("nhsMhsPartyKey", [PK]),
    ]
    assert mhs_dn.startswith("uniqueIdentifier=") and mhs_dn.endswith(",ou=Services,o=nhs")
    result, found = search(
        directory,
        "ou=services, o=nhs",
        f"(&(nhsidcode=A12345) (objectclass=nhsAs) (nhsMHSPartyKey={PK.lower()}))",
        ("uniqueIdentifier",),
    )
    assert found == {f"uniqueIdentifier={ASID},ou=Services,o=nhs": {"uniqueIdentifier": [ASID]}}


def test_writes_are_visible_to_the_next_search(directory: Directory, session: Session) -> None:
    flt = f"(&(nhsIDCode=B81001)(objectClass=nhsMhs)(nhsMhsSvcIA={METADATA}))"
    assert search(directory, "ou=Services,o=nhs", flt)[1] == {}
    reg = register_provider(
        session, {"ods_code": "B81001", "fqdn": "b.example.nhs.uk", "interactions": [METADATA]}, CLI_ACTOR
    )
    session.commit()
    [(_, attrs)] = search(directory, "ou=Services,o=nhs", flt, ("nhsMHSEndPoint",))[1].items()
    assert attrs["nhsMHSEndPoint"] == ["https://b.example.nhs.uk/B81001/STU3/1/gpconnect"]
    mhs = reg.message_handling_systems[0]
    update_mhs(
        session,
        mhs.unique_identifier,
        {"endpoints": ["https://c.example.nhs.uk/B81001/STU3/1/gpconnect"]},
        mhs.version,
        CLI_ACTOR,
        partial=True,
    )
    session.commit()
    [(_, attrs)] = search(directory, "ou=Services,o=nhs", flt, ("nhsMHSEndPoint", "nhsMhsFQDN"))[1].items()
    assert attrs == {
        "nhsMHSEndPoint": ["https://c.example.nhs.uk/B81001/STU3/1/gpconnect"],
        "nhsMhsFQDN": ["c.example.nhs.uk"],
    }
    delete_mhs(session, mhs.unique_identifier, None, CLI_ACTOR)
    session.commit()
    assert search(directory, "ou=Services,o=nhs", flt)[1] == {}


def test_bases_and_scopes(directory: Directory) -> None:
    everything = search(directory, "o=nhs", "(objectClass=*)", ("1.1",))[1]
    assert len(everything) == 2 + 1 + 2  # o=nhs, ou=Services, the AS and its two MHS records
    assert list(search(directory, "O=NHS", "(objectClass=*)", scope=ast.Scope.BASE)[1].items()) == [
        ("o=nhs", {"objectClass": ["top", "organization"], "o": ["nhs"]})
    ]
    assert list(search(directory, "o=nhs", "(objectClass=*)", ("1.1",), ast.Scope.ONE)[1]) == ["ou=Services,o=nhs"]
    assert len(search(directory, "ou=Services,o=nhs", "(objectClass=*)", ("1.1",), ast.Scope.ONE)[1]) == 3
    leaf = f"uniqueIdentifier={ASID},ou=Services,o=nhs"
    assert search(directory, leaf, "(objectClass=*)", scope=ast.Scope.ONE) == (ast.Result(0), {})
    assert list(search(directory, leaf.upper(), "(objectClass=*)", ("1.1",), ast.Scope.BASE)[1]) == [leaf]
    assert search(directory, leaf, "(objectClass=nhsMhs)", scope=ast.Scope.BASE) == (ast.Result(0), {})
    result, _ = search(directory, "uniqueIdentifier=999,ou=Services,o=nhs", "(objectClass=*)")
    assert (result.code, result.matched_dn) == (32, "ou=Services,o=nhs")
    result, _ = search(directory, f"cn=x,{leaf}", "(objectClass=*)")
    assert (result.code, result.matched_dn) == (32, leaf)
    result, _ = search(directory, "ou=Organisations,o=nhs", "(objectClass=*)")
    assert (result.code, result.matched_dn) == (32, "o=nhs")  # no organisations registered yet
    assert search(directory, "o=elsewhere", "(objectClass=*)")[0].code == 32
    assert search(directory, "ou=Services,,o=nhs", "(objectClass=*)")[0].code == 34
    assert search(directory, "foo=bar,o=nhs", "(objectClass=*)")[0].code == 34


def test_size_and_time_limits(directory: Directory) -> None:
    result, found = search(directory, "ou=Services,o=nhs", "(nhsIDCode=A12345)", ("1.1",), size=2)
    assert (result.code, len(found)) == (4, 2)
    result, found = search(directory, "ou=Services,o=nhs", "(nhsIDCode=A12345)", ("1.1",), size=3)
    assert (result.code, len(found)) == (0, 3)
    result, found = search(directory, "o=nhs", "(objectClass=*)", ("1.1",), size=1)
    assert (result.code, len(found)) == (4, 1)
    assert search(directory, "o=nhs", "(objectClass=*)", time_limit=1e-9)[0].code == 3


def test_attribute_selection(directory: Directory) -> None:
    base = f"uniqueIdentifier={ASID},ou=Services,o=nhs"

    def names(*attrs: str, types_only: bool = False) -> list[str]:
        _, found = search(directory, base, "(objectClass=*)", attrs, ast.Scope.BASE, types_only=types_only)
        return list(found[base])

    user = [
        "objectClass",
        "uniqueIdentifier",
        "nhsIDCode",
        "nhsMHSPartyKey",
        "nhsAsSvcIA",
        "nhsAsClient",
        "nhsRequestorURP",
        "nhsDateRequested",
        "nhsApproverURP",
        "nhsDateApproved",
    ]
    assert names() == user and names("*") == user and names("*", "nhsIDCode") == user
    assert names("1.1") == [] and names("noSuchAttribute") == []
    assert names("1.1", "NHSIDCODE") == ["NHSIDCODE"]
    assert names("nhsidcode", "0.9.2342.19200300.100.1.44") == ["nhsidcode", "uniqueIdentifier"]
    assert names("*", "NHSIDCODE") == [("NHSIDCODE" if n == "nhsIDCode" else n) for n in user]
    assert names("+") == [
        "structuralObjectClass",
        "entryDN",
        "createTimestamp",
        "modifyTimestamp",
        "subschemaSubentry",
        "hasSubordinates",
    ]
    _, found = search(
        directory, base, "(objectClass=*)", ("entryDN", "createTimestamp", "hasSubordinates"), ast.Scope.BASE
    )
    attrs = found[base]
    assert attrs["entryDN"] == [base] and attrs["hasSubordinates"] == ["FALSE"]
    assert len(attrs["createTimestamp"][0]) == 15 and attrs["createTimestamp"][0].endswith("Z")
    _, found = search(directory, base, "(objectClass=*)", ("nhsIDCode",), ast.Scope.BASE, types_only=True)
    assert found[base] == {"nhsIDCode": []}


def test_root_dse_and_subschema(directory: Directory) -> None:
    result, found = search(directory, "", "(objectClass=*)", ("+",), ast.Scope.BASE)
    root = found[""]
    assert root["namingContexts"] == ["o=nhs"] and root["supportedLDAPVersion"] == ["3"]
    assert "1.2.840.113556.1.4.319" in root["supportedControl"]
    assert {"1.3.6.1.4.1.4203.1.11.3", "1.3.6.1.4.1.1466.20037"} <= set(root["supportedExtension"])
    assert root["subschemaSubentry"] == ["cn=Subschema"]
    _, found = search(
        directory, "cn=subschema", "(objectClass=subschema)", ("attributeTypes", "objectClasses"), ast.Scope.BASE
    )
    types = found["cn=Subschema"]["attributeTypes"]
    assert any("NAME 'nhsIDCode'" in t and "EQUALITY caseExactMatch" in t for t in types)
    assert any("NAME 'nhsAs'" in c for c in found["cn=Subschema"]["objectClasses"])


def test_subschema_parses_with_ldap3(directory: Directory) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import ldap3
        from ldap3.protocol.rfc4512 import AttributeTypeInfo, ObjectClassInfo
    _, found = search(directory, "cn=Subschema", "(objectClass=*)", ("+",), ast.Scope.BASE)
    types = AttributeTypeInfo.from_definition(found["cn=Subschema"]["attributeTypes"])
    classes = ObjectClassInfo.from_definition(found["cn=Subschema"]["objectClasses"])
    assert types["nhsMhsSvcIA"].equality == ["caseExactMatch"] and types["nhsMhsSvcIA"].single_value
    assert types["nhsDateApproved"].ordering == ["caseIgnoreOrderingMatch"]
    assert "nhsMHSPartyKey" in classes["nhsMhs"].must_contain
    assert ldap3.ALL  # ldap3 parses every definition without raising


def test_organisations_branch(directory: Directory, session: Session) -> None:
    create_organisation(
        session, {"ods_code": "A12345", "name": "The Surgery", "postcode": "LS1 4HR"}, CLI_ACTOR
    )
    session.commit()
    result, found = search(
        directory,
        "ou=organisations, o=nhs",
        "(uniqueidentifier=a12345)",
        ("nhsIDCode", "o", "postalCode", "objectClass"),
    )
    assert found == {
        "uniqueIdentifier=A12345,ou=Organisations,o=nhs": {
            "objectClass": ["top", "organization", "nhsOrg"],
            "nhsIDCode": ["A12345"],
            "o": ["The Surgery"],
            "postalCode": ["LS1 4HR"],
        }
    }
    assert list(search(directory, "o=nhs", "(objectClass=organizationalUnit)", ("1.1",))[1]) == [
        "ou=Services,o=nhs",
        "ou=Organisations,o=nhs",
    ]
    assert list(search(directory, "o=nhs", "(objectClass=organization)", ("1.1",))[1]) == [
        "o=nhs",
        "uniqueIdentifier=A12345,ou=Organisations,o=nhs",
    ]


def test_compare(directory: Directory) -> None:
    entry = f"uniqueIdentifier={ASID},ou=Services,o=nhs"
    assert directory.compare(entry, "nhsIDCode", "A12345").code == 6
    assert directory.compare(entry, "NHSIDCODE", "a12345").code == 5
    assert directory.compare(entry, "nhsMHSPartyKey", PK.lower()).code == 6
    assert directory.compare(entry, "objectClass", "nhsas").code == 6
    assert directory.compare(entry, "nhsMhsSvcIA", "x").code == 16
    assert directory.compare(entry, "noSuchAttribute", "x").code == 17
    assert directory.compare("uniqueIdentifier=1,ou=Services,o=nhs", "nhsIDCode", "x").code == 32
    assert directory.compare("o=nhs", "o", "NHS").code == 6


def test_time_limit_stops_a_long_query(directory: Directory, session: Session) -> None:
    """On SQLite a progress handler interrupts the query itself; elsewhere the limit is checked between steps."""
    for n in range(40):
        register_consumer(session, {"ods_code": f"R{n:02d}", "interactions": [METADATA]}, CLI_ACTOR)
    session.commit()
    result, found = search(directory, "o=nhs", "(nhsProductName=*x*y*z*)", ("1.1",), time_limit=1e-6)
    assert result.code == 3 and found == {}


def test_postgresql_statement_timeout_is_the_server_time_limit(postgres_engine: Engine) -> None:
    from dataclasses import replace

    d = Directory(postgres_engine, replace(Settings(), ldap_time_limit=1))
    try:
        from sds_registry.ldap.backend import TimeLimitExceeded
        from sds_registry.ldap.directory import Plan

        with pytest.raises(TimeLimitExceeded):
            d._run(Plan("SELECT pg_sleep(3)", None, {}, lambda r: ("", [])), {})
        assert d._run(Plan("SELECT 1", None, {}, lambda r: ("", [])), {}) == [(1,)]
    finally:
        d.close()


def test_concurrent_searches_share_plans_and_a_bounded_set_of_connections(directory: Directory) -> None:
    from concurrent.futures import ThreadPoolExecutor

    flt = f"(&(nhsIDCode=A12345)(objectClass=nhsMhs)(nhsMhsSvcIA={STRUCTURED}))"

    def work(_: int) -> int:
        return sum(len(search(directory, "ou=Services,o=nhs", flt, ("nhsMHSEndPoint",))[1]) for _ in range(40))

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(work, range(12))) == [40] * 12
    assert 1 <= len(directory._idle) <= 6
