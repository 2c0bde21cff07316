"""LDIF import (validation, all or nothing, lenient) and export (re-imports identically, loads into slapd)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from bench.ldapkit import data as kit_data
from bench.ldapkit import diff, slapd
from bench.ldapkit.searches import Search
from sds_registry.config import Settings
from sds_registry.db import Base, make_sessionmaker
from sds_registry.ldap import ast
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.ldif import export_ldif, import_ldif, read_entries
from sds_registry.models import AccreditedSystem, AuditEvent, MessageHandlingSystem

GPC = "urn:nhs:names:services:gpconnect:"


def mhs(
    cpa: str, endpoint: str, ods: str = "A12345", ia: str = GPC + "fhir:rest:read:metadata-1", extra: str = ""
) -> str:
    return f"""dn: uniqueIdentifier={cpa},ou=Services,o=nhs
objectClass: top
objectClass: nhsMhs
uniqueIdentifier: {cpa}
nhsIDCode: {ods}
nhsMHSPartyKey: {ods}-1234567
nhsMhsSvcIA: {ia}
nhsMHSEndPoint: {endpoint}
nhsMhsCPAId: {cpa}
{extra}
"""


def as_entry(asid: str, ods: str = "A12345", extra: str = "") -> str:
    return f"""dn: uniqueidentifier={asid},ou=services, o=nhs
