"""Make stored records equal to desired ones: a plan (create / update / delete / unchanged), then its application.

Used by ``sds import --mode create|upsert|sync`` (JSON and LDIF) and ``sds mirror``. Takes a Session; never
commits: the caller commits only when ``plan.ok`` and ``apply_plan`` raised nothing (all or nothing).

Input: ``Desired`` records, one per organisation, accredited system, MHS record or data-sharing agreement,
holding the same input dicts the JSON import takes (``services.records`` field names: what
``sds export --format json`` writes, minus ``version``/``created_at``/``updated_at``). Keys: organisations by
``ods_code``, accredited systems by ``asid``, MHS records by ``unique_identifier`` (or ``cpa_id``; both
compared case-insensitively, as LDAP does), agreements by ``consumer_ods->provider_ods``.

Modes:

- ``create``: every desired record must be new; one already stored is rejected ("already exists").
- ``upsert``: create the missing, update the changed, leave the unchanged and everything else alone.
- ``sync``: as upsert, and delete the stored records *in scope* that are not desired. The scope is the set of
  ODS codes the desired records carry (``ods_code`` of every organisation, AS and MHS record), unless the
  caller passes ``scope``: stored organisations, AS and MHS records with one of those ODS codes, and the
  agreements with one of them at either end. Records of other organisations are never touched.

Comparison: a field the desired record leaves out is compared as "unset", except the fields the services
fill in with a default on create (``defaults=True``, the JSON way: dates, approvers, the client list, MHS
reliability settings...), which then keep their stored value. With ``defaults=False`` (LDIF) a record is
stored exactly as given. Lenient flags are compared too. An unchanged record writes nothing (no audit row),
so applying the same input twice is a no-op the second time.

Writing: creates are inserted in bulk (``services.bulk``); updates and deletes go through the ORM with the
shared write helpers. ``audit="record"`` writes one audit row per created/updated/deleted record (as the
API does); ``audit="summary"`` writes one ``import`` audit event with the counts (bulk loads); ``"none"``
leaves the audit to the caller (a load applied as several plans records one event at its end).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from sds_registry.db import utcnow
from sds_registry.domain import formats, records
from sds_registry.errors import InvalidIdentifier
from sds_registry.models import AuditEvent, DataSharingAgreement
from sds_registry.services import bulk
from sds_registry.services.accredited_systems import _as_defaults
from sds_registry.services.bloom import KeyFilter
from sds_registry.services.mhs import _mhs_defaults, new_cpa_id
from sds_registry.services.records import AS_LISTS, AS_SCALARS, MHS_LISTS, MHS_SCALARS, ORG_SCALARS
from sds_registry.services.writes import RNG, Actor, add_audit, apply, flush

Mode = Literal["create", "upsert", "sync"]
MODES: tuple[Mode, ...] = ("create", "upsert", "sync")
AGREEMENT = "data_sharing_agreement"
_FIELDS = {"organisation": (ORG_SCALARS, ()), "accredited_system": (AS_SCALARS, AS_LISTS),
           "message_handling_system": (MHS_SCALARS, MHS_LISTS)}
_SHAPE = {kind: tuple((n, n in lists) for n in (*scalars, *lists)) for kind, (scalars, lists) in _FIELDS.items()}
#: Fields the create services fill in when absent (kept as stored when a desired record leaves them out).
DEFAULTED = {
    "organisation": frozenset({"org_type"}),
    "accredited_system": frozenset({"date_requested", "date_approved", "requestor_urp", "approver_urp", "clients"}),
    "message_handling_system": frozenset({
        "ep_interaction_type", "is_authenticated", "sync_reply_mode", "ack_requested", "duplicate_elimination",
        "date_requested", "date_approved", "date_dns_approved", "requestor_urp", "approver_urp", "dns_approver",
        "contract_property_template_key", "product_key", "cpa_id"}),
}
_CLEAN: dict[str, Callable[..., records.Cleaned]] = {
    "organisation": lambda d, lenient: records.clean_organisation(d),
    "accredited_system": lambda d, lenient: records.clean_accredited_system(d, lenient=lenient),
    "message_handling_system": lambda d, lenient: records.clean_mhs(d, lenient=lenient),
}


@dataclass
class Desired:
    """One record as the input wants it. ``where`` names its place in the input for messages (e.g.
    ``accredited_systems[12]`` or ``line 40 uniqueIdentifier=...``); ``flags`` are extra lenient flags."""

    kind: str  # organisation | accredited_system | message_handling_system | data_sharing_agreement
    values: Mapping[str, Any]
    where: str
    flags: tuple[str, ...] = ()
    cleaned: bool = False  # values already went through domain.records.clean_* (flags complete): not again


@dataclass
class Problem:
    where: str
    reasons: list[str]


@dataclass
class Plan:
    mode: Mode
    creates: list[bulk.Row] = field(default_factory=list)
    updates: list[tuple[bulk.Row, dict[str, Any]]] = field(default_factory=list)  # (desired, stored)
    deletes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (kind, stored)
    agreements: list[tuple[str, dict[str, Any], Any]] = field(default_factory=list)  # (action, desired, stored)
    unchanged: dict[str, int] = field(default_factory=dict)
    rejected: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def counts(self) -> dict[str, dict[str, int]]:
        """kind -> {"created", "updated", "deleted", "unchanged"}."""
        out: dict[str, dict[str, int]] = {}

        def add(kind: str, what: str, n: int = 1) -> None:
            out.setdefault(kind, {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0})[what] += n

        for r in self.creates:
            add(r.kind.name, "created")
        for r, _ in self.updates:
            add(r.kind.name, "updated")
        for kind, _ in self.deletes:
            add(kind, "deleted")
        for action, _, _ in self.agreements:
            add(AGREEMENT, {"create": "created", "update": "updated", "delete": "deleted"}[action])
        for kind, n in self.unchanged.items():
            add(kind, "unchanged", n)
        return out


def _issues(exc: InvalidIdentifier) -> list[str]:
    return [f"{i.field}: {i.message} (rule: {i.rule})" for i in exc.issues]


def _prepare(d: Desired, lenient: bool, defaults: bool, mode: Mode) -> bulk.Row:
    """Validate one record: a Row whose values hold the given fields (cleaned), or InvalidIdentifier."""
    kind = bulk.KINDS[d.kind]
    # None drops a field, but for a field the services would default it says "unset, no default" (what an
    # export writes for a record stored without it, e.g. from LDIF): kept.
    data = {k: v for k, v in d.values.items() if v is not None or k in DEFAULTED[d.kind]}
    cleaned = records.Cleaned(data, []) if d.cleaned else _CLEAN[d.kind](data, lenient)
    values = data if d.cleaned else dict(cleaned.values)  # data: a new dict already
    if kind is bulk.MHS and not values.get("unique_identifier"):
        if not defaults or mode != "create":
            raise InvalidIdentifier.single("unique_identifier", "required",
                                           "give unique_identifier or cpa_id (needed to compare with the registry)")
        values["unique_identifier"] = values["cpa_id"] = new_cpa_id()
    return bulk.Row(kind, values, sorted(set(cleaned.flags) | set(d.flags)), d.where)


def _as_given(d: Desired) -> bulk.Row:
    """A cleaned record to create as given (no defaults): ``_target(_prepare(d), None, False)`` in one pass."""
    get = d.values.get
    out = {name: list(get(name) or ()) if many else get(name) for name, many in _SHAPE[d.kind]}
    if d.kind == "message_handling_system" and not out["unique_identifier"]:
        raise InvalidIdentifier.single("unique_identifier", "required",
                                       "give unique_identifier or cpa_id (needed to compare with the registry)")
    if d.kind == "organisation" and out["org_type"] is None:
        out["org_type"] = "GP Practice"
    return bulk.Row(bulk.KINDS[d.kind], out, sorted(set(d.flags)), d.where)


def _with_defaults(row: bulk.Row) -> dict[str, Any]:
    """The create services' defaults for the fields the record leaves out (not for those it gives as unset)."""
    values = dict(row.values)
    unset = {k for k, v in values.items() if v is None or v == []} & DEFAULTED[row.kind.name]
    if row.kind is bulk.AS:
        values = _as_defaults(values)
    elif row.kind is bulk.MHS:
        values = _mhs_defaults(values, RNG)
    return {**values, **{k: [] if isinstance(values.get(k), list) else None for k in unset}}


