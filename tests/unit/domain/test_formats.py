"""Format validators: examples from the reference, and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sds_registry.domain import formats
from sds_registry.errors import InvalidIdentifier


def rules(url: str, ods: str | None = "A20047") -> list[str]:
    return [i.rule for i in formats.check_service_root_url(url, ods)]


@pytest.mark.parametrize("url", [
    "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect",
    "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect/structured",
    "https://provider.thirdparty.nhs.uk/A20047/DSTU2/1",
    "https://messagingportal.opentest.hscic.gov.uk:19192/A20047/STU3/1/gpconnect/structured/fhir",
    "https://a.b.nhs.uk/A20047/R4/12/gpconnect%2Fx",
])
def test_valid_service_root_urls_pass(url: str) -> None:
    assert rules(url) == []


def test_issue_example_reports_uppercase_and_trailing_slash_separately() -> None:
    assert sorted(rules("https://x.example.nhs.uk/A20047/stu3/1/")) == ["fhir-version-uppercase",
                                                                         "no-trailing-slash"]


@pytest.mark.parametrize(("url", "expected"), [
    ("http://a.nhs.uk/A20047/STU3/1", ["https"]),
    ("https://10.0.0.1/A20047/STU3/1", ["host-not-ip"]),
    ("https://[::1]/A20047/STU3/1", ["host-not-ip"]),
    ("https://localhost/A20047/STU3/1", ["host-fqdn"]),
    ("https://user:pw@a.nhs.uk/A20047/STU3/1", ["no-userinfo"]),
    ("https://a.nhs.uk/A20047/STU3/1?x=1", ["no-query"]),
    ("https://a.nhs.uk/A20047/STU3/1#frag", ["no-fragment"]),
    ("https://a.nhs.uk:443/A20047/STU3/1", ["no-explicit-443"]),
    ("https://a.nhs.uk/B82617/STU3/1", ["ods-segment"]),
    ("https://a.nhs.uk/A20047/STU9/1", ["fhir-version-name"]),
    ("https://a.nhs.uk/A20047/STU3/one", ["gpc-major-version"]),
    ("https://a.nhs.uk/A20047/STU3/1/%zz", ["percent-encoding"]),
    ("https://a.nhs.uk/A20047/STU3/1/a b", ["path-characters"]),
    ("https://a.nhs.uk/A20047", ["service-root-form"]),
])
def test_each_rule_is_reported_on_its_own(url: str, expected: list[str]) -> None:
    assert rules(url) == expected


def test_several_broken_rules_each_reported() -> None:
    found = rules("http://user@10.1.2.3:443/B82617/stu3/x/?q#f")
    for rule in ("https", "host-not-ip", "no-userinfo", "no-explicit-443", "no-query", "no-fragment",
                 "ods-segment", "fhir-version-uppercase", "gpc-major-version", "no-trailing-slash"):
        assert rule in found


@pytest.mark.parametrize(("check", "good", "bad"), [
    (formats.asid, ["918999198993", "000428682512"], ["91899919899", "9189991989931", "91899919899a", ""]),
    (formats.party_key, ["T99999-9999999", "YES-0000806", "A20047-12345"], ["t99999-1", "T99999-1234", "T99999"]),
    (formats.ods_code, ["A20047", "YES", "GPC001", "R3U6M"], ["a20047", "AB", "A20047X12345", "A-1"]),
    (formats.cpa_id, ["S918999410559", "472b35d4641b76454b13", "S20001A000182"], ["a b", "", "x/y"]),
    (formats.spine_date, ["20150302141231"], ["2015030214123", "20151302141231", "20150230141231"]),
    (formats.duration, ["PT5M", "PT7H", "P1D", "PT1M30S"], ["5M", "P", "PT", "PT5X"]),
    (formats.interaction_id, [
        "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1",
        "urn:nhs:names:services:gpconnect:structured:fhir:rest:read:metadata-1",
        "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getcarerecord",
        "urn:nhs:names:services:psis:REPC_IN150016UK05",
        "urn:oasis:names:tc:ebxml-msg:service:Acknowledgment",
    ], [
        "urn:nhs:names:services:gpconnect:fhir:rest:READ:metadata-1",
        "urn:nhs:names:services:gpconnect:fhir:rest:read",
        "gpconnect:fhir:rest:read:metadata-1",
        "urn:nhs names",
    ]),
])
def test_identifier_formats(check, good: list[str], bad: list[str]) -> None:  # type: ignore[no-untyped-def]
    for value in good:
        assert check(value, "f") == value
    for value in bad:
        with pytest.raises(InvalidIdentifier) as info:
            check(value, "f")
        assert info.value.issues[0].field == "f"


@given(st.from_regex(r"[A-Z][0-9]{5}", fullmatch=True), st.sampled_from(["STU3", "DSTU2", "R4"]),
       st.integers(min_value=0, max_value=99), st.sampled_from(["", "/gpconnect", "/gpconnect/structured"]))
def test_well_formed_urls_always_pass(ods: str, version: str, major: int, segment: str) -> None:
    url = f"https://gpconnect.provider.nhs.uk/{ods}/{version}/{major}{segment}"
    assert formats.check_service_root_url(url, ods) == []


@given(st.text(max_size=80))
def test_validator_never_raises_on_arbitrary_text(text: str) -> None:
    issues = formats.check_service_root_url(text, "A20047")
    assert all(i.field == "endpoint" and i.rule and i.message for i in issues)


@given(st.from_regex(r"[A-Z][0-9]{5}", fullmatch=True))
def test_trailing_slash_always_reported(ods: str) -> None:
    assert "no-trailing-slash" in rules(f"https://p.nhs.uk/{ods}/STU3/1/gpconnect/", ods)


@given(st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_any_twelve_digits_is_an_asid(value: str) -> None:
    assert formats.asid(value) == value


@given(st.from_regex(r"[0-9]{4}(0[0-9]|1[0-3])([0-3][0-9])([0-2][0-9])[0-6][0-9][0-6][0-9]", fullmatch=True))
def test_spine_date_accepts_what_strptime_accepts(text: str) -> None:
    """The calendar check reads the fields at fixed places; on 14 digits that is strptime's answer (months 13,
    days 31 of short months, 24:00, second 60 and leap days among the draws)."""
    from datetime import datetime

    try:
        datetime.strptime(text, "%Y%m%d%H%M%S")
        real = True
    except ValueError:
        real = False
    if real:
        assert formats.spine_date(text) == text
    else:
        with pytest.raises(InvalidIdentifier) as caught:
            formats.spine_date(text)
        assert caught.value.issues[0].rule == "date-value"
