"""Search parameters: the national rules and exact 400 texts (reference §1.4, backend handler tests)."""

from __future__ import annotations

import pytest

from sds_registry.fhir import search
from sds_registry.fhir.search import DeviceQuery, EndpointQuery, SearchError

ODS = "https://fhir.nhs.uk/Id/ods-organization-code|"
SVC = "https://fhir.nhs.uk/Id/nhsServiceInteractionId|"
PK = "https://fhir.nhs.uk/Id/nhsMhsPartyKey|"

ORG_MESSAGE = ("Missing or invalid 'organization' query parameter. "
               "Should be 'organization=https://fhir.nhs.uk/Id/ods-organization-code|value'")
SVC_MESSAGE = ("Missing or invalid 'identifier' query parameter. "
               "Should be 'identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|value'")
IDENTIFIER_MESSAGE = ("Missing or invalid 'identifier' query parameter. Should be one or both of: ["
                      "'identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|value', "
                      "'identifier=https://fhir.nhs.uk/Id/nhsMhsPartyKey|value'")
# The exact text of test_routing_reliability_handler.py::test_get_handles_missing_params.
COMBINATION_MESSAGE = (
    "Missing or invalid query parameters. Should one of following combinations: ["
    "'organization=https://fhir.nhs.uk/Id/ods-organization-code|value&identifier=https://fhir.nhs.uk/Id/"
    "nhsServiceInteractionId|value&identifier=https://fhir.nhs.uk/Id/nhsMhsPartyKey|value''organization=https://"
    "fhir.nhs.uk/Id/ods-organization-code|value&identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|value'"
    "'organization=https://fhir.nhs.uk/Id/ods-organization-code|value&identifier=https://fhir.nhs.uk/Id/"
    "nhsMhsPartyKey|value''identifier=https://fhir.nhs.uk/Id/nhsServiceInteractionId|value&identifier=https://"
    "fhir.nhs.uk/Id/nhsMhsPartyKey|value']")


def device(*params: tuple[str, str]) -> DeviceQuery:
    return search.parse_device(list(params))


def endpoint(*params: tuple[str, str]) -> EndpointQuery:
    return search.parse_endpoint(list(params))


def message(call: object, *params: tuple[str, str]) -> str:
    with pytest.raises(SearchError) as info:
        call(*params)  # type: ignore[operator]
    return info.value.message


def test_device_all_parameters() -> None:
    query = device(("organization", ODS + "A20047"), ("identifier", SVC + "urn:a:b"), ("identifier", PK + "A20047-1"),
                   ("manufacturing-organization", ODS + "X26"))
    assert query == DeviceQuery("A20047", "urn:a:b", "A20047-1", "X26")


def test_device_required() -> None:
    assert message(device) == ORG_MESSAGE
    assert message(device, ("identifier", SVC + "urn:a")) == ORG_MESSAGE
    assert message(device, ("organization", ODS + "YES")) == SVC_MESSAGE
    assert message(device, ("organization", ODS + "YES"), ("identifier", PK + "YES-1")) == SVC_MESSAGE
    assert message(device, ("organization", ODS + "  "), ("identifier", SVC + "urn:a")) == ORG_MESSAGE
    assert message(device, ("organization", ODS + "YES"), ("identifier", SVC)) == SVC_MESSAGE


@pytest.mark.parametrize("bad", ["", "fhir", "fhir|", "fhir|value", "https://fhir.nhs.uk/Id/nhsSpineASID|1",
                                 "https://fhir.nhs.uk/Id/nhsEndpointServiceId|x", SVC.upper() + "x"])
def test_invalid_identifier_values(bad: str) -> None:
    assert message(device, ("organization", ODS + "YES"), ("identifier", bad)) == IDENTIFIER_MESSAGE
    assert message(endpoint, ("organization", ODS + "YES"), ("identifier", bad)) == IDENTIFIER_MESSAGE


def test_invalid_organization_and_manufacturer_systems() -> None:
    assert message(device, ("organization", "YES"), ("identifier", SVC + "urn:a")) == ORG_MESSAGE
    assert message(endpoint, ("organization", "x|YES"), ("identifier", SVC + "urn:a")) == ORG_MESSAGE
    assert message(device, ("organization", ODS + "YES"), ("identifier", SVC + "urn:a"),
                   ("manufacturing-organization", "X26")) == (
        "Missing or invalid 'manufacturing-organization' query parameter. "
        "Should be 'manufacturing-organization=https://fhir.nhs.uk/Id/ods-organization-code|value'")