def _target(row: bulk.Row, stored: Mapping[str, Any] | None, defaults: bool) -> dict[str, Any]:
    """Every field of the record as it should be stored."""
    keep = DEFAULTED[row.kind.name] if defaults else frozenset()
    out: dict[str, Any] = {}
    base = _with_defaults(row) if defaults and stored is None else row.values
    for name, many in _SHAPE[row.kind.name]:
        if name in base:  # given (None or [] given: unset)
            out[name] = list(base[name] or []) if many else base[name]
        elif stored is not None and name in keep:
            out[name] = stored.get(name)
        else:
            out[name] = [] if many else None
    if row.kind is bulk.ORG and out.get("org_type") is None:
        out["org_type"] = "GP Practice"
    return out


def _same(target: Mapping[str, Any], flags: list[str], stored: Mapping[str, Any]) -> bool:
    return all(stored.get(k) == v for k, v in target.items()) and sorted(stored["flags"]) == sorted(flags)


def _agreement(d: Desired) -> dict[str, Any]:
    issues: list[str] = []
    out: dict[str, Any] = {}
    for name in ("consumer_ods", "provider_ods"):
        value = d.values.get(name)
        try:
            out[name] = "*" if value == "*" else formats.ods_code(value, name)
        except InvalidIdentifier as exc:
            issues += _issues(exc)
    unknown = set(d.values) - {"consumer_ods", "provider_ods", "description", "id", "flags"}
    issues += [f"{n}: not a field of data_sharing_agreement (rule: unknown-field)" for n in sorted(unknown)]
    if issues:
        raise ValueError(issues)
    out["description"] = d.values.get("description")
    return out


