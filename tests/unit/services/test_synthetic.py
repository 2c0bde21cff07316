"""Synthetic practices: a pure function of the practice number, equal to what earlier seed runs stored."""

from __future__ import annotations

from sds_registry.services.synthetic import practice_ods, practice_records


def test_practice_numbers_map_to_ods_codes() -> None:
    assert [practice_ods(n) for n in (0, 3, 99999, 100000, 123456)] == ["P00000", "P00003", "P99999", "Q00000",
                                                                        "Q23456"]


def test_the_same_records_as_earlier_seed_runs() -> None:
    """Values a ``sds seed --synthetic`` run from practice 0 stored before the generator moved off factory_boy."""
    first = practice_records(0)
    assert first.organisation["name"] == "Leeds Medical Practice 0"
    assert first.provider["fqdn"] == "gpconnect.provider1.thirdparty.nhs.uk"
    assert first.provider["manufacturer_org"] == "X09001" and first.provider["product_key"] == "6001"
    third = practice_records(3)
    assert third.organisation["postal_address"] == "8 Church Lane$Ely" and third.organisation["postcode"] == "LS8 8AB"
    assert (third.provider["asid"], third.provider["party_key"]) == ("700000000003", "P00003-800003")
    assert third.provider["manufacturer_org"] == "YGM24"
    assert third.consumer is not None and third.consumer["asid"] == "800000000003"
    later = practice_records(37)
    assert later.organisation["name"] == "Lancaster Medical Practice 87" and later.consumer is None
    assert later.provider["fqdn"] == "gpconnect.provider38.thirdparty.nhs.uk"


def test_a_practice_does_not_depend_on_what_was_built_before() -> None:
    alone = practice_records(5)
    for n in range(10):
        practice_records(n)
    assert practice_records(5) == alone
