"""The differential search set: ~400 varied searches over the generated data. Pure; asks no server.

    python -m bench.ldapkit.searches --data DIR/sds.jsonl --out searches.jsonl [--seed 7] [--practices 8]

Covers the GP Connect two-step lookup exactly as documented, equality on every attribute (and with the
value's case flipped: caseExact vs caseIgnore), attribute-name and DN case and spacing, AND/OR/NOT (NOT on
attributes an entry lacks, unknown attributes = Undefined), presence, substrings, >=/<=, RFC 4515 escapes,
base/one/sub scopes, missing and invalid bases, client size limits, and attribute lists with ``*``,
``1.1`` and unknown names. ``compare="count"`` marks searches whose entries are the server's choice (size
limit hit): only the result code and the number of entries are compared.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from .data import BASE, Record, load

GPC = "urn:nhs:names:services:gpconnect:"
DOCS_BASE = "ou=services, o=nhs"  # the spelling in the GP Connect documentation


@dataclass(frozen=True)
class Search:
    id: str
    base: str
    scope: str  # base | one | sub
    filter: str
    attrs: tuple[str, ...] = ()  # () = all user attributes
    sizelimit: int = 0
    compare: str = "full"  # or "count"
    why: str = ""


class _Set:
    def __init__(self) -> None:
        self.items: list[Search] = []

    def add(
        self,
        why: str,
        flt: str,
        attrs: tuple[str, ...] = ("1.1",),
        base: str = BASE,
        scope: str = "sub",
        sizelimit: int = 0,
        compare: str = "full",
    ) -> None:
        self.items.append(Search(f"s{len(self.items) + 1:03d}", base, scope, flt, attrs, sizelimit, compare, why))


def _practice(out: _Set, rng: random.Random, provider: Record, mhs: list[Record], neighbour: str) -> None:
    """About thirty searches around one practice's AS entry and MHS entries."""
    ods, pk, asid = provider.first("nhsIDCode"), provider.first("nhsMHSPartyKey"), provider.first("uniqueIdentifier")
    one = rng.choice(mhs)
    ia, cpa = one.first("nhsMhsSvcIA"), one.first("uniqueIdentifier")
    step1 = f"(&(nhsIDCode={ods})(objectClass=nhsMhs)(nhsMhsSvcIA={ia}))"
    out.add(
        "GP Connect step 1 as documented",
        f"(&(nhsidcode={ods}) (objectClass=nhsMhs) (nhsMhsSvcIA={ia}))",
        ("nhsMhsEndPoint", "nhsMhsPartyKey"),
        base=DOCS_BASE,
    )
    out.add(
        "GP Connect step 2 as documented",
        f"(&(nhsidcode={ods}) (objectclass=nhsAs) (nhsMHSPartyKey={pk}))",
        ("uniqueIdentifier",),
        base=DOCS_BASE,
    )
    out.add("step 1 without spaces, schema spellings", step1, ("nhsMHSEndPoint", "nhsMHSPartyKey"))
    out.add(
        "step 2, party key in lower case (caseIgnore: found)",
        f"(&(nhsIDCode={ods})(objectClass=nhsAs)(nhsMHSPartyKey={pk.lower()}))",
        ("uniqueIdentifier",),
    )
    out.add("step 1, ODS code in lower case (caseExact: none)", step1.replace(ods, ods.lower()), ("nhsMHSEndPoint",))
    out.add("step 1, interaction in upper case (caseExact: none)", step1.replace(ia, ia.upper()), ("nhsMHSEndPoint",))
    out.add("step 1, objectClass value in upper case", step1.replace("nhsMhs)", "NHSMHS)"), ("nhsMHSEndPoint",))
    out.add("every entry of the practice, all attributes", f"(nhsIDCode={ods})", ())
    out.add(
        "attribute names in upper and lower case",
        f"(&(NHSIDCODE={ods})(OBJECTCLASS=nhsmhs)(nhsmhssvcia={ia}))",
        ("NHSMHSENDPOINT", "nhsmhspartykey", "UniqueIdentifier"),
    )
    out.add(
        "OR of two practices' AS entries",
        f"(&(objectClass=nhsAs)(|(nhsIDCode={ods})(nhsIDCode={neighbour})))",
        ("nhsIDCode", "nhsMHSPartyKey", "nhsAsClient"),
    )
    out.add(
        "OR with one branch that cannot match", f"(| (nhsIDCode={ods.lower()}) (nhsMHSPartyKey={pk}))", ("objectClass",)
    )
    out.add("NOT objectClass", f"(&(nhsIDCode={ods})(!(objectClass=nhsMhs)))", ("*",))
    out.add(
        "NOT on an attribute MHS entries lack (they match)",
        f"(&(nhsIDCode={ods})(!(nhsAsClient={ods})))",
        ("uniqueIdentifier",),
    )
    out.add("NOT on an attribute no entry has", f"(&(nhsIDCode={ods})(!(nhsMHSActor=urn:x:toPartyMSH)))")
    out.add(
        "NOT substring", f"(&(nhsIDCode={ods})(objectClass=nhsMhs)(!(nhsMHSEndPoint=*/documents)))", ("nhsMhsSvcIA",)
    )
    out.add("presence of an AS-only attribute", f"(&(nhsIDCode={ods})(nhsProductName=*))", ("nhsProductName",))
    out.add("presence of an MHS-only attribute", f"(&(nhsIDCode={ods})(nhsMhsFQDN=*))", ("nhsMhsFQDN",))
    out.add(
        "substring initial, any and final on the endpoint",
        f"(&(nhsIDCode={ods})(nhsMHSEndPoint=https://*/{ods}/*/gpconnect*structured))",
        ("nhsMHSEndPoint",),
    )
    out.add("substring in upper case on a caseExact attribute (none)", f"(&(nhsIDCode={ods})(nhsMHSEndPoint=*STU3*1*))")
    out.add(
        "substring any on the interaction", f"(&(nhsIDCode={ods})(nhsMhsSvcIA=*:rest:*:patient*))", ("nhsMhsSvcIA",)
    )
    out.add(
        "RFC 4515 escapes",
        f"(&(nhsIDCode=\\{ord(ods[0]):02x}{ods[1:]})(nhsMhsSvcIA={ia.replace(':', chr(92) + '3a')}))",
        ("nhsMhsCPAId",),
    )
    out.add(
        ">= the practice's own approval date",
        f"(&(nhsIDCode={ods})(nhsDateApproved>={provider.first('nhsDateApproved')}))",
        ("nhsDateApproved",),
    )
    out.add(
        "<= the practice's own request date",
        f"(&(nhsIDCode={ods})(nhsDateRequested<={provider.first('nhsDateRequested')}))",
        ("nhsDateRequested",),
    )
    out.add("base read of the AS entry", "(objectClass=*)", (), base=f"uniqueIdentifier={asid},{BASE}", scope="base")
    out.add(
        "base read, DN in upper case with spaces",
        "(objectClass=*)",
        ("nhsIDCode",),
        base=f"UNIQUEIDENTIFIER = {asid} , OU=SERVICES,  O=NHS",
        scope="base",
    )
    out.add(
        "base read of an MHS entry, RDN value upper-cased (caseIgnore)",
        "(objectClass=*)",
        ("*",),
        base=f"uniqueIdentifier={cpa.upper()},{BASE}",
        scope="base",
    )
    out.add(
        "base read with a filter that does not match",
        "(objectClass=nhsMhs)",
        base=f"uniqueIdentifier={asid},{BASE}",
        scope="base",
    )
    out.add("one level under ou=Services", f"(nhsIDCode={ods})", ("uniqueIdentifier",), scope="one")
    out.add(
        "one level under a leaf (nothing)", "(objectClass=*)", (), base=f"uniqueIdentifier={cpa},{BASE}", scope="one"
    )
    out.add(
        "subtree from o=nhs, '*' and a name",
        f"(&(nhsIDCode={ods})(objectClass=nhsAs))",
        ("*", "nhsIDCode"),
        base="o=nhs",
    )
    out.add("client size limit equal to the matches", f"(nhsIDCode={ods})", sizelimit=len(mhs) + 1)
    out.add(
        "client size limit below the matches (sizeLimitExceeded)",
        f"(nhsIDCode={ods})",
        sizelimit=len(mhs),
        compare="count",
    )


