"""Synthetic SDS directory for the slapd comparison: seeded records -> LDIF + JSONL. No server, no network.

    python -m bench.ldapkit.data --practices N [--seed 42] --out DIR

Per GP practice (ODS code: a letter and five digits) one provider nhsAs, accredited for the GP Connect
interactions it serves, and one nhsMhs per interaction whose nhsMHSEndPoint is the capability's service
root (https://<fqdn>/<ODS>/STU3/1/gpconnect, .../gpconnect/structured, .../gpconnect/documents). All of a
practice's records share one party key. Consumer systems are nhsAs entries of other organisations with the
interactions they may send and the practices they serve (nhsAsClient). No nhsOrg entries: the slapd schema
has no such class. Values pass `sds import` without --lenient. Output depends only on (practices, seed,
consumers); everything is drawn from one random.Random in a fixed order.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sds_registry.domain.interactions import CATALOGUE, ROUTING_SEGMENTS, split_service_interaction

BASE = "ou=Services,o=nhs"
ROOTS = "dn: o=nhs\nobjectClass: top\nobjectClass: organization\no: nhs\n\n" + (
    f"dn: {BASE}\nobjectClass: top\nobjectClass: organizationalUnit\nou: Services\n\n"
)

#: Capability -> share of practices offering it. Foundations is always there.
OFFERED = {"foundations": 1.0, "appointments": 0.85, "structured": 0.9, "documents": 0.7}
#: Interactions a practice offering the capability serves only sometimes, with that probability.
OPTIONAL = {
    "urn:nhs:names:services:gpconnect:fhir:operation:gpc.registerpatient-1": 0.25,
    "urn:nhs:names:services:gpconnect:fhir:operation:gpc.migratestructuredrecord-1": 0.5,
    "urn:nhs:names:services:gpconnect:documents:fhir:rest:migrate:binary-1": 0.35,
}


@dataclass(frozen=True)
class Supplier:
    ods: str
    product: str
    versions: tuple[str, ...]
    host: str
    share: float


PROVIDERS = (
    Supplier("YGM11", "Alder Clinical", ("4.1", "4.2.3"), "gpc.alder-clinical.thirdparty.nhs.uk", 0.5),
    Supplier("YGM12", "Birch Primary Care", ("19.0", "20.1"), "fhir.birch.thirdparty.nhs.uk", 0.3),
    Supplier("YGM13", "Cedar Practice Manager", ("2.0.7",), "api.cedar-pm.thirdparty.nhs.uk", 0.15),
    Supplier("YGM14", "Damson GP", ("1.3",), "damson.thirdparty.nhs.uk", 0.05),
)
CONSUMERS = (
    Supplier("YGC21", "Elder Care Record Viewer", ("3.1", "3.2"), "", 0.5),
    Supplier("YGC22", "Fig Appointments Hub", ("1.0",), "", 0.3),
    Supplier("YGC23", "Gorse Urgent Care", ("7.4.1",), "", 0.2),
)
FIRST_DAY = datetime(2016, 4, 1)
SPAN_S = 8 * 365 * 86400


@dataclass
class Record:
    """One directory entry: its kind ('as' or 'mhs') and attributes in LDIF order, values as lists."""

    kind: str
    attrs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def dn(self) -> str:
        return f"uniqueIdentifier={self.attrs['uniqueIdentifier'][0]},{BASE}"

    def first(self, name: str) -> str:
        return self.attrs[name][0]

    def ldif(self) -> str:
        lines = [f"dn: {self.dn}", "objectClass: top", f"objectClass: {'nhsAs' if self.kind == 'as' else 'nhsMhs'}"]
        lines += [f"{name}: {value}" for name, values in self.attrs.items() for value in values]
        return "\n".join(lines) + "\n\n"

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "dn": self.dn, "attrs": self.attrs}, separators=(",", ":"))


class _Draw:
    """The one random stream, and the identifiers already handed out (ASIDs and CPA ids are unique)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[str] = set()

    def fresh(self, make: str, bits: int) -> str:
        while True:
            value = make.format(self.rng.getrandbits(bits))
            if value not in self.used:
                self.used.add(value)
                return value

    def asid(self) -> str:
        return self.fresh("{:012d}", 39)[-12:]  # 39 bits < 10**12: about a tenth start with 0

    def cpa_id(self) -> str:
        return self.fresh("{:032x}", 128)

    def supplier(self, choices: tuple[Supplier, ...]) -> Supplier:
        return self.rng.choices(choices, weights=[s.share for s in choices])[0]

    def approval(self) -> dict[str, list[str]]:
        asked = FIRST_DAY + timedelta(seconds=self.rng.randrange(SPAN_S))
        done = asked + timedelta(seconds=self.rng.randrange(30, 7200))
        urp = self.urp()
        return {
            "nhsRequestorURP": [urp],
            "nhsDateRequested": [asked.strftime("%Y%m%d%H%M%S")],
            "nhsApproverURP": ["System" if self.rng.random() < 0.25 else self.urp()],
            "nhsDateApproved": [done.strftime("%Y%m%d%H%M%S")],
        }

    def urp(self) -> str:
        a, b, c = (self.rng.randrange(10**11, 10**12) for _ in range(3))
        return f"uniqueidentifier={a},uniqueidentifier={b},uid={c},ou=people, o=nhs"


def _practice_codes(rng: random.Random, count: int) -> list[str]:
    letters = "ABCDEFGHJKLMNPY"  # practice-like prefixes; R.. is left to the consumers
    space = len(letters) * 100_000
    if count > space:
        raise SystemExit(f"at most {space} practices")
    return [f"{letters[n // 100_000]}{n % 100_000:05d}" for n in rng.sample(range(space), count)]


