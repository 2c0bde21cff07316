"""The fast first load (services.first_load): what it stores is what the careful path stores, and any input the
careful path refuses gives way to it (same report, nothing kept), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.ldapkit import data as kit_data
from sds_registry.db import make_sessionmaker
from sds_registry.ldap.ldif import import_ldif
from sds_registry.models import AccreditedSystem
from sds_registry.services import bulk
from sds_registry.services.writes import CLI_ACTOR
from tests.functional.ldap.test_ldif import GOOD, GPC, _index_names, as_entry, mhs
from tests.support.first_load import both, tables


def org(ods: str, extra: str = "") -> str:
    return (f"dn: uniqueIdentifier={ods},ou=Organisations,o=nhs\nobjectClass: top\nobjectClass: organization\n"
            f"objectClass: nhsOrg\nuniqueIdentifier: {ods}\nnhsIDCode: {ods}\no: Practice {ods}\n{extra}\n")


def test_first_load_stores_exactly_what_the_careful_path_stores(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BATCH", 7)  # many batches of each table
    path = tmp_path / "sds.ldif"
    kit_data.write_ldif(kit_data.stream(12), path)
    text = path.read_text(encoding="utf-8") + org("B81001") + org("B81002", "nhsOrgType: Trust\n")
    fast, careful, fast_rows, careful_rows = both(db, import_ldif, text)
    assert fast.ok and fast.first_load, fast.lines()
    assert careful.ok and not careful.first_load
    assert fast.lines() == careful.lines()
    assert fast_rows == careful_rows  # ids, every column, every value list in its order
    assert len(fast_rows["message_handling_systems"]) > 100 and len(fast_rows["organisations"]) == 2


def test_first_load_keeps_lenient_flags_as_the_careful_path(db: Engine) -> None:
    text = "\n".join([mhs("eeee5555", GOOD + "/"),
                      mhs("ffff6666", GOOD, ia=GPC + "fhir:rest:read:patient-1", extra="nhsNotAThing: 1"),
                      as_entry("012345678901")])
    fast, careful, fast_rows, careful_rows = both(db, import_ldif, text, lenient=True)
    assert fast.first_load and fast.ok and fast.flagged == 2
    assert fast.lines() == careful.lines() and fast_rows == careful_rows


CLASHES = {
    "ASID twice": [as_entry("012345678901"), as_entry("012345678901", extra="nhsProductName: again")],
    "MHS identifier in another case": [mhs("aa01", GOOD), mhs("AA01", GOOD, ia=GPC + "fhir:rest:read:patient-1")],
    "ASID equal to an MHS identifier": [mhs("012345678901", GOOD), as_entry("012345678901")],
    "party key and interaction in another case": [
        mhs("aa01", GOOD), mhs("bb02", GOOD).replace("nhsMHSPartyKey: A12345", "nhsMHSPartyKey: a12345")],
    "CPA id twice": [mhs("aa01", GOOD), mhs("bb02", GOOD, ia=GPC + "fhir:rest:read:patient-1").replace(
        "nhsMhsCPAId: bb02", "nhsMhsCPAId: aa01")],
    "organisation twice": [org("B81001"), org("B81001")],
    "a record the rules refuse": [as_entry("012345678901"), mhs("bbbb2222", GOOD + "/"), as_entry("012345678902")],
    "an attribute we do not hold": [mhs("cccc3333", GOOD, extra="nhsNotAThing: 1")],
}


@pytest.mark.parametrize("case", list(CLASHES))
def test_first_load_gives_way_to_the_careful_path_on_any_clash(db: Engine, case: str) -> None:
    """Each input breaks one rule, seen by a constraint at once or by the checks at the end: the report is the
    careful path's, word for word, and the load keeps nothing (the dropped indexes are back)."""
    with db.connect() as c:
        indexes = _index_names(c)
    text = "\n".join(CLASHES[case])
    fast, careful, _, _ = both(db, import_ldif, text)
    assert not fast.ok and not fast.first_load
    assert fast.lines() == careful.lines() and careful.rejected
    with make_sessionmaker(db)() as s:
        report = import_ldif(s, io.StringIO(text))
        assert tables(s) == {name: [] for name in tables(s)}  # the caller's rollback is not needed: none went in
        assert _index_names(s.connection()) == indexes
        s.rollback()
    assert not report.ok


def test_first_load_only_into_an_empty_registry(db: Engine) -> None:
    with make_sessionmaker(db)() as s:
        assert import_ldif(s, io.StringIO(as_entry("012345678901"))).first_load
        s.commit()
        report = import_ldif(s, io.StringIO(as_entry("012345678902")))
        assert report.ok and not report.first_load
        s.rollback()


def test_ids_after_a_first_load_go_on_from_it(db: Engine) -> None:
    """The load gives ids itself; a later write (the services', through the sequence on PostgreSQL) takes the
    next one, not one the load used."""
    from sds_registry.services.accredited_systems import create_accredited_system

    with make_sessionmaker(db)() as s:
        assert import_ldif(s, io.StringIO("\n".join(as_entry(f"01234567890{n}") for n in range(3)))).first_load
        s.commit()
        loaded = list(s.scalars(select(AccreditedSystem.id)))
        made = create_accredited_system(s, {
            "asid": "012345678999", "ods_code": "A12345", "party_key": "A12345-1234567",
            "interactions": [GPC + "fhir:rest:read:metadata-1"]}, CLI_ACTOR)
        s.commit()
        assert len(loaded) == 3 and made.id > max(loaded)