def _every_attribute(out: _Set, rng: random.Random, record: Record) -> None:
    """Equality on each attribute of the record, as stored and with the value's case flipped."""
    ods = record.first("nhsIDCode")
    for name, values in record.attrs.items():
        value = rng.choice(values)
        wanted = tuple(sorted({"uniqueIdentifier", name}))
        out.add(f"equality on {name}", f"(&(nhsIDCode={ods})({name}={value}))", wanted)
        if value.swapcase() != value:
            out.add(f"equality on {name}, case flipped", f"(&(nhsIDCode={ods})({name}={value.swapcase()}))", wanted)


def _directory_wide(out: _Set, provider: Record, mhs: Record, consumer: Record) -> None:
    asid, ods, cpa = provider.first("uniqueIdentifier"), provider.first("nhsIDCode"), mhs.first("nhsMhsCPAId")
    endpoint = mhs.first("nhsMHSEndPoint")
    out.add("ASID alone", f"(uniqueIdentifier={asid})", ())
    out.add("CPA id as uniqueIdentifier, upper case (caseIgnore: found)", f"(uniqueIdentifier={cpa.upper()})")
    out.add("nhsMhsCPAId in upper case (caseExact: none)", f"(nhsMhsCPAId={cpa.upper()})")
    out.add("OR of an ASID and a CPA id", f"(|(uniqueIdentifier={asid})(nhsMhsCPAId={cpa}))", ("*",))
    out.add("systems serving a practice", f"(nhsAsClient={ods})", ("uniqueIdentifier", "nhsIDCode"))
    out.add("nhsAsClient in lower case (caseIgnore)", f"(nhsAsClient={ods.lower()})", ("uniqueIdentifier",))
    out.add(
        "consumer lookup from the GP Connect docs",
        f"(&(nhsIDCode={consumer.first('nhsIDCode')}) (objectClass=nhsAS) (nhsAsSvcIA={consumer.first('nhsAsSvcIA')})"
        f" (nhsMhsManufacturerOrg={consumer.first('nhsMhsManufacturerOrg')}))",
        ("uniqueIdentifier",),
        base=DOCS_BASE,
    )
    out.add(
        "DSTU2 interaction only consumers send",
        f"(nhsAsSvcIA={GPC}fhir:operation:gpc.getcarerecord)",
        ("nhsIDCode", "nhsAsClient"),
    )
    out.add(
        "rare interaction on MHS entries",
        f"(nhsMhsSvcIA={GPC}fhir:operation:gpc.registerpatient-1)",
        ("nhsMHSEndPoint",),
    )
    out.add("every AS", "(objectClass=nhsAs)", ("uniqueIdentifier", "nhsIDCode"))
    out.add("objectClass value in lower case", "(&(objectclass=nhsas)(nhsMhsManufacturerOrg=YGM14))", ("nhsIDCode",))
    out.add("supplier code in lower case (caseIgnore)", "(&(objectClass=nhsAs)(nhsMhsManufacturerOrg=ygm13))")
    out.add(
        "product name with odd case and spaces (caseIgnore)", "(nhsProductName=  damson   GP )", ("nhsProductName",)
    )
    out.add("endpoint exactly", f"(nhsMHSEndPoint={endpoint})", ("nhsMhsSvcIA",))
    out.add("endpoint with a trailing slash (none)", f"(nhsMHSEndPoint={endpoint}/)")
    out.add(
        "bulk GP Connect AS query",
        f"(&(nhsassvcia={GPC[:-1]}*)(objectclass=nhsas))",
        ("nhsassvcia", "nhsidcode", "nhsmhspartykey", "nhsproductname", "uniqueidentifier"),
    )
    out.add("substring final on the endpoint", "(nhsMHSEndPoint=*/structured)")
    out.add("substring final in upper case (caseExact: none)", "(nhsMHSEndPoint=*/STRUCTURED)")
    out.add("substring initial on nhsIDCode", f"(&(objectClass=nhsAs)(nhsIDCode={ods[:3]}*))", ("nhsIDCode",))
    out.add("substring initial, lower case (caseExact: none)", f"(&(objectClass=nhsAs)(nhsIDCode={ods[:3].lower()}*))")
    out.add("substring on the party key in lower case (caseIgnore)", f"(nhsMHSPartyKey={ods[:4].lower()}*)")
    out.add("substring any, product name", "(&(objectClass=nhsAs)(nhsProductName=*primary*))")
    out.add("substring on an attribute without a SUBSTR rule (none)", "(nhsMHSIsAuthenticated=*on*)")
    out.add(">= on nhsDateApproved", "(&(objectClass=nhsAs)(nhsDateApproved>=20230601000000))", ("nhsDateApproved",))
    out.add("<= on nhsDateApproved", "(&(objectClass=nhsAs)(nhsDateApproved<=20160801000000))", ("nhsDateApproved",))
    out.add(
        "range on nhsDateRequested",
        "(&(objectClass=nhsMhs)(nhsDateRequested>=20190101000000)(nhsDateRequested<=20190201000000))",
    )
    out.add(">= without an ORDERING rule (Undefined: none)", f"(&(nhsIDCode={ods})(nhsIDCode>=A))")
    out.add("NOT >= without an ORDERING rule (Undefined: none)", f"(&(nhsIDCode={ods})(!(nhsMHSRetries>=0)))")
    out.add("presence on every AS", "(&(objectClass=nhsAs)(nhsMhsManufacturerOrg=*))")
    out.add("presence of an attribute no entry has", "(nhsMHSActor=*)")
    out.add("presence of an unknown attribute (Undefined: none)", "(noSuchAttribute=*)")
    out.add("NOT on an unknown attribute (Undefined: none)", f"(&(nhsIDCode={ods})(!(noSuchAttribute=x)))")
    out.add("OR with an unknown attribute (TRUE wins)", f"(|(nhsIDCode={ods})(noSuchAttribute=x))")
    out.add("AND with an unknown attribute (none)", f"(&(nhsIDCode={ods})(noSuchAttribute=x))")
    out.add("NOT presence of objectClass (none)", "(!(objectClass=*))")
    out.add("double NOT", f"(!(!(nhsIDCode={ods})))")
    out.add("escaped asterisk is a literal (none)", f"(nhsIDCode={ods[:-1]}\\2a)")
    out.add("escaped parentheses in a value (none)", "(nhsProductName=Damson \\28GP\\29)")
    out.add("base read of o=nhs", "(objectClass=*)", (), base="o=nhs", scope="base")
    out.add("base read of ou=Services", "(objectClass=*)", ("*",), base="ou=services,o=nhs", scope="base")
    out.add("one level under o=nhs", "(objectClass=*)", (), base="o=nhs", scope="one")
    out.add("ou entry by value in upper case (caseIgnore)", "(ou=SERVICES)", ("ou", "objectClass"), base="o=nhs")
    out.add("every entry from o=nhs, DNs only", "(objectClass=*)", base="o=nhs")
    out.add("one level: every AS", "(objectClass=nhsAs)", ("uniqueIdentifier",), scope="one")
    out.add("base DN in upper case", f"(uniqueIdentifier={asid})", ("nhsIDCode",), base="O=NHS")
    out.add(
        "missing base (noSuchObject)", "(objectClass=*)", base=f"uniqueIdentifier=000000000000,{BASE}", scope="base"
    )
    out.add("base outside the directory (noSuchObject)", "(objectClass=*)", base="o=elsewhere")
    out.add("invalid base DN (invalidDNSyntax)", "(objectClass=*)", base="ou=Services,,o=nhs")
    out.add("invalid base DN, no '=' (invalidDNSyntax)", "(objectClass=*)", base="services")
    out.add("size limit on a large answer", "(objectClass=nhsMhs)", sizelimit=5, compare="count")
    out.add("size limit not reached", f"(uniqueIdentifier={asid})", ("*",), sizelimit=3)