def _served(rng: random.Random) -> list[tuple[str, str]]:
    """(interaction, routing segment) pairs one practice serves."""
    out = []
    for capability, share in OFFERED.items():
        if rng.random() >= share:
            continue
        for item in CATALOGUE:
            if item.capability == capability and item.current and rng.random() < OPTIONAL.get(item.id, 1.0):
                out.append((item.id, ROUTING_SEGMENTS[capability]))
    return out


def generate(practices: int, seed: int = 42, consumers: int | None = None) -> list[Record]:
    """The records, practices first (AS then its MHS entries), consumers last."""
    return list(stream(practices, seed, consumers))


def stream(practices: int, seed: int = 42, consumers: int | None = None) -> Iterator[Record]:
    """generate()'s records one at a time (memory holds the practice codes and the identifiers handed out, not
    the records: 100,000 practices are about two million entries)."""
    draw = _Draw(seed)
    rng = draw.rng
    codes = _practice_codes(rng, practices)
    for ods in codes:
        who = draw.supplier(PROVIDERS)
        served = _served(rng)
        party_key = f"{ods}-{rng.randrange(10**6):06d}"
        product_key = str(rng.randrange(1000, 99999))
        yield (
            Record(
                "as",
                {
                    "uniqueIdentifier": [draw.asid()],
                    "nhsIDCode": [ods],
                    "nhsMHSPartyKey": [party_key],
                    "nhsAsSvcIA": [ia for ia, _ in served],
                    "nhsAsClient": [ods],
                    "nhsMhsManufacturerOrg": [who.ods],
                    "nhsProductKey": [product_key],
                    "nhsProductName": [who.product],
                    "nhsProductVersion": [rng.choice(who.versions)],
                    **draw.approval(),
                },
            )
        )
        approval = draw.approval()
        for ia, segment in served:
            cpa = draw.cpa_id()
            service, name = split_service_interaction(ia)
            yield (
                Record(
                    "mhs",
                    {
                        "uniqueIdentifier": [cpa],
                        "nhsIDCode": [ods],
                        "nhsMHSPartyKey": [party_key],
                        "nhsMhsSvcIA": [ia],
                        "nhsMHsSN": [service],
                        "nhsMHsIN": [name],
                        "nhsMHSEndPoint": [f"https://{who.host}/{ods}/STU3/1/{segment}"],
                        "nhsMhsFQDN": [who.host],
                        "nhsMhsCPAId": [cpa],
                        "nhsMHSIsAuthenticated": ["none"],
                        "nhsMHSSyncReplyMode": ["None"],
                        "nhsMHSAckRequested": ["never"],
                        "nhsMHSDuplicateElimination": ["never"],
                        "nhsMHSPersistDuration": ["PT5M"],
                        "nhsMHSRetries": ["0"],
                        "nhsMHSRetryInterval": ["PT1M"],
                        "nhsEPInteractionType": ["FHIR"],
                        "nhsContractPropertyTemplateKey": ["14"],
                        "nhsMhsManufacturerOrg": [who.ods],
                        "nhsProductKey": [product_key],
                        **approval,
                    },
                )
            )
    sendable = [item.id for item in CATALOGUE]
    for org in _consumer_codes(rng, max(3, practices // 40) if consumers is None else consumers):
        who = draw.supplier(CONSUMERS)
        sends = [ia for ia in sendable if rng.random() < 0.45] or sendable[:1]
        clients = rng.sample(codes, min(len(codes), rng.randrange(1, 30)))
        yield (
            Record(
                "as",
                {
                    "uniqueIdentifier": [draw.asid()],
                    "nhsIDCode": [org],
                    "nhsMHSPartyKey": [f"{org}-{rng.randrange(10**6):06d}"],
                    "nhsAsSvcIA": sends,
                    "nhsAsClient": [org, *clients],
                    "nhsMhsManufacturerOrg": [who.ods],
                    "nhsProductKey": [str(rng.randrange(100, 999))],
                    "nhsProductName": [who.product],
                    "nhsProductVersion": [rng.choice(who.versions)],
                    **draw.approval(),
                },
            )
        )


def _consumer_codes(rng: random.Random, count: int) -> Iterator[str]:
    """Trust-like codes R + two characters, then R + four once the short ones run low."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    seen: set[str] = set()
    while len(seen) < count:
        code = "R" + "".join(rng.choice(alphabet) for _ in range(2 if len(seen) < 600 else 4))
        if code not in seen:
            seen.add(code)
            yield code


def write(records: list[Record], out: Path) -> tuple[Path, Path]:
    """DIR/sds.ldif (roots first) and DIR/sds.jsonl (one record a line); returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    ldif, jsonl = out / "sds.ldif", out / "sds.jsonl"
    ldif.write_text(ROOTS + "".join(r.ldif() for r in records), encoding="utf-8")
    jsonl.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    return ldif, jsonl


def write_ldif(records: Iterable[Record], path: Path) -> int:
    """``records`` (a stream) as one LDIF file, roots first, written as they come; returns the entry count."""
    count = 2
    with path.open("w", encoding="utf-8") as out:
        out.write(ROOTS)
        for r in records:
            out.write(r.ldif())
            count += 1
    return count


def load(jsonl: Path) -> list[Record]:
    """The records back from sds.jsonl."""
    out = []
    for line in jsonl.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            out.append(Record(item["kind"], item["attrs"]))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--practices", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--consumers", type=int, help="default: max(3, practices // 40)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    records = generate(args.practices, args.seed, args.consumers)
    ldif, _ = write(records, args.out)
    print(f"{len(records) + 2} entries ({sum(r.kind == 'as' for r in records)} nhsAs) in {ldif}")


if __name__ == "__main__":
    main()
