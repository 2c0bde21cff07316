"""One mirror run on a Session: the source's entries, as the LDIF importer's records, made the registry's
records in the same scope, through ``services.sync``. Never commits: the CLI commits, or rolls back for
``--dry-run`` (a dry run does everything else, so it reports exactly what a real run would do).

The scope is the search itself: the records the registry answers for the same base and filter (translated
to SQL by the LDAP facade's own filter translator), so after a mirror that search answers the same on both
sides, and records it does not reach (other ODS codes, other classes, agreements) are never touched.
Entries become records through ``ldap.ldif``'s reader and validation, leniently: real-world values that
break our rules are stored with flags, not refused; an entry breaking a hard rule (no party key, say)
rejects the whole run. Order: deletes first (so an identifier, or a party key and interaction, freed
upstream is free for a new record), then ``sync.build_plan`` in upsert mode for creates and updates.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors

from sds_registry.ldap import dit, dn, filters
from sds_registry.ldap.dit import EntryClass
from sds_registry.ldap.filterstr import parse_filter
from sds_registry.ldap.ldif import _validate, ldif_line
from sds_registry.ldap.ldif_import import _desired
from sds_registry.ldap.ldif_store import ImportReport
from sds_registry.mirror.fetch import MirrorError, Source
from sds_registry.services import bulk, sync
from sds_registry.services.writes import Actor

#: Search bases a mirror may use, and the entry classes each reaches (subtree).
BASES = {
    dit.BASE_KEY: dit.ENTRY_CLASSES,
    dit.SERVICES_KEY: dit.SERVICE_CLASSES,
    dit.ORGANISATIONS_KEY: (dit.ORG,),
}
KIND = {dit.AS.name: bulk.AS, dit.MHS.name: bulk.MHS, dit.ORG.name: bulk.ORG}
CLASS = {kind.name: cls for cls, kind in ((c, KIND[c.name]) for c in dit.ENTRY_CLASSES)}
_ORDER = {"delete": 0, "update": 1, "create": 2}
_LINE = re.compile(r" line \d+")

Entry = tuple[str, list[tuple[str, str]]]


@dataclass(frozen=True)
class Change:
    action: str  # "create" | "update" | "delete"
    cls: EntryClass
    key: str
    attributes: tuple[str, ...] = ()  # update: the LDAP attributes whose values change

    def line(self) -> str:
        what = f"{self.action} {self.cls.name} {self.cls.dn_of(self.key)}"
        return what + (": " + ", ".join(self.attributes) if self.attributes else "")


@dataclass
class Outcome:
    """What the run did (or, rolled back, would do)."""

    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    fetched: int = 0
    report: ImportReport = field(default_factory=ImportReport)  # the importer's rejections, skips, flags
    rejected: list[sync.Problem] = field(default_factory=list)  # clashes found by the plan

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.rejected

    def count(self, action: str) -> int:
        return sum(c.action == action for c in self.changes)

    def summary(self) -> str:
        return f"{self.count('create')} created, {self.count('update')} updated, {self.count('delete')} deleted"

    def lines(self) -> list[str]:
        out = [c.line() for c in sorted(self.changes, key=lambda c: (_ORDER[c.action], c.cls.name, c.key.lower()))]
        if self.report.flagged:
            out.append(f"lenient: {self.report.flagged} record(s) with flags (values breaking our rules)")
        out += [f"skipped {d}: {why}" for d, why in self.report.skipped]
        # The importer's reasons name lines of the LDIF text the entries were read as: not the user's.
        out += [f"REJECTED {r.dn}: " + "; ".join(_LINE.sub("", x) for x in r.reasons) for r in self.report.rejected]
        out += [f"REJECTED {p.where}: " + "; ".join(p.reasons) for p in self.rejected]
        return out


def scope_classes(source: Source) -> tuple[EntryClass, ...]:
    try:
        key = dn.normalised_key(source.base)
    except dn.InvalidDN as exc:
        raise MirrorError(f"--base: {exc}") from None
    if key not in BASES:
        raise MirrorError(f"--base {source.base!r}: expected ou=services,o=nhs, ou=organisations,o=nhs or o=nhs")
    return BASES[key]


def check_filter(source: Source) -> None:
    """Fail before connecting when --filter is not an RFC 4515 filter."""
    try:
        parse_filter(source.search_filter())
    except ValueError as exc:
        raise MirrorError(f"--filter: {exc}") from None


def _ldif_lines(entries: Iterable[Entry], outcome: Outcome) -> Iterator[str]:
    """The entries as the LDIF text ldapsearch would print, line by line, for the importer's reader."""
    for entry_dn, attrs in entries:
        outcome.fetched += 1
        yield from io.StringIO(ldif_line("dn", entry_dn) + "".join(ldif_line(n, v) for n, v in attrs) + "\n")