objectclass: nhsas
objectclass: top
UNIQUEIDENTIFIER: {asid}
nhsidcode: {ods}
nhsMhsPartyKey: {ods}-1234567
nhsAsSvcIA: {GPC}fhir:rest:read:metadata-1
{extra}
"""


GOOD = "https://gpc.example.nhs.uk/A12345/STU3/1/gpconnect"
HEAD = "dn: o=nhs\nobjectClass: top\nobjectClass: organization\no: nhs\n\n"


def _count(db: Engine, model: type[Base]) -> int:
    with make_sessionmaker(db)() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_valid_file_is_stored_with_one_audit_event(db: Engine) -> None:
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(HEAD + as_entry("012345678901") + "\n" + mhs("aaaa1111", GOOD)))
        assert report.ok, report.lines()
        s.commit()
    assert report.created == {"nhsAs": 1, "nhsMhs": 1}
    assert report.skipped == [("o=nhs", "not a registry record (objectClass: top, organization)")]
    assert _count(db, AccreditedSystem) == 1 and _count(db, MessageHandlingSystem) == 1
    assert _count(db, AuditEvent) == 1


def test_every_rejection_is_reported_and_nothing_is_stored(db: Engine) -> None:
    text = "\n".join(
        [
            as_entry("012345678901"),
            as_entry("012345678901", extra="nhsProductName: again"),  # duplicate ASID
            mhs("bbbb2222", GOOD + "/"),  # trailing slash
            mhs("cccc3333", GOOD, extra="nhsNotAThing: 1"),  # unknown attribute
            mhs("dddd4444", GOOD).replace("ou=Services,o=nhs", "ou=People,o=nhs"),  # wrong place
            as_entry("12", ods="a1"),  # bad ASID and ODS code
        ]
    )
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(text))
        s.rollback()
    assert not report.ok
    reasons = {r.dn: " | ".join(r.reasons) for r in report.rejected}
    assert "(rule: unique)" in reasons["uniqueidentifier=012345678901,ou=services, o=nhs"]
    assert "nhsMHSEndPoint (endpoints[0])" in reasons["uniqueIdentifier=bbbb2222,ou=Services,o=nhs"]
    assert "trailing" in reasons["uniqueIdentifier=bbbb2222,ou=Services,o=nhs"]
    assert "nhsNotAThing" in reasons["uniqueIdentifier=cccc3333,ou=Services,o=nhs"]
    assert "(rule: dn)" in reasons["uniqueIdentifier=dddd4444,ou=People,o=nhs"]
    bad = reasons["uniqueidentifier=12,ou=services, o=nhs"]
    assert "uniqueIdentifier (asid)" in bad and "nhsIDCode (ods_code)" in bad
    assert any(line.startswith("REJECTED ") for line in report.lines())
    assert _count(db, AccreditedSystem) == 0 and _count(db, MessageHandlingSystem) == 0


def test_lenient_stores_and_flags(db: Engine) -> None:
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(mhs("eeee5555", GOOD + "/")), lenient=True)
        assert report.ok and report.flagged == 1
        s.commit()
        row = s.scalar(select(MessageHandlingSystem))
        assert row is not None and row.endpoints == [GOOD + "/"] and row.flags
    d = Directory(db, Settings())
    req = ast.SearchRequest(
        "ou=Services,o=nhs",
        ast.Scope.SUB,
        ast.DerefAliases.NEVER,
        0,
        0,
        False,
        ast.Equality("nhsMHSEndPoint", GOOD + "/"),
        ("nhsMHSEndPoint",),
    )
    entries, _ = d.search(req, 0, 0)
    d.close()
    assert [e.attributes for e in entries] == [[("nhsMHSEndPoint", [GOOD + "/"])]]


def test_records_already_in_the_registry_are_rejected(db: Engine) -> None:
    with make_sessionmaker(db)() as s:
        assert import_ldif(s, io.StringIO(as_entry("012345678901"))).ok
        s.commit()
        report = import_ldif(s, io.StringIO(as_entry("012345678901") + "\n" + mhs("012345678901", GOOD)))
        assert [r.reasons[0].split(" (")[0] for r in report.rejected] == [
            "uniqueIdentifier: '012345678901' is also used by uniqueidentifier=012345678901,ou=services, o=nhs",
        ] or len(report.rejected) == 2


def test_errors_name_the_line_attribute_and_dn(db: Engine) -> None:
    text = HEAD + as_entry("012345678901") + "\n" + mhs("ffff6666", GOOD + "/") + "\n" + mhs(
        "gggg7777", GOOD, ods="A12346", extra="nhsProductName:: not*base64")
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(text))
        s.rollback()
    rejected = {r.dn: r for r in report.rejected}
    slash = rejected["uniqueIdentifier=ffff6666,ou=Services,o=nhs"]
    assert slash.line == 15 and "nhsMHSEndPoint (endpoints[0]) line 22:" in slash.reasons[0]
    assert slash.text().startswith("REJECTED line 15 uniqueIdentifier=ffff6666,ou=Services,o=nhs: ")
    bad = rejected["uniqueIdentifier=gggg7777,ou=Services,o=nhs"]  # the DN survives a bad base64 value
    assert bad.line == 26 and "nhsProductName (line 35): not a base64 UTF-8 value" in bad.reasons[0]
    assert "(rule: base64)" in bad.reasons[0]
    lines = report.lines()
    assert "nhsAs: would have created 1, updated 0, deleted 0 (nothing stored)" in lines
    assert not any(" created," in line for line in lines)


def test_lenient_says_stored_with_flags_only_when_stored(db: Engine) -> None:
    text = mhs("hhhh8888", GOOD + "/") + "\n" + as_entry("012345678901") + "\n" + as_entry("012345678901")
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(text), lenient=True)
        s.rollback()
    assert not report.ok and report.flagged == 1
    assert "lenient: 1 record(s) would have been stored with flags (nothing stored)" in report.lines()


def _export(db: Engine) -> str:
    out = io.StringIO()
    with make_sessionmaker(db)() as s:
        export_ldif(s, out)
    return out.getvalue()


def test_export_reimports_identically_and_loads_into_slapd(db: Engine, tmp_path: Path) -> None:
    kit_data.write(kit_data.generate(12), tmp_path / "data")
    with make_sessionmaker(db)() as s:
        assert import_ldif(s, tmp_path / "data" / "sds.ldif").ok
        s.commit()
    first = _export(db)
    with db.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in (
                "accredited_systems",
                "message_handling_systems",
                "as_interactions",
                "as_clients",
                "mhs_endpoints",
            ):
                conn.execute(table.delete())
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(first))
        assert report.ok and report.skipped == [
            ("o=nhs", "not a registry record (objectClass: top, organization)"),
            ("ou=Services,o=nhs", "not a registry record (objectClass: top, organizationalUnit)"),
        ]
        s.commit()
    assert _export(db) == first
    with open(tmp_path / "data" / "sds.ldif") as original:  # same entries, same attributes in the same order
        assert sorted(read_entries(io.StringIO(first))) == sorted(read_entries(original))
    if not slapd.available():
        pytest.skip("slapd is not installed")
    (tmp_path / "export.ldif").write_text(first)
    with slapd.running(tmp_path / "export.ldif", tmp_path / "slapd") as url:
        code, entries = diff.ldap3_search(url, Search("all", "o=nhs", "sub", "(objectClass=*)"))
    d = Directory(db, Settings())
    ours, result = d.search(
        ast.SearchRequest("o=nhs", ast.Scope.SUB, ast.DerefAliases.NEVER, 0, 0, False, ast.Present("objectClass"), ()),
        0,
        0,
    )
    d.close()
    assert code == 0 and result.code == 0
    assert diff.normalise(entries) == diff.normalise([(e.dn, dict(e.attributes)) for e in ours])


def test_lenient_keeps_records_with_attributes_we_do_not_hold(db: Engine) -> None:
    entry = as_entry("012345678902", extra="nhsNotAThing: 1\nnhsAsACF: RBAC")
    with make_sessionmaker(db)() as s:
        assert not import_ldif(s, io.StringIO(entry)).ok
        s.rollback()
        report = import_ldif(s, io.StringIO(entry), lenient=True)
        assert report.ok and report.flagged == 1
        s.commit()
        row = s.scalar(select(AccreditedSystem))
        assert row is not None and row.flags == "nhsNotAThing:unknown-attribute" and row.acfs == ["RBAC"]


def test_chunks_interaction_case_and_duplicates_across_chunks(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from sds_registry.ldap import ldif_import

    monkeypatch.setattr(ldif_import, "CHUNK", 2)
    entries = [
        mhs("aa01", GOOD, ia="urn:nhs:names:services:psis:MCCI_IN010000UK13"),
        mhs("aa02", GOOD, ia="urn:nhs:names:services:psis:mcci_in010000uk13"),  # case-exact ids: no clash
        mhs("aa03", GOOD, ia=GPC + "fhir:rest:read:patient-1"),
        as_entry("012345678903"),
    ]
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO("\n".join(entries)))
        assert report.ok, report.lines()
        s.commit()
    assert _count(db, MessageHandlingSystem) == 3
    later = [
        mhs("bb01", GOOD, ia=GPC + "fhir:rest:read:location-1"),
        as_entry("012345678904"),
        mhs("bb02", GOOD, ia=GPC + "fhir:rest:read:location-1"),  # same party key + interaction as bb01
        mhs("AA01", GOOD, ia=GPC + "fhir:rest:search:slot-1"),
    ]  # RDN clashes (caseIgnore) with aa01
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO("\n".join(later)))
        s.rollback()  # the first chunk went in before the rejections: the caller's rollback removes it
    reasons = {r.dn.split(",")[0]: " ".join(r.reasons) for r in report.rejected}
    assert set(reasons) == {"uniqueIdentifier=bb02", "uniqueIdentifier=AA01"}
    # bb01 was stored with the first chunk: the database finds the clash, naming it as this input's own record
    assert "also used by an earlier record of this input (bb01)" in reasons["uniqueIdentifier=bb02"]
    assert "already exists in the registry" in reasons["uniqueIdentifier=AA01"]
    assert _count(db, MessageHandlingSystem) == 3 and _count(db, AccreditedSystem) == 1


def test_first_load_finds_duplicates_across_chunks_through_its_key_filter(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first load (empty directory) probes the database only for keys its filter may hold: a duplicate of a
    record stored with an earlier chunk is still refused, named as before; a key the filter takes for seen
    (a false positive) is looked up and passes."""
    from sds_registry.ldap import ldif_import
    from sds_registry.services import bloom

    monkeypatch.setattr(ldif_import, "CHUNK", 2)
    filters: list[bloom.KeyFilter] = []
    probed: list[str] = []

    class Spy(bloom.KeyFilter):
        def __init__(self) -> None:
            super().__init__(4)  # small: grows while the load runs
            filters.append(self)

        def add(self, key: object) -> bool:
            probed.append(str(key))
            return super().add(key) or str(key).endswith("'cc03')")  # a false positive: probed, passes

    monkeypatch.setattr(bloom, "KeyFilter", Spy)
    entries = [
        mhs("aa01", GOOD, ia=GPC + "fhir:rest:read:location-1"),
        as_entry("012345678904"),
        mhs("cc03", GOOD, ia=GPC + "fhir:rest:read:patient-1"),
        mhs("bb02", GOOD, ia=GPC + "fhir:rest:read:location-1"),  # party key + interaction of aa01
        mhs("AA01", GOOD, ia=GPC + "fhir:rest:search:slot-1"),  # aa01's RDN (caseIgnore)
        as_entry("012345678904", extra="nhsProductName: again"),  # the ASID of the second record
    ]
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO("\n".join(entries)))
        s.rollback()
    assert len(filters) == 1 and probed  # the load used its filter
    reasons = {r.dn.split(",")[0]: " ".join(r.reasons) for r in report.rejected}
    assert set(reasons) == {"uniqueIdentifier=bb02", "uniqueIdentifier=AA01", "uniqueidentifier=012345678904"}
    assert "party_key+interaction_id: also used by an earlier record of this input (aa01)" in reasons[
        "uniqueIdentifier=bb02"]
    assert "unique_identifier: 'aa01' is also used by an earlier record of this input" in reasons[
        "uniqueIdentifier=AA01"]
    assert "asid: '012345678904' is also used by an earlier record of this input" in reasons[
        "uniqueidentifier=012345678904"]
    assert _count(db, MessageHandlingSystem) == 0 and _count(db, AccreditedSystem) == 0


