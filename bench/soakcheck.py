"""The soak's verdicts from its logs and the database: lost, duplicated or phantom writes, and lookups that
answered something the database never held while they ran. Pure: takes rows, returns findings.

Every write the soak sends carries a marker, unique to it, as the first DNS label of the endpoint it sets
(``https://w2-117.soak.test/S00003/...``); a delete is known by the record and the version it named. The
server's audit table (one row per applied write, in the write's own transaction) is the ground truth of what
was applied and in what order; the write log says what each client was told.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ABSENT = None  #: the state "no MHS record for this practice and interaction"


def marker_of(endpoint: str) -> str:
    """The write marker an endpoint carries: its host's first label."""
    return (urlsplit(endpoint).hostname or "").split(".", 1)[0]


@dataclass
class Write:
    """One write as its client saw it. ``status`` None: no answer (a transport error)."""

    kind: str  # create | patch | delete | invalid
    ods: str
    marker: str
    uid: str | None  # the MHS record named (patch, delete, invalid) or made (create, once answered)
    expected_version: int | None
    sent: float
    answered: float = 0.0
    status: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return self.status is not None and self.status >= 400


@dataclass
class Lookup:
    """One lookup of a practice's endpoint: when it was sent and answered, and the markers it answered."""

    facade: str
    ods: str
    sent: float
    answered: float
    markers: tuple[str, ...]


@dataclass
class AuditRow:
    id: int
    action: str
    record_key: str
    before: str | None
    after: str | None


@dataclass
class Findings:
    acknowledged: int = 0
    refused: int = 0
    unanswered: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    refused_but_applied: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)  # audit rows no write of ours accounts for
    final_mismatch: list[str] = field(default_factory=list)
    lookups_checked: int = 0
    inconsistent: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.refused_but_applied or self.unexplained
                    or self.final_mismatch or self.inconsistent or self.unanswered)


@dataclass
class _Step:
    state: str | None
    earliest: float  # the commit happened at or after this (the write was sent)
    latest: float  # ... and at or before this (the answer arrived)


def check(writes: Sequence[Write], lookups: Iterable[Lookup], audit: Sequence[AuditRow],
          final: dict[str, list[str]], initial: dict[str, str | None], interaction: str) -> Findings:
    """``audit``: the MHS audit rows written during the run, by id; ``final``: each practice's endpoints now
    (one per MHS row for the interaction); ``initial``: each practice's marker before the run."""
    out = Findings()
    by_marker: dict[str, Write] = {}
    deletes: dict[tuple[str, int], list[Write]] = defaultdict(list)
    for w in writes:
        out.acknowledged += w.acknowledged
        out.refused += w.refused
        out.unanswered += w.status is None
        if w.kind == "delete":
            if w.uid is not None and w.expected_version is not None:
                deletes[(w.uid.lower(), w.expected_version)].append(w)
        else:
            by_marker[w.marker] = w
    applied: Counter[int] = Counter()  # id(write) -> audit rows that applied it
    chains: dict[str, list[_Step]] = {ods: [_Step(m, float("-inf"), float("-inf"))] for ods, m in initial.items()}
    for row in audit:
        before = json.loads(row.before) if row.before else None
        after = json.loads(row.after) if row.after else None
        record = after or before or {}
        if record.get("interaction_id") != interaction or record.get("ods_code") not in chains:
            continue
        write: Write | None = None
        if row.action == "delete" and before is not None:
            candidates = [w for w in deletes.get((row.record_key.lower(), int(before["version"])), [])
                          if not w.refused]
            write = candidates[0] if len(candidates) == 1 else None
            if len(candidates) > 1:
                out.duplicated.append(f"audit {row.id}: {len(candidates)} acknowledged deletes of one version")
            state = ABSENT
        else:
            state = marker_of((after or {}).get("endpoints", [""])[0])
            write = by_marker.get(state)
        if write is None:
            out.unexplained.append(f"audit {row.id}: {row.action} {row.record_key} ({record.get('ods_code')})")
            continue
        applied[id(write)] += 1
        if write.refused:
            out.refused_but_applied.append(f"{write.kind} {write.marker} answered {write.status} but applied")
        chains[record["ods_code"]].append(_Step(state, write.sent, write.answered if write.status else float("inf")))
    for w in writes:
        times = applied[id(w)]
        if w.acknowledged and times == 0:
            out.lost.append(f"{w.kind} {w.marker} ({w.ods}) answered {w.status} but never applied")
        elif times > 1:
            out.duplicated.append(f"{w.kind} {w.marker} ({w.ods}) applied {times} times")
    for ods, chain in chains.items():
        now = sorted(marker_of(e) for e in final.get(ods, []))
        expected = [] if chain[-1].state is ABSENT else [chain[-1].state]
        if now != expected:
            out.final_mismatch.append(f"{ods}: the database holds {now}, the writes say {expected}")
    for lookup in lookups:
        out.lookups_checked += 1
        problem = _lookup_problem(lookup, chains.get(lookup.ods))
        if problem:
            out.inconsistent.append(problem)
    return out


def _lookup_problem(lookup: Lookup, chain: list[_Step] | None) -> str | None:
    if chain is None:
        return None
    if len(lookup.markers) > 1:
        return f"{lookup.facade} {lookup.ods}: {len(lookup.markers)} records answered {lookup.markers}"
    answer = lookup.markers[0] if lookup.markers else ABSENT
    for k, step in enumerate(chain):
        if step.state != answer or step.earliest > lookup.answered:
            continue
        if k + 1 == len(chain) or chain[k + 1].latest >= lookup.sent:
            return None
    return (f"{lookup.facade} {lookup.ods}: answered {answer!r} during [{lookup.sent:.3f}, {lookup.answered:.3f}], "
            f"never the state then (states: {[(s.state, round(s.earliest, 3)) for s in chain[-4:]]})")