def desired_records(entries: Iterable[Entry], outcome: Outcome) -> list[sync.Desired]:
    """The LDIF importer's records (lenient) for ``entries``; its rejections and skips go to ``outcome``."""
    out = []
    for p in _validate(_ldif_lines(entries, outcome), outcome.report, True):
        outcome.report.flagged += bool(p.flags)
        out.append(_desired(p))
    return out


def stored_in_scope(session: Session, source: Source) -> Iterator[tuple[bulk.Kind, dict[str, Any]]]:
    """The registry's records the source's search reaches (every stored field, as ``bulk.stored``)."""
    dialect = session.get_bind().dialect.name
    key, params = filters.prepare(parse_filter(source.search_filter()), dialect)
    for cls in scope_classes(source):
        pred = filters.translate(key, cls.view(), dialect)
        if pred is False:
            continue
        for stored in bulk.stored(session, KIND[cls.name], _bound(filters.to_sql(pred), params)):
            yield KIND[cls.name], stored


def _bound(where: Any, params: dict[str, Any]) -> Any:
    """``where`` with the filter's parameter values bound in (bulk.stored executes it without parameters)."""

    def fill(bind: Any) -> None:
        if bind.key in params:
            bind.value, bind.required = params[bind.key], False

    return visitors.cloned_traverse(where, {}, {"bindparam": fill})


def _changed(cls: EntryClass, wanted: dict[str, Any], flags: list[str], stored: dict[str, Any]) -> tuple[str, ...]:
    attrs: list[str] = []
    for f in cls.fields:
        if f.attr not in attrs and wanted.get(f.field) != stored.get(f.field):
            attrs.append(f.attr)
    if sorted(flags) != sorted(stored.get("flags") or []):
        attrs.append("flags")
    return tuple(attrs)


def read(entries: Iterable[Entry]) -> tuple[Outcome, list[sync.Desired]]:
    """Convert every entry (before any transaction: the source may be slow); see ``outcome.report.ok``."""
    outcome = Outcome()
    return outcome, desired_records(entries, outcome)


def apply_mirror(session: Session, source: Source, outcome: Outcome, desired: list[sync.Desired],
                 actor: Actor) -> Outcome:
    """Make the registry's records in ``source``'s scope equal to ``desired``, in the caller's transaction.

    Writes (audited as ``actor``) only when every entry converted and the plan has no clash; the caller
    commits when ``outcome.ok`` (and not a dry run), else rolls back."""
    if not outcome.report.ok:
        return outcome
    wanted = {(d.kind, str(d.values[bulk.KINDS[d.kind].key_field]).lower()) for d in desired}
    deletes = [(kind.name, s) for kind, s in stored_in_scope(session, source)
               if (kind.name, str(s[kind.key_field]).lower()) not in wanted]
    if deletes:
        sync.apply_plan(session, sync.Plan("sync", deletes=deletes), actor)
    outcome.changes += [Change("delete", CLASS[kind], s[bulk.KINDS[kind].key_field]) for kind, s in deletes]
    plan = sync.build_plan(session, desired, mode="upsert", lenient=True, defaults=False)
    outcome.rejected = plan.rejected
    outcome.unchanged = sum(plan.unchanged.values())
    outcome.changes += [Change("create", CLASS[r.kind.name], r.key) for r in plan.creates]
    outcome.changes += [Change("update", CLASS[r.kind.name], r.key, _changed(CLASS[r.kind.name], r.values, r.flags, s))
                        for r, s in plan.updates]
    if plan.ok:
        sync.apply_plan(session, plan, actor)
    return outcome