def test_illegal_parameters_in_order_of_appearance() -> None:
    assert message(device, ("_count", "1"), ("organization", "bad")) == "Illegal query parameter '_count'"
    assert message(device, ("organization", "bad"), ("_count", "1")) == ORG_MESSAGE
    assert message(endpoint, ("manufacturing-organization", ODS + "X")) == (
        "Illegal query parameter 'manufacturing-organization'")
    assert message(device, ("use_cpm", "iwanttogetdatafromcpm")) == "Illegal query parameter 'use_cpm'"
    assert message(device, ("Organization", ODS + "YES")) == "Illegal query parameter 'Organization'"


def test_format_is_the_one_addition() -> None:
    assert device(("organization", ODS + "YES"), ("identifier", SVC + "urn:a"), ("_format", "xml")).ods_code == "YES"
    assert search.format_values([("_format", "json"), ("x", "y"), ("_format", "xml")]) == ["json", "xml"]


def test_last_value_per_system_wins_and_value_after_first_bar() -> None:
    query = endpoint(("identifier", SVC + "urn:one"), ("identifier", PK + "A-1"), ("identifier", SVC + "urn:two|x"),
                     ("organization", ODS + "AAA"), ("organization", ODS + "BBB"))
    assert query == EndpointQuery("BBB", "urn:two|x", "A-1")


def test_blank_last_value_does_not_erase_an_earlier_one() -> None:
    query = endpoint(("organization", ODS + "AAA"), ("organization", ODS + " "), ("identifier", SVC + "urn:a"))
    assert query.ods_code == "AAA"


def test_values_are_stripped_but_kept_as_given() -> None:
    assert device(("organization", ODS + " D83078"), ("identifier", SVC + "urn:a ")).ods_code == "D83078"
    assert device(("organization", ODS + "c83007"), ("identifier", SVC + "urn:a")).ods_code == "c83007"


@pytest.mark.parametrize("params, expected", [
    ([("organization", ODS + "O"), ("identifier", SVC + "S"), ("identifier", PK + "P")], EndpointQuery("O", "S", "P")),
    ([("organization", ODS + "O"), ("identifier", PK + "P")], EndpointQuery("O", None, "P")),
    ([("organization", ODS + "O"), ("identifier", SVC + "S")], EndpointQuery("O", "S", None)),
    ([("identifier", SVC + "S"), ("identifier", PK + "P")], EndpointQuery(None, "S", "P")),
])
def test_endpoint_combinations(params: list[tuple[str, str]], expected: EndpointQuery) -> None:
    assert search.parse_endpoint(params) == expected


@pytest.mark.parametrize("params", [
    [], [("organization", ODS + "O")], [("identifier", SVC + "S")], [("identifier", PK + "P")],
    [("organization", ODS + "O"), ("identifier", SVC + " ")],
])
def test_endpoint_rejected_combinations(params: list[tuple[str, str]]) -> None:
    assert message(search.parse_endpoint, params) == COMBINATION_MESSAGE


def test_correlation_id() -> None:
    assert search.valid_correlation_id("6d3d3674-7ce5-11ec-90d6-0242ac120003")
    assert search.valid_correlation_id("6D3D3674-7CE5-11EC-90D6-0242AC120003")
    for bad in ("abc", "6d3d3674-7ce5-11ec-90d6-0242ac12000", "6d3d3674-7ce5-11ec-90d6-0242ac120003x",
                "{6d3d3674-7ce5-11ec-90d6-0242ac120003}", "6d3d36747ce511ec90d60242ac120003"):
        assert not search.valid_correlation_id(bad)
    assert search.invalid_correlation_id().message == (
        "Invalid X-Correlation-ID header. Should be an UUIDv4 matching regex "
        "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'")


@pytest.mark.parametrize("interaction, expected", [
    ("urn:nhs:names:services:gp2gp:COPC_IN000001UK01", search.RELIABLE_INTERMEDIARY),
    ("urn:nhs:names:services:gp2gp:RCMR_IN010000UK05", search.RELIABLE_INTERMEDIARY),
    ("urn:nhs:names:services:ebs:PRSC_IN080000UK03", search.EXPRESS_INTERMEDIARY),
    ("urn:nhs:names:services:psis:REPC_IN150016UK05", None),
    ("urn:nhs:names:services:psis:COPC_IN000001UK01", None),
    ("urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1", None),
    ("COPC_IN000001UK01", None),
    (None, None),
])
def test_forward_intermediary(interaction: str | None, expected: str | None) -> None:
    assert search.forward_intermediary(interaction) == expected