def build_plan(session: Session, desired: Iterable[Desired], *, mode: Mode = "sync", lenient: bool = False,
               defaults: bool = True, scope: Iterable[str] | None = None,
               seen: dict[tuple[str, str], str] | None = None, since: Mapping[str, int] | None = None,
               stored_keys: KeyFilter | None = None) -> Plan:
    """Compare ``desired`` with what is stored; nothing is written. Every problem is collected in
    ``plan.rejected`` (validation, duplicates in the input, clashes with records outside the plan).

    ``seen`` (create mode only) carries the keys of earlier batches, so a long input can be planned and
    applied a batch at a time (``sds import`` does, to keep memory flat; ``since``: bulk.last_ids from before
    the first batch, so clashes with stored earlier batches are named as such; ``stored_keys``: see
    bulk.clashes); upsert and sync need the whole input at once (a record is deleted only when nothing in the
    input names it)."""
    plan = Plan(mode)
    rows: list[bulk.Row] = []
    as_given: set[int] = set()  # ids of rows already in their target shape
    agreements: list[tuple[Desired, dict[str, Any]]] = []
    for d in desired:
        try:
            if d.kind == AGREEMENT:
                agreements.append((d, _agreement(d)))
            elif d.cleaned and mode == "create" and not defaults:  # its target at once (LDIF)
                rows.append(_as_given(d))
                as_given.add(id(rows[-1]))
            else:
                rows.append(_prepare(d, lenient, defaults, mode))
        except InvalidIdentifier as exc:
            plan.rejected.append(Problem(d.where, _issues(exc)))
        except ValueError as exc:
            plan.rejected.append(Problem(d.where, list(exc.args[0])))
    codes = set(scope) if scope is not None else {str(r.values["ods_code"]) for r in rows}
    ignore: set[tuple[str, int]] = set()
    for kind in (bulk.ORG, bulk.AS, bulk.MHS):
        mine = [r for r in rows if r.kind is kind]
        table = kind.table
        key_col = table.c[kind.key_field]
        fold = kind is not bulk.ORG
        by_key: dict[str, bulk.Row] = {}
        for r in mine:
            key = r.key.lower() if fold else r.key
            earlier = seen.get(("services" if fold else "org", key)) if seen is not None else None
            if earlier is not None:
                plan.rejected.append(Problem(r.where, [f"{kind.key_field}: {r.key!r} is also given by {earlier} "
                                                       "(rule: unique)"]))
            elif key in by_key:
                plan.rejected.append(Problem(r.where, [f"{kind.key_field}: {r.key!r} is also given by "
                                                       f"{by_key[key].where} (rule: unique)"]))
            else:
                by_key[key] = r
        found: dict[str, dict[str, Any]] = {}
        probe = func.lower(key_col) if fold else key_col
        for chunk in bulk.chunks(list(by_key) if mode != "create" else []):  # create: clashes() finds them
            for s in bulk.stored(session, kind, probe.in_(chunk)):
                found[s[kind.key_field].lower() if fold else s[kind.key_field]] = s
        in_scope: list[dict[str, Any]] = []
        if mode == "sync":
            for chunk in bulk.chunks(sorted(codes)):
                in_scope += bulk.stored(session, kind, table.c.ods_code.in_(chunk))
        for key, r in by_key.items():
            match = found.get(key)
            if match is None:
                plan.creates.append(r if id(r) in as_given else
                                    bulk.Row(kind, _target(r, None, defaults), r.flags, r.where))
                continue
            s = match
            ignore.add((table.name, s["id"]))
            if mode == "create":
                plan.rejected.append(Problem(r.where, [
                    f"{kind.key_field}: {r.key!r} already exists in the registry (rule: unique; "
                    "--mode upsert or sync updates it)"]))
                continue
            target = _target(r, s, defaults)
            if _same(target, r.flags, s):
                plan.unchanged[kind.name] = plan.unchanged.get(kind.name, 0) + 1
            else:
                plan.updates.append((bulk.Row(kind, target, r.flags, r.where), s))
        for s in in_scope:
            key = s[kind.key_field].lower() if fold else s[kind.key_field]
            if key not in by_key and (table.name, s["id"]) not in ignore:
                ignore.add((table.name, s["id"]))
                plan.deletes.append((kind.name, s))
    seen = {} if seen is None else seen
    for where, reasons in bulk.clashes(session, plan.creates + [r for r, _ in plan.updates], seen,
                                       frozenset(ignore), since, stored_keys).items():
        plan.rejected.append(Problem(where, reasons))
    _plan_agreements(session, plan, agreements, codes)
    return plan


