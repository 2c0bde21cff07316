"""Reproduce published SDS FHIR Bundles from registry records: the research fixtures, inverted into
nhsAs/nhsMhs records, loaded through the registry services, queried and compared.

Fixture values that our columns cannot hold (ASIDs like ``928942012545_second``, ODS codes longer than
nine characters) or that collide with a unique constraint are stored as *surrogates*; the rendered
output is mapped back before comparing. Everything else is stored as given, with ``lenient=True``
where the fixture breaks our strict formats (``org``, ``service:interaction``, trailing slashes).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from sds_registry.config import Settings
from sds_registry.fhir import render, search
from sds_registry.services.accredited_systems import create_accredited_system
from sds_registry.services.mhs import create_mhs
from sds_registry.services.writes import CLI_ACTOR

#: Public SDS FHIR API files copied verbatim from their repositories (tests/data/README.md names each source).
RESEARCH = Path(__file__).resolve().parents[2] / "data" / "sds-fhir-api"
NATIONAL = RESEARCH / "spine-directory-service-api"


def load_json(path: Path) -> Any:
    value = json.loads(path.read_text())
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        for entry in value.get("entry") or []:  # the OpenAPI examples $ref the resource examples
            if isinstance(entry.get("resource"), dict) and "$ref" in entry["resource"]:
                entry["resource"] = json.loads((path.parent / entry["resource"]["$ref"]).read_text())
    return value


def bundle_fixtures() -> list[Path]:
    """Every parseable JSON Bundle or resource list among the research files (WireMock templates that are
    not JSON, CPM's own response format and the OperationOutcome mock are not Bundles and are left out)."""
    found = []
    for path in sorted(RESEARCH.rglob("*.json")):
        if {"query-samples", "cpm-fixtures", "fhir-json-mapper-fixtures"} & set(path.parts):
            continue
        try:
            value = load_json(path)
        except (ValueError, OSError):
            continue
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            found.append(path)
        elif isinstance(value, list) and value and all(
                isinstance(r, dict) and r.get("resourceType") in ("Device", "Endpoint") for r in value):
            found.append(path)
    return found


def _ident(resource: dict[str, Any], system: str) -> str | None:
    return next((i.get("value") for i in resource.get("identifier", []) if i.get("system") == system), None)


def _reference_value(extension: dict[str, Any]) -> str | None:
    value: str | None = extension.get("valueReference", {}).get("identifier", {}).get("value")
    return value


@dataclass
class Surrogates:
    """Stored value -> fixture value, for values the registry cannot store as given."""

    back: dict[str, str] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    forward: dict[tuple[str, str], str] = field(default_factory=dict)

    def asid(self, value: str) -> str:
        if re.fullmatch(r"\d{12}", value):
            return value
        return self._make("asid", value, lambda n: f"99{n:010d}")

    def fit(self, value: Any, length: int) -> Any:
        """``value`` if the column (VARCHAR(length)) holds it, else a short surrogate."""
        if not isinstance(value, str) or len(value) <= length:
            return value
        return self._make(f"fit{length}", value, lambda n: f"S{n:0{length - 1}d}"[:length])

    def ods(self, value: str) -> str:
        return value if len(value) <= 9 else self._make("ods", value, lambda n: f"QZ{n:05d}")

    def unique(self, kind: str, value: str, taken: set[str]) -> str:
        """``value`` unless ``taken`` already holds it (case-insensitively), else a fresh surrogate."""
        if value.lower() not in taken:
            taken.add(value.lower())
            return value
        made = self.alias(value, f"{value}-SURROGATE{next(self.counter)}")
        taken.add(made.lower())
        return made

    def alias(self, value: str, made: str) -> str:
        self.back[made] = value
        return made

    def _make(self, kind: str, value: str, make: Any) -> str:
        key = (kind, value)
        if key not in self.forward:
            made = make(next(self.counter))
            self.forward[key] = made
            self.back[made] = value
        return self.forward[key]

    def restore(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.back.get(value, value)
        if isinstance(value, list):
            return [self.restore(v) for v in value]
        if isinstance(value, dict):
            return {k: self.restore(v) for k, v in value.items()}
        return value


@dataclass
class Loaded:
    path: str  # "Device" or "Endpoint"
    query: str
    resources: list[dict[str, Any]]
    surrogates: Surrogates


def load_device_records(session: Session, devices: list[dict[str, Any]], surrogates: Surrogates) -> str:
    """Each Device -> an nhsAs record; returns the /Device query that finds them all."""
    interactions_common: set[str] | None = None
    owner_ods = None
    for index, resource in enumerate(devices):
        extensions = resource.get("extension", [])
        manufacturer = next((_reference_value(e) for e in extensions
                             if e["url"] == render.MANUFACTURER_EXTENSION), None)
        interactions = [v for e in extensions if e["url"] == render.INTERACTION_EXTENSION
                        if (v := _reference_value(e))]
        owner = resource.get("owner", {}).get("identifier", {}).get("value")
        assert owner, "the registry always gives an AS record an owner (nhsAsClient defaults to nhsIDCode)"
        ods = surrogates.ods(owner)
        owner_ods = owner_ods or ods
        record: dict[str, Any] = {
            "asid": surrogates.asid(_ident(resource, render.ASID_SYSTEM) or f"0000000000{index:02d}"),
            "ods_code": ods,
            "party_key": _ident(resource, render.PARTY_KEY_SYSTEM),
            "interactions": interactions,
            "clients": [ods],
        }
        if manufacturer is not None:
            record["manufacturer_org"] = surrogates.ods(manufacturer)
        create_accredited_system(session, record, CLI_ACTOR, lenient=True)
        interactions_common = set(interactions) if interactions_common is None else interactions_common & set(
            interactions)
    interaction = sorted(interactions_common or {"urn:none"})[0]
    return (f"organization={search.ODS_SYSTEM}|{owner_ods}"
            f"&identifier={search.INTERACTION_SYSTEM}|{interaction}")


def _reliability(resource: dict[str, Any]) -> dict[str, Any]:
    names = {"nhsMHSSyncReplyMode": "sync_reply_mode", "nhsMHSRetryInterval": "retry_interval",
             "nhsMHSRetries": "retries", "nhsMHSPersistDuration": "persist_duration",
             "nhsMHSDuplicateElimination": "duplicate_elimination", "nhsMHSAckRequested": "ack_requested"}
    values: dict[str, Any] = dict.fromkeys(names.values())  # explicit None: no registry defaults
    values["actors"] = []
    for extension in resource.get("extension", []):
        if extension["url"] != render.RELIABILITY_EXTENSION:
            continue
        for part in extension.get("extension", []):
            value = part.get("valueString", part.get("valueInteger"))
            if part["url"] == "nhsMHSActor":
                values["actors"] = [value]
            else:
                values[names[part["url"]]] = value
    return values


#: VARCHAR lengths of the nhsMhs reliability columns (models/message_handling.py).
COLUMN_LENGTHS = {"sync_reply_mode": 30, "ack_requested": 10, "duplicate_elimination": 10, "persist_duration": 30,
                  "retry_interval": 30}


def _without_address(resource: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in resource.items() if k not in ("id", "address")}, sort_keys=True)


def load_endpoint_records(session: Session, endpoints: list[dict[str, Any]], surrogates: Surrogates) -> str:
    """Runs of Endpoints equal but for address -> one nhsMhs record with those endpoint URLs; a forward
    reliable/express interaction gets the intermediary record (at YES) that holds its address."""
    groups: list[list[dict[str, Any]]] = []
    for resource in endpoints:
        if groups and _without_address(groups[-1][-1]) == _without_address(resource):
            groups[-1].append(resource)
        else:
            groups.append([resource])
    pairs: set[tuple[str, str]] = set()
    ids: set[str] = set()
    intermediaries: set[str] = set()
    orgs, interactions, keys = set(), set(), set()
    for index, group in enumerate(groups):
        first = group[0]
        interaction = next((_reference_value(e) for e in first.get("extension", [])
                            if e["url"] == render.INTERACTION_EXTENSION), None)
        assert interaction, "an MHS record has an interaction"
        ods = surrogates.ods(first["managingOrganization"]["identifier"]["value"])
        party_key = _ident(first, render.PARTY_KEY_SYSTEM)
        assert party_key
        stored_key = party_key
        if (party_key.lower(), interaction) in pairs:  # UNIQUE (party key, interaction) in nhsMhs
            stored_key = surrogates.alias(party_key, f"QZ{index:03d}-99999")
        pairs.add((stored_key.lower(), interaction))
        cpa_id = _ident(first, render.CPA_ID_SYSTEM)
        mhs_id = _ident(first, render.MHS_ID_SYSTEM)
        assert cpa_id and mhs_id, "the registry always has a CPA id and a unique identifier"
        addresses = [r["address"] for r in group if "address" in r]
        intermediary = search.forward_intermediary(interaction)
        if intermediary is not None:
            if intermediary not in intermediaries:
                intermediaries.add(intermediary)
                create_mhs(session, {
                    "ods_code": Settings().spine_core_ods_code, "party_key": "YES-0000999",
                    "interaction_id": intermediary,
                    "endpoints": addresses, "cpa_id": f"intermediary{len(intermediaries)}",
                }, CLI_ACTOR, lenient=True)
            addresses = [f"https://registered-{index}.example.nhs.uk/own-address"]
        record = {
            "ods_code": ods, "party_key": stored_key, "interaction_id": interaction, "endpoints": addresses,
            "fqdn": _ident(first, render.FQDN_SYSTEM),
            "cpa_id": surrogates.unique("cpa", cpa_id, ids) if cpa_id != mhs_id else None,
            "unique_identifier": surrogates.unique("cpa", mhs_id, ids),
            **{name: surrogates.fit(value, COLUMN_LENGTHS.get(name, 10**6))
               for name, value in _reliability(first).items()},
        }
        if record["cpa_id"] is None:
            record["cpa_id"] = record["unique_identifier"]
        create_mhs(session, {k: v for k, v in record.items() if k != "fqdn" or v is not None},
                   CLI_ACTOR, lenient=True)
        orgs.add(ods)
        interactions.add(interaction)
        keys.add(stored_key)
    org = sorted(orgs)[0]
    if len(interactions) == 1:
        return f"organization={search.ODS_SYSTEM}|{org}&identifier={search.INTERACTION_SYSTEM}|{interactions.pop()}"
    assert len(keys) == 1, "one query must find every record"
    return f"organization={search.ODS_SYSTEM}|{org}&identifier={search.PARTY_KEY_SYSTEM}|{keys.pop()}"


def load_fixture(session: Session, path: Path) -> Loaded:
    value = load_json(path)
    resources = value if isinstance(value, list) else [e["resource"] for e in value.get("entry") or []]
    surrogates = Surrogates()
    kinds = {r["resourceType"] for r in resources}
    if not resources:
        return Loaded("Endpoint", f"organization={search.ODS_SYSTEM}|NONE01&identifier={search.INTERACTION_SYSTEM}"
                      "|urn:nhs:names:services:none", [], surrogates)
    assert len(kinds) == 1
    if kinds == {"Device"}:
        return Loaded("Device", load_device_records(session, resources, surrogates), resources, surrogates)
    return Loaded("Endpoint", load_endpoint_records(session, resources, surrogates), resources, surrogates)


UUID_UPPER = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")


def normalised(value: Any) -> Any:
    """A Bundle or resource with its random ids, fullUrls and self link replaced by placeholders."""
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in ("id", "fullUrl") and isinstance(item, str):
            out[key] = "<ID>"
        elif key == "link":
            out[key] = [{**link, "url": "<URL>"} for link in item]
        else:
            out[key] = normalised(item)
    return out
