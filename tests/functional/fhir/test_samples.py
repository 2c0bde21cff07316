"""Real traffic: CPM's 511 SDS FHIR API query samples (plus its percent-encoded and invalid ones) against a
directory holding a record for every organisation they name. No 5xx; every answer valid."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from sds_registry.fhir import search
from sds_registry.services.accredited_systems import create_accredited_system
from sds_registry.services.mhs import create_mhs
from sds_registry.services.writes import CLI_ACTOR
from tests.functional.fhir.fixtures import RESEARCH
from tests.functional.fhir.validation import check_response

SAMPLES = RESEARCH / "connecting-party-manager" / "sds-query-samples"
BASE = "/spine-directory/FHIR/R4"


def _samples(name: str) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = json.loads((SAMPLES / name).read_text())
    return value


def _params(sample: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, values in sample.items():
        if key.startswith("request.params."):
            for value in values if isinstance(values, list) else [values]:
                out.append((key.removeprefix("request.params."), value))
    return out


def _value(params: list[tuple[str, str]], name: str, system: str) -> str | None:
    found = [v.split("|", 1)[1].strip() for n, v in params if n == name and v.startswith(system + "|")]
    return found[-1] if found else None


def _load_directory(session: Session, samples: list[dict[str, Any]]) -> int:
    """One AS record per organisation in the samples, accredited for the interactions asked of it, and one
    MHS record per (organisation, interaction); party keys as the samples give them."""
    wanted: dict[str, dict[str, Any]] = {}
    for sample in samples:
        params = _params(sample)
        ods = _value(params, "organization", search.ODS_SYSTEM)
        if not ods:
            continue
        entry = wanted.setdefault(ods, {"interactions": [], "party_key": None, "manufacturer": None})
        interaction = _value(params, "identifier", search.INTERACTION_SYSTEM)
        if interaction and interaction not in entry["interactions"]:
            entry["interactions"].append(interaction)
        entry["party_key"] = _value(params, "identifier", search.PARTY_KEY_SYSTEM) or entry["party_key"]
        entry["manufacturer"] = _value(params, "manufacturing-organization", search.ODS_SYSTEM) or entry["manufacturer"]
    used: set[str] = set()
    for n, (ods, entry) in enumerate(sorted(wanted.items())):
        party_key = entry["party_key"] or f"{ods}-8{n:05d}"
        if party_key.lower() in used:  # the sample reuses a party key under another organisation
            party_key = f"{ods}-9{n:05d}"
        used.add(party_key.lower())
        interactions = entry["interactions"] or ["urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"]
        system: dict[str, Any] = {"asid": f"9{n:011d}", "ods_code": ods, "party_key": party_key,
                                  "interactions": interactions}
        if entry["manufacturer"]:
            system["manufacturer_org"] = entry["manufacturer"]
        create_accredited_system(session, system, CLI_ACTOR, lenient=True)
        for i, interaction in enumerate(interactions):
            create_mhs(session, {
                "ods_code": ods, "party_key": party_key, "interaction_id": interaction,
                "cpa_id": f"sample{n:04d}x{i:02d}",
                "endpoints": [f"https://gpc.sample-{n % 7}.thirdparty.nhs.uk/{ods}/STU3/1/gpconnect"],
            }, CLI_ACTOR, lenient=True)
    session.commit()
    return len(wanted)


def _url(sample: dict[str, Any], *, encode: bool) -> str:
    params = _params(sample)
    text = "&".join(f"{n}={quote(v, safe='') if encode else v}" for n, v in params)
    return f"{BASE}{sample['path']}?{text}"


def test_real_query_samples(client: FlaskClient, committed_session: Session) -> None:
    samples = _samples("sds_fhir_api.speed_test_queries.device.json")
    assert len(samples) == 511
    assert _load_directory(committed_session, samples) > 400
    statuses: Counter[int] = Counter()
    empty = []
    for sample in samples:
        response = client.get(_url(sample, encode=True), headers={"X-Correlation-Id": "6d3d3674-7ce5-11ec-90d6-"
                                                                                      "0242ac120003"})
        statuses[response.status_code] += 1
        assert response.status_code < 500, (sample, response.get_data(as_text=True))
        body = check_response(sample["path"].strip("/"), response)
        if response.status_code == 200 and not body["entry"]:
            empty.append(sample)
    # The invalid shapes in the sample: Device without organization or without the interaction identifier,
    # Endpoint with a single parameter.
    assert statuses[400] == 5 and statuses[200] == 506, statuses
    # Only lower-case ODS codes (nhsIDCode is caseExact, as in SDS) find nothing.
    assert all(any(v != v.upper() for n, v in _params(s) if n == "organization") for s in empty), empty


def test_encoded_failed_and_invalid_samples(client: FlaskClient, committed_session: Session) -> None:
    """CPM's "failed" samples hold values percent-encoded by the client: on the wire as they are (decoded
    once by us: found) and encoded once more (decoded to text with %XX in it: 400, never a 5xx)."""
    failed = _samples("sds_fhir_api.failed_queries.device.json")
    errors = _samples("sds_fhir_queries_errors.json")
    for sample in failed + errors:
        for encode in (False, True):
            response = client.get(_url(sample, encode=encode))
            assert response.status_code in (200, 400), (sample, encode, response.get_data(as_text=True))
            check_response(sample["path"].strip("/"), response)
            if encode and any("%" in v for _, v in _params(sample)):
                assert response.status_code == 400
    for sample in errors:  # FOOBAR / missing parameters: 400 or an empty searchset
        response = client.get(_url(sample, encode=False))
        assert response.status_code == 400 or json.loads(response.get_data())["total"] == 0