def _plan_agreements(session: Session, plan: Plan, agreements: list[tuple[Desired, dict[str, Any]]],
                     codes: set[str]) -> None:
    table = DataSharingAgreement.__table__
    stored = {(r.consumer_ods, r.provider_ods): r for r in session.execute(select(table))}
    wanted: dict[tuple[str, str], str] = {}
    for d, a in agreements:
        pair = (a["consumer_ods"], a["provider_ods"])
        if pair in wanted:
            plan.rejected.append(Problem(d.where, [f"{pair[0]}->{pair[1]}: also given by {wanted[pair]} "
                                                   "(rule: unique)"]))
            continue
        wanted[pair] = d.where
        s = stored.get(pair)
        if s is None:
            plan.agreements.append(("create", a, None))
        elif plan.mode == "create":
            plan.rejected.append(Problem(d.where, [f"agreement {pair[0]}->{pair[1]} already exists in the registry "
                                                   "(rule: unique; --mode upsert or sync updates it)"]))
        elif s.description != a["description"]:
            plan.agreements.append(("update", a, s))
        else:
            plan.unchanged[AGREEMENT] = plan.unchanged.get(AGREEMENT, 0) + 1
    if plan.mode == "sync":
        for pair, s in stored.items():
            if pair not in wanted and (pair[0] in codes or pair[1] in codes):
                plan.agreements.append(("delete", {"consumer_ods": pair[0], "provider_ods": pair[1]}, s))