def test_first_load_in_chunks_moves_the_directory_generation_once(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's triggers bump once per transaction: a first load of many chunks, its indexes dropped and built
    again, is one committed write (SQLite's data_version moves on any commit)."""
    from sds_registry.ldap import ldif_import
    from sds_registry.services.generation import Generation

    monkeypatch.setattr(ldif_import, "CHUNK", 2)
    entries = [as_entry(f"01234567890{n}") for n in range(5)]
    served = ["read:metadata-1", "read:location-1", "read:patient-1", "search:slot-1"]
    entries += [mhs(f"dd0{n}", GOOD, ia=f"{GPC}fhir:rest:{ia}") for n, ia in enumerate(served)]
    gen = Generation(db)
    try:
        before = gen.current()
        with make_sessionmaker(db)() as s:
            report = import_ldif(s, io.StringIO("\n".join(entries)))
            assert report.ok, report.lines()
            assert gen.current() == before  # nothing visible before the commit
            s.commit()
        after = gen.current()
        assert after != before
        if db.dialect.name == "postgresql":
            assert after == before + 1  # type: ignore[operator]
    finally:
        gen.close()
    assert _count(db, AccreditedSystem) == 5 and _count(db, MessageHandlingSystem) == 4

def test_load_into_a_directory_holding_records_probes_every_key(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from sds_registry.services import bloom

    def no_filter() -> None:
        raise AssertionError("records were stored before the load: no key filter")

    with make_sessionmaker(db)() as s:
        assert import_ldif(s, io.StringIO(as_entry("012345678901"))).ok
        s.commit()
    monkeypatch.setattr(bloom, "KeyFilter", no_filter)
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(mhs("012345678901", GOOD)))
        s.rollback()
    assert ["'012345678901' already exists in the registry (rule: unique)"] == report.rejected[0].reasons


REAL_DUMP = """# extended LDIF
#
# LDAPv3
# base <ou=services,o=nhs> with scope subtree
# filter: (|(objectclass=nhsas)(objectclass=nhsmhs))
# requesting: + *
#

# 200000000149, Services, nhs
dn: uniqueIdentifier=200000000149,ou=Services,o=nhs
objectClass: nhsas
objectClass: top
nhsProductKey: 10830
nhsMhsManufacturerOrg: YGM24
nhsMHSPartyKey: YGM24-820388
nhsAsClient: M85019
nhsIDCode: M85019
uniqueIdentifier: 200000000149
nhsProductName: SystmOne
nhsProductVersion: 6.01 Core + EPS2 + GP2GP (AS)
nhsDateRequested: 20150302141231
nhsDateApproved: 20150302145732
nhsAsSvcIA: urn:nhs:names:services:gp2gp:RCMR_IN010000UK05
nhsAsSvcIA: urn:nhs:names:services:pds:PRPA_IN060000UK30
nhsAsSvcIA: urn:oasis:names:tc:ebxml-msg:service:Acknowledgment
nhsTempUid: 9713
entryUUID: 1c3b6fd2-0a55-4f0e-8d7c-1e6a2b1d2c3f
creatorsName: cn=Directory Manager,cn=Root DNs,cn=config
createTimestamp: 20150302145733Z
structuralObjectClass: nhsAs
hasSubordinates: FALSE
subschemaSubentry: cn=schema
entryDN: uniqueidentifier=200000000149,ou=services,o=nhs

# S918999410559, Services, nhs
dn: uniqueIdentifier=S918999410559,ou=Services,o=nhs
objectClass: top
objectClass: nhsMhs
uniqueIdentifier: S918999410559
nhsMhsCPAId: S918999410559
nhsIDCode: ODSCODE1
nhsMHSPartyKey: AP4RTY-12345
nhsMhsSvcIA: urn:nhs:names:services:psis:MCCI_IN010000UK13
nhsMHsSN: urn:nhs:names:services:psis
nhsMHsIN: MCCI_IN010000UK13
nhsMHSEndPoint: https://vpn-client-1411.opentest.hscic.gov.uk/
nhsMhsFQDN: vpn-client-1411.opentest.hscic.gov.uk
nhsEPInteractionType: HL7
nhsMHSIsAuthenticated: transient
nhsMHSSyncReplyMode: MSHSignalsOnly
nhsMHSAckRequested: always
nhsMHSDuplicateElimination: always
nhsMHSPersistDuration: PT5M
nhsMHSRetries: 2
nhsMHSRetryInterval: PT1M
nhsMHSActor: urn:oasis:names:tc:ebxml-msg:actor:toPartyMSH
nhsMHSServiceDescription:: T3BlblRlc3QgdnBuLWNsaWVudC0xNDExLm9wZW50ZXN0Lmhz
 Y2ljLmdvdi51aw==
nhsProductKey: 7374
nhsContractPropertyTemplateKey: 28
nhsDateRequested: 20140130190147
nhsDateApproved: 20140130191012
nhsDateDNSApproved: 20140130191235
nhsRequestorURP: uniqueIdentifier=331622135514,uniqueIdentifier=747394079517,
 uid=828249614516,ou=people,o=nhs

# search result
search: 2
result: 0 Success

# numResponses: 3
# numEntries: 2
"""


def test_a_real_ldapsearch_dump_with_operational_attributes(db: Engine) -> None:
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(REAL_DUMP))
        assert report.ok, report.lines()
        s.commit()
    d = Directory(db, Settings())
    req = ast.SearchRequest(
        "ou=services, o=nhs",
        ast.Scope.SUB,
        ast.DerefAliases.NEVER,
        0,
        0,
        False,
        ast.Equality("nhsMhsCPAId", "S918999410559"),
        ("nhsMHSServiceDescription", "nhsRequestorURP", "nhsMHSRetries"),
    )
    entries, _ = d.search(req, 0, 0)
    d.close()
    assert [dict(e.attributes) for e in entries] == [
        {
            "nhsMHSRetries": ["2"],
            "nhsRequestorURP": [
                "uniqueIdentifier=331622135514,uniqueIdentifier=747394079517,uid=828249614516,ou=people,o=nhs"
            ],
            "nhsMHSServiceDescription": ["OpenTest vpn-client-1411.opentest.hscic.gov.uk"],
        }
    ]


_INDEXES = {"sqlite": "SELECT name FROM sqlite_master WHERE type = 'index'",
            "postgresql": "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"}


def _index_names(connection: Connection) -> set[str]:
    """Index names ``connection`` sees (in its transaction)."""
    return set(connection.exec_driver_sql(_INDEXES[connection.dialect.name]).scalars())


def test_first_load_builds_the_deferred_indexes_before_it_commits(db: Engine) -> None:
    """A load into an empty directory drops the secondary indexes its checks do not probe and builds them at its
    end; a rejected load (rolled back) leaves them as they were; a load into a full directory keeps them."""
    from sds_registry.services import bulk

    with db.connect() as c:
        before = _index_names(c)
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(as_entry("012345678901") + "\n" + mhs("bbbb2222", GOOD + "/")))
        assert not report.ok
        assert _index_names(s.connection()) == before
        s.rollback()
        dropped = {ix.name for ix in bulk.defer_indexes(s)}  # the directory is empty: some are dropped
        assert dropped and not dropped & bulk.PROBED and _index_names(s.connection()) == before - dropped
        s.rollback()
        assert import_ldif(s, io.StringIO(as_entry("012345678901") + "\n" + mhs("aaaa1111", GOOD))).ok
        s.commit()
        assert not bulk.defer_indexes(s)  # none once it holds records
        s.rollback()
    with db.connect() as c:
        assert _index_names(c) == before


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite readers take no table locks
def test_first_load_keeps_the_indexes_a_reader_holds(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: when a reader holds a records table, the load waits at most LOCK_WAIT to drop its indexes,
    then loads with them in place (and still stores everything)."""
    from sds_registry.services import bulk

    monkeypatch.setattr(bulk, "LOCK_WAIT", "200ms")
    with db.connect() as reader, make_sessionmaker(db)() as s:
        reader.execute(select(func.count()).select_from(MessageHandlingSystem))  # its transaction holds the table
        assert bulk.defer_indexes(s) == []
        report = import_ldif(s, io.StringIO(as_entry("012345678901") + "\n" + mhs("aaaa1111", GOOD)))
        assert report.ok, report.lines()
        s.rollback()
        reader.rollback()


def test_a_second_value_of_a_single_valued_attribute_names_its_own_line(db: Engine) -> None:
    """Each message names the attribute as written on the offending line (two attributes may feed one field)."""
    two_ia = mhs("aaaa1111", GOOD, extra=f"nhsMhsSvcIA: {GPC}fhir:rest:read:patient-1")
    org = ("dn: uniqueIdentifier=B81001,ou=Organisations,o=nhs\nobjectClass: nhsOrg\nuniqueIdentifier: B81001\n"
           "nhsIDCode: B81002\no: Practice\n")
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(two_ia + "\n" + org))
        s.rollback()
    reasons = {r.dn.split(",")[0]: r.reasons for r in report.rejected}
    assert reasons == {
        "uniqueIdentifier=aaaa1111": ["nhsMhsSvcIA (line 10): more than one value (rule: single-value)"],
        "uniqueIdentifier=B81001": ["nhsIDCode (line 15): more than one value (rule: single-value)"],
    }
