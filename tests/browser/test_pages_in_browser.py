"""The web pages in Chromium against a real ``sds serve``: search and browse (keyboard and a phone's width),
a registration seen at once by LDAP and the SDS FHIR API, a refused one with the rule beside its field, and the
SSP page after a refused call. Screenshots: see conftest.py."""

from __future__ import annotations

import shlex
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from tests.conftest import make_token
from tests.support.ldap import ldapsearch
from tests.support.serving import Running

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"
STRUCTURED = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"


def sign_in(page: Any, token: str) -> None:
    page.goto("/register")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("Signed in with the API token").wait_for()


def test_search_and_browse_by_keyboard_and_on_a_phone(seeded: Engine, page: Any, artefacts: Path) -> None:
    errors: list[str] = []  # the console's errors: a blocked script or style (CSP) would show here
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("ODS code, ASID, party key, interaction ID, FQDN or CPA id").fill("A20047")
    page.keyboard.press("Enter")
    page.get_by_role("link", name="918999198993").first.wait_for()
    page.screenshot(path=str(artefacts / "search.png"), full_page=True)
    page.get_by_role("link", name="918999198993").first.focus()
    page.keyboard.press("Enter")  # follow the link by keyboard
    page.wait_for_url("**/systems/918999198993")
    assert page.get_by_role("heading", name="System 918999198993").is_visible()
    assert page.get_by_text(METADATA).first.is_visible()
    page.get_by_role("link", name="A20047").first.click()
    page.wait_for_url("**/organisations/A20047")
    summary = page.get_by_text("How a consumer finds this endpoint").first
    summary.click()
    assert page.get_by_text("ldapsearch -x -H ldap://").first.is_visible()
    page.screenshot(path=str(artefacts / "organisation.png"), full_page=True)
    page.set_viewport_size({"width": 360, "height": 740})  # a phone: nothing wider than the screen
    page.goto("/organisations/A20047")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(artefacts / "organisation-phone.png"))  # the first screenful
    page.get_by_text("How a consumer finds this endpoint").first.click()
    assert page.get_by_role("button", name="Copy").first.is_visible()  # pages.js ran
    assert errors == []


def test_a_registration_is_in_ldap_and_fhir_at_once(seeded: Engine, web_server: Running, page: Any,
                                                     artefacts: Path) -> None:
    sign_in(page, make_token(seeded, "browser-b86041", ods=("B86041",)))
    page.get_by_role("link", name="Register a provider").click()
    page.get_by_label("ODS code of the practice").fill("B86041")
    page.get_by_label("FQDN of the provider's FHIR server").fill("gp.browser-test.nhs.uk")
    page.get_by_role("button", name="Register").click()
    page.get_by_role("status").wait_for()
    page.screenshot(path=str(artefacts / "registered.png"), full_page=True)
    assert "Registered provider" in page.get_by_role("status").inner_text()
    expected = "https://gp.browser-test.nhs.uk/B86041/STU3/1/gpconnect/structured"
    assert page.get_by_text(expected).first.is_visible()
    # The organisation page's ldapsearch, as copied, finds the new endpoint.
    page.goto("/organisations/B86041")
    call = page.locator("section.mhs", has_text=STRUCTURED).locator("pre").first.text_content() or ""
    words = shlex.split(call)
    assert words[:2] == ["ldapsearch", "-x"], call
    found = ldapsearch(words[2:])
    assert found.returncode == 0 and f"nhsMhsEndPoint: {expected}" in found.stdout, (call, found)
    fhir = httpx.get(f"{web_server.http_url}/spine-directory/FHIR/R4/Endpoint", params={
        "organization": "https://fhir.nhs.uk/Id/ods-organization-code|B86041",
        "identifier": f"https://fhir.nhs.uk/Id/nhsServiceInteractionId|{STRUCTURED}"},
        headers={"Accept": "application/fhir+json"})
    assert fhir.status_code == 200 and expected in fhir.text


def test_a_refused_registration_shows_the_rule_beside_the_field(seeded: Engine, page: Any, artefacts: Path) -> None:
    sign_in(page, make_token(seeded, "browser-admin", admin=True))
    page.goto("/register/provider")
    page.get_by_label("ODS code of the practice").fill("B86041")
    page.get_by_label("FQDN of the provider's FHIR server").fill("gp.browser-test.nhs.uk")
    page.get_by_label("GP Connect major version").fill("v1")
    page.get_by_role("button", name="Register").click()
    error = page.locator("#gpc_major_version-error")
    error.wait_for()
    page.screenshot(path=str(artefacts / "refused.png"), full_page=True)
    assert "must be an integer" in error.inner_text() and "rule: gpc-major-version" in error.inner_text()
    assert page.get_by_label("GP Connect major version").get_attribute("aria-invalid") == "true"
    assert page.get_by_role("alert").is_visible()
    page.goto("/?q=B86041")
    assert page.get_by_text("gp.browser-test.nhs.uk").count() == 0  # nothing stored


def test_the_ssp_page_explains_a_refused_call(seeded: Engine, web_server: Running, page: Any,
                                              artefacts: Path) -> None:
    trace = str(uuid.uuid4())
    refused = httpx.get(
        f"http://127.0.0.1:{web_server.ssp}/https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect/metadata",
        headers={"Ssp-TraceID": trace, "Ssp-From": "111111111111", "Ssp-To": "918999198993",
                 "Ssp-InteractionID": METADATA, "Authorization": "Bearer x.y.", "Accept": "application/fhir+json"})
    assert refused.status_code == 403
    deadline = time.monotonic() + 15  # the SSP's audit writer records in batches
    while True:
        page.goto(f"/ssp?trace_id={trace}")
        if page.get_by_text(trace).count() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    row = page.locator("tr", has_text=trace)
    assert "ASID_CHECK_FAILED_MESSAGESENDER_111111111111" in row.inner_text()
    assert "the sender, ASID 111111111111, has no accredited system listing this interaction" in row.inner_text()
    page.goto("/ssp?outcome=refused")
    assert page.locator("svg.chart rect").count() >= 1  # the last hour's chart has the refusal's bar
    assert page.locator("ul.legend li", has_text="sender not accredited: ").is_visible()
    page.screenshot(path=str(artefacts / "ssp.png"), full_page=True)