LISTS: tuple[tuple[str, ...], ...] = (
    (),
    ("*",),
    ("1.1",),
    ("*", "nhsIDCode"),
    ("noSuchAttribute",),
    ("nhsIDCode", "noSuchAttribute"),
    ("objectClass",),
    ("NHSIDCODE", "nhsmhsendpoint", "NhsMhsSvcIA"),
    ("1.1", "nhsIDCode"),
)


def build(records: list[Record], seed: int = 7, practices: int = 8) -> list[Search]:
    rng = random.Random(seed)
    providers: dict[str, Record] = {}
    mhs: dict[str, list[Record]] = {}
    for r in records:
        if r.kind == "mhs":
            mhs.setdefault(r.first("nhsIDCode"), []).append(r)
        else:
            providers[r.first("nhsIDCode")] = r
    codes = sorted(mhs)
    consumers = sorted(set(providers) - set(mhs))
    if len(codes) < 3 or not consumers:
        raise ValueError("the data needs at least three practices and one consumer")
    out = _Set()
    sample = rng.sample(codes, min(practices, len(codes) - 1))
    for ods in sample:
        _practice(out, rng, providers[ods], mhs[ods], rng.choice([c for c in codes if c != ods]))
    first = sample[0]
    for record in (providers[first], rng.choice(mhs[first]), providers[consumers[0]]):
        _every_attribute(out, rng, record)
    _directory_wide(out, providers[first], mhs[first][0], providers[consumers[0]])
    for entry in (mhs[first][0], mhs[sample[1]][-1]):
        for attrs in LISTS:
            out.add(f"attribute list {list(attrs)}", "(objectClass=*)", attrs, base=entry.dn, scope="base")
    return out.items


def write(searches: list[Search], path: Path) -> None:
    path.write_text("".join(json.dumps(asdict(s)) + "\n" for s in searches))


def read(path: Path) -> list[Search]:
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            out.append(Search(**dict(item, attrs=tuple(item["attrs"]))))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="sds.jsonl from python -m bench.ldapkit.data")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--practices", type=int, default=8, help="practices searched around")
    args = parser.parse_args(argv)
    searches = build(load(args.data), args.seed, args.practices)
    write(searches, args.out)
    print(f"{len(searches)} searches in {args.out}")


if __name__ == "__main__":
    main()
