"""The throughput query set: GP Connect consumer flows with expected entry counts. Pure; no server.

A flow is the two lookups GP Connect documents: step 1
``(&(nhsIDCode=ODS)(objectClass=nhsMhs)(nhsMhsSvcIA=ID))`` for endpoint and party key, step 2
``(&(nhsIDCode=ODS)(objectClass=nhsAs)(nhsMHSPartyKey=PK))`` for the ASID. About 5% of flows miss: an
unknown ODS code, an interaction the practice lacks, the ODS code in lower case (caseExact), or a wrong
party key. Expected counts follow the schema's EQUALITY rules (rules.equality_key).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .data import Record
from .rules import equality_key, escape

STEP1 = "(&(nhsIDCode={ods})(objectClass=nhsMhs)(nhsMhsSvcIA={interaction}))"
STEP2 = "(&(nhsIDCode={ods})(objectClass=nhsAs)(nhsMHSPartyKey={party_key}))"
#: One attribute list serves both steps (ldapsearch -f takes one list for the whole batch).
ATTRIBUTES = ("nhsMHSEndPoint", "nhsMHSPartyKey", "uniqueIdentifier")
#: How often consumers call each interaction, relative to 1 for the rest.
POPULAR = {
    "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1": 25,
    "urn:nhs:names:services:gpconnect:fhir:rest:search:patient-1": 12,
    "urn:nhs:names:services:gpconnect:fhir:rest:search:slot-1": 8,
    "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1": 8,
    "urn:nhs:names:services:gpconnect:documents:fhir:rest:search:documentreference-1": 4,
    "urn:nhs:names:services:gpconnect:fhir:rest:create:appointment-1": 3,
}


@dataclass(frozen=True)
class Query:
    """One search of the load: its filter and how many entries the right answer has."""

    filter: str
    expect: int


class _Index:
    """Entry counts per (step, key values as the EQUALITY rules see them)."""

    def __init__(self, records: list[Record]) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        for r in records:
            ods = equality_key("nhsIDCode", r.first("nhsIDCode"))
            if r.kind == "mhs":
                self.counts["mhs", ods, equality_key("nhsMhsSvcIA", r.first("nhsMhsSvcIA"))] += 1
            else:
                self.counts["as", ods, equality_key("nhsMHSPartyKey", r.first("nhsMHSPartyKey"))] += 1

    def step1(self, ods: str, interaction: str) -> Query:
        key = ("mhs", equality_key("nhsIDCode", ods), equality_key("nhsMhsSvcIA", interaction))
        return Query(STEP1.format(ods=escape(ods), interaction=escape(interaction)), self.counts[key])

    def step2(self, ods: str, party_key: str) -> Query:
        key = ("as", equality_key("nhsIDCode", ods), equality_key("nhsMHSPartyKey", party_key))
        return Query(STEP2.format(ods=escape(ods), party_key=escape(party_key)), self.counts[key])


def consumer_flows(records: list[Record], count: int, seed: int = 1, misses: float = 0.05) -> list[Query]:
    """``count`` searches: flows of step 1 then step 2 (a miss at step 1 stops the flow)."""
    rng = random.Random(seed)
    index = _Index(records)
    serves: dict[str, list[str]] = {}
    party: dict[str, str] = {}
    for r in records:
        if r.kind == "mhs":
            serves.setdefault(r.first("nhsIDCode"), []).append(r.first("nhsMhsSvcIA"))
            party[r.first("nhsIDCode")] = r.first("nhsMHSPartyKey")
    practices = sorted(serves)
    if len(practices) < 2:
        raise ValueError("the data needs at least two practices with nhsMhs entries")
    everything = sorted({ia for ias in serves.values() for ia in ias})
    known = {r.first("nhsIDCode") for r in records}
    out: list[Query] = []
    while len(out) < count:
        ods = rng.choice(practices)
        offered = serves[ods]
        interaction = rng.choices(offered, weights=[POPULAR.get(ia, 1) for ia in offered])[0]
        party_key = party[ods]
        if rng.random() < misses:
            kind = rng.randrange(4)
            if kind == 0:
                ods = next(c for c in (f"Z{rng.randrange(10**5):05d}" for _ in range(1000)) if c not in known)
            elif kind == 1:
                lacking = [ia for ia in everything if ia not in offered]
                interaction = rng.choice(lacking) if lacking else interaction + "-retired"
            elif kind == 2:
                ods = ods.lower()
            else:
                out.append(index.step1(ods, interaction))
                out.append(index.step2(ods, party[rng.choice([p for p in practices if p != ods])]))
                continue
            out.append(index.step1(ods, interaction))
            continue
        elif rng.random() < 0.03:
            party_key = party_key.lower()  # caseIgnore: still a hit
        out.append(index.step1(ods, interaction))
        out.append(index.step2(ods, party_key))
    return out[:count]


def write(queries: list[Query], path: Path) -> None:
    path.write_text("".join(json.dumps({"filter": q.filter, "expect": q.expect}) + "\n" for q in queries))


def read(path: Path) -> list[Query]:
    return [Query(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
