"""What an LDIF import produces: validated records waiting to be stored (Pending), rejections and the report.

The storing itself is ``services.sync`` (the plan) over ``services.bulk`` (the bulk inserts); ldif_import.py
drives them. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sds_registry.ldap.dit import EntryClass
from sds_registry.services.transfer import count_line, flagged_line

#: LDAP object class -> the records' kind in services.sync / services.bulk, and back.
KIND_OF_CLASS = {"nhsOrg": "organisation", "nhsAs": "accredited_system", "nhsMhs": "message_handling_system"}
CLASS_OF_KIND = {**{v: k for k, v in KIND_OF_CLASS.items()}, "data_sharing_agreement": "dataSharingAgreement"}


@dataclass
class Rejection:
    dn: str
    reasons: list[str]
    line: int = 0  # where the record starts in the file (0: not known)

    def text(self) -> str:
        where = f"line {self.line} {self.dn}" if self.line else self.dn
        return f"REJECTED {where}: " + "; ".join(self.reasons)


@dataclass
class Pending:
    cls: EntryClass
    dn: str
    values: dict[str, Any]
    flags: list[str]
    line: int = 0


def _counts(kinds: dict[str, int], what: str) -> str:
    return ", ".join(f"{n} {what}" for n in kinds.values())


@dataclass
class ImportReport:
    """Counts per LDAP object class (and ``dataSharingAgreement``), skipped entries, rejections, flags.

    ``lines()`` tells the truth: counts say "created" only when the import is ``ok`` (the caller then
    commits); otherwise "would have created ... nothing was stored"."""

    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (dn, why): entries that are not records
    rejected: list[Rejection] = field(default_factory=list)
    flagged: int = 0
    mode: str = "create"
    first_load: bool = False  # stored by the fast first load (services.first_load), not the careful path

    @property
    def ok(self) -> bool:
        return not self.rejected

    def add(self, counts: dict[str, dict[str, int]]) -> None:
        """Add services.sync.Plan.counts() (keyed by kind) to the report's (keyed by object class)."""
        for kind, c in counts.items():
            name = CLASS_OF_KIND[kind]
            for what, target in (("created", self.created), ("updated", self.updated),
                                 ("deleted", self.deleted), ("unchanged", self.unchanged)):
                if c.get(what):
                    target[name] = target.get(name, 0) + c[what]

    def lines(self) -> list[str]:
        names = list(dict.fromkeys([*self.created, *self.updated, *self.deleted, *self.unchanged]))
        out = []
        for name in names:
            c, u, d, n = (t.get(name, 0) for t in (self.created, self.updated, self.deleted, self.unchanged))
            out.append(count_line(name, self.ok, c, u, d, n))
        if self.flagged:
            out.append(flagged_line(self.flagged, self.ok))
        out += [f"skipped {d}: {why}" for d, why in self.skipped]
        out += [r.text() for r in self.rejected]
        return out