def _audit_rows(actor: Actor, action: str, kind: str, key: str, before: Any, after: Any) -> dict[str, Any]:
    def dump(v: Any) -> str | None:
        return None if v is None else json.dumps(v, sort_keys=True, default=str)

    return {"at": utcnow(), "actor": actor.name, "action": action, "record_type": kind, "record_key": key,
            "before": dump(before), "after": dump(after)}


def apply_plan(session: Session, plan: Plan, actor: Actor, *,
               audit: Literal["record", "summary", "none"] = "record",
               source: str = "", progress: Callable[[int], None] | None = None) -> None:
    """Write ``plan`` (which must be ``ok``): deletes, then updates, then creates (so a key or party key and
    interaction freed by one is free for the next). Never commits; raises a RegistryError on a clash the
    plan could not see (the caller rolls back)."""
    assert plan.ok, "apply_plan takes a plan without rejections"
    actor.check_may_write(*{str(r.values["ods_code"]) for r in plan.creates},
                          *{str(r.values["ods_code"]) for r, _ in plan.updates},
                          *{str(s["ods_code"]) for _, s in plan.deletes})
    events: list[dict[str, Any]] = []
    each = audit == "record"
    for kind_name, s in plan.deletes:
        kind = bulk.KINDS[kind_name]
        row = session.get(kind.model, s["id"])
        assert row is not None
        session.delete(row)
        flush(session, f"{kind_name.replace('_', ' ')} {s[kind.key_field]!r}")
        if each:
            add_audit(session, actor, "delete", kind_name, s[kind.key_field], _public(s), None)
        if progress:
            progress(1)
    for r, s in plan.updates:
        scalars, lists = _FIELDS[r.kind.name]
        row = session.get(r.kind.model, s["id"])
        assert row is not None
        apply(row, r.values, scalars, lists, r.flags, replace=True)
        flush(session, f"{r.kind.name.replace('_', ' ')} {r.key!r}")
        if each:
            add_audit(session, actor, "update", r.kind.name, r.key, _public(s),
                      {**r.values, "version": row.version, "flags": r.flags})
        if progress:
            progress(1)
    for action, a, s in plan.agreements:
        key = f"{a['consumer_ods']}->{a['provider_ods']}"
        if action == "create":
            new = DataSharingAgreement(**a)
            session.add(new)
        else:
            row = session.get(DataSharingAgreement, s.id)
            assert row is not None
            if action == "delete":
                session.delete(row)
            else:
                row.description = a["description"]
                row.updated_at = utcnow()
        flush(session, f"data-sharing agreement {key}")
        if each:
            before = None if action == "create" else {"consumer_ods": s.consumer_ods, "provider_ods": s.provider_ods,
                                                      "description": s.description}
            add_audit(session, actor, action, AGREEMENT, key, before, None if action == "delete" else a)
    bulk.insert_rows(session, plan.creates, progress=progress)
    if each:
        events += [_audit_rows(actor, "create", r.kind.name, r.key, None, {**r.values, "version": 1,
                                                                           "flags": r.flags})
                   for r in plan.creates]
    elif audit == "summary" and (plan.creates or plan.updates or plan.deletes or plan.agreements):
        events.append(_audit_rows(actor, "import", "directory", source[-255:] or "-", None,
                                  {"mode": plan.mode, "counts": plan.counts()}))
    for chunk in bulk.chunks(events, bulk.BATCH):
        session.execute(insert(AuditEvent), chunk)


def _public(stored: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stored.items() if k not in ("id", "created_at", "updated_at")}


__all__ = ["MODES", "Desired", "Mode", "Plan", "Problem", "apply_plan", "build_plan"]
