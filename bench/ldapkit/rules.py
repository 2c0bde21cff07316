"""The matching rules of bench/slapd/nhs-sds.schema, read from the file. Pure; no server, no I/O beyond it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "slapd" / "nhs-sds.schema"

_ATTRIBUTE = re.compile(r"attributetype\s*\((?P<body>.*?)\)\s*(?=attributetype|objectclass|#|$)", re.S | re.I)
_NAME = re.compile(r"NAME\s+'([^']+)'")
_RULE = re.compile(r"\b(EQUALITY|ORDERING|SUBSTR)\s+(\S+)")

#: Standard attributes the data uses, with their rules in OpenLDAP's core/cosine schema.
STANDARD = {
    "uniqueidentifier": "caseIgnoreMatch",
    "objectclass": "objectIdentifierMatch",
    "o": "caseIgnoreMatch",
    "ou": "caseIgnoreMatch",
}


@dataclass(frozen=True)
class Rules:
    """How one attribute compares: its EQUALITY, ORDERING and SUBSTR rule names ('' when it has none)."""

    name: str
    equality: str
    ordering: str = ""
    substr: str = ""

    @property
    def case_exact(self) -> bool:
        return self.equality.startswith("caseExact")


@cache
def schema_rules(path: Path = SCHEMA) -> dict[str, Rules]:
    """Attribute name (lower case) -> its rules, for every attributetype of the schema file."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    out = {name: Rules(name, rule) for name, rule in STANDARD.items()}
    for match in _ATTRIBUTE.finditer(text):
        body = match.group("body")
        name = _NAME.search(body)
        if name is None:
            continue
        found = dict(_RULE.findall(body))
        out[name.group(1).lower()] = Rules(
            name.group(1), found.get("EQUALITY", ""), found.get("ORDERING", ""), found.get("SUBSTR", "")
        )
    return out


def equality_key(attribute: str, value: str) -> str:
    """The value as the attribute's EQUALITY rule sees it: spaces collapsed (RFC 4518), folded if caseIgnore."""
    rules = schema_rules().get(attribute.lower())
    squeezed = " ".join(value.split())
    return squeezed if rules is not None and rules.case_exact else squeezed.casefold()


def escape(value: str) -> str:
    """An assertion value escaped for a string filter (RFC 4515 §3)."""
    return "".join(f"\\{ord(c):02x}" if c in "*()\\\0" else c for c in value)
