"""The web pages' pure parts: the SDS_WEB settings, search classification, refusals and flags in words, the
consumer calls, and the SVG chart."""

from __future__ import annotations

import os
import shlex
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from sds_registry.config import load_settings
from sds_registry.errors import ConfigError, InvalidIdentifier
from sds_registry.services.activity import outcome_kind
from sds_registry.services.browse import classify
from sds_registry.web.pages.calls import consumer_calls, ldap_escape, ldap_url
from sds_registry.web.pages.chart import per_minute_svg
from sds_registry.web.pages.explain import flag, mhs_status, refusal

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def test_sds_web_is_off_by_default_and_checked() -> None:
    assert load_settings(environ={}).web is False
    with pytest.raises(ConfigError, match="SDS_WEB: expected a boolean, got 'sometimes'"):
        load_settings(environ={"SDS_WEB": "sometimes"})
    with pytest.raises(ConfigError, match="SDS_WEB_SECRET_KEY: too short"):
        load_settings(environ={"SDS_WEB": "1", "SDS_WEB_SECRET_KEY": "short"})
    given = "k" * 32
    assert load_settings(environ={"SDS_WEB": "1", "SDS_WEB_SECRET_KEY": given}).web_secret_key == given


def test_an_unset_secret_key_is_made_once_and_handed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDS_WEB", "1")
    monkeypatch.delenv("SDS_WEB_SECRET_KEY", raising=False)
    first = load_settings().web_secret_key
    assert len(first) >= 32 and os.environ["SDS_WEB_SECRET_KEY"] == first  # what child processes inherit
    assert load_settings().web_secret_key == first
    assert load_settings(environ={"SDS_WEB": "1"}).web_secret_key != first  # an explicit environ is left alone


@pytest.mark.parametrize(("text", "kind", "value"), [
    (" a20047 ", "ods", "A20047"), ("918999198993", "asid", "918999198993"), ("t99999-9999999", "party_key",
                                                                               "T99999-9999999"),
    (METADATA, "interaction", METADATA), ("Orange.TestLab.nhs.uk.", "fqdn", "orange.testlab.nhs.uk"),
    ("472b35d4641b76454b13", "cpa_id", "472b35d4641b76454b13"),
])
def test_a_search_is_classified_by_its_shape(text: str, kind: str, value: str) -> None:
    query = classify(text)
    assert (query.kind, query.value) == (kind, value)


@pytest.mark.parametrize("text", ["", "   ", "a!", "ab", "x" * 65, "a b c", "bad..host"])
def test_an_unreadable_search_names_the_forms_it_takes(text: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        classify(text)
    assert caught.value.issues[0].field == "q"


@pytest.mark.parametrize(("token", "words", "kind"), [
    ("ALLOWED", "Allowed", "allowed"),
    ("ASID_CHECK_FAILED_MESSAGESENDER_200000000359", "the sender, ASID 200000000359, has no accredited system",
     "sender not accredited"),
    ("PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_918999198993", "the receiver, ASID 918999198993, has no MHS",
     "receiver has no endpoint"),
    ("ENDPOINT_https://a/A1/STU3/1_CPAID_c1_VARIES_FROM_TARGETURL_https://b/x",
     "the target URL https://b/x is neither the receiver's registered endpoint https://a/A1/STU3/1 (CPA id c1)",
     "target URL"),
    ("FOT_CHECK_FAILED_MESSAGESENDER_1_MESSAGERECEIVER_2", "no data-sharing agreement", "no data-sharing agreement"),
    ("INVALID_JWT_CLAIM_MISSING_aud", "breaks the rule claim missing aud", "audit JWT"),
    ("MISSING_OR_INVALID_HEADER_Ssp-From", "the Ssp-From header was missing or malformed", "bad request"),
    ("METHOD_DELETE_NOT_ALLOWED_FOR_INTERACTION", "DELETE is not the HTTP method", "method"),
    ("ERROR_COMMUNICATING_TO_ENDPOINT_URL_https://p/x", "could not be reached", "provider unreachable"),
    ("SOMETHING_NEW", "Refused with the token SOMETHING_NEW", "other"),
])
def test_each_ssp_outcome_is_explained_and_charted_by_kind(token: str, words: str, kind: str) -> None:
    assert words in refusal(token)
    assert outcome_kind(token) == kind


def test_flags_and_endpoint_rules_in_words() -> None:
    assert flag("endpoints[0]:no-trailing-slash") == "endpoints[0] ends with '/' (a service root URL must not)"
    assert flag("nhsFoo:some-rule") == "nhsFoo breaks the rule 'some-rule'"
    assert mhs_status("A20047", METADATA, ["https://h.nhs.uk/A20047/STU3/1/gpconnect"], None) == []
    problems = mhs_status("A20047", METADATA, ["https://h.nhs.uk/A20047/stu3/1/"],
                          "endpoints[0]:no-trailing-slash endpoints[0]:fhir-version-uppercase product_key:format")
    assert problems == ["endpoints[0]: the service root URL must not end with '/'",
                        "endpoints[0]: the FHIR version name 'stu3' must be upper case ('STU3')",
                        "product_key breaks its format rule"]
    assert mhs_status("YES", "urn:nhs:names:services:psis:MCCI_IN010000UK13", ["https://x/"], None) == []


def test_consumer_calls_are_valid_shell_words() -> None:
    calls = consumer_calls(http_base="http://127.0.0.1:8080", ldap_url="ldap://127.0.0.1:1389", ods_code="A20047",
                           interaction_id=METADATA, party_key="A20047-821870")
    assert [shlex.split(c.command)[0] for c in calls] == ["ldapsearch", "ldapsearch", "curl", "curl", "curl"]
    assert shlex.split(calls[0].command)[6] == f"(&(nhsIDCode=A20047)(objectClass=nhsMhs)(nhsMhsSvcIA={METADATA}))"
    assert shlex.split(calls[4].command)[1] == f"http://127.0.0.1:8080/api/resolve?ods=A20047&interaction={METADATA}"
    assert len(consumer_calls(http_base="http://h", ldap_url=None, ods_code="A1", interaction_id=METADATA,
                              party_key="A1-12345")) == 3
    assert ldap_escape("a*(b)\\") == "a\\2a\\28b\\29\\5c"
    assert ldap_url("0.0.0.0:1389", "", "sds.example") == "ldap://sds.example:1389"
    assert ldap_url("", "[::1]:1636", "h") == "ldaps://[::1]:1636"
    assert ldap_url("", "", "h") is None


def test_the_chart_is_well_formed_svg_with_escaped_text() -> None:
    start = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    svg = per_minute_svg(start, {"allowed": [1, 0, 3], "audit JWT": [0, 2, 0], "<other>": [1, 1, 1]}, 3)
    root = ET.fromstring(svg)
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 6  # one per non-zero count
    assert "&lt;other&gt;" in svg and "<other>" not in svg
    assert "10:00 to 10:03 UTC: 9 in all" in svg
    empty = ET.fromstring(per_minute_svg(start, {}, 60))
    assert empty.findall("{http://www.w3.org/2000/svg}rect") == []
