"""The system page (/systems/<ASID>): an accredited system's interactions, party key, product, clients, its
MHS records and its history from the write audit."""

from __future__ import annotations

import json

from werkzeug.wrappers import Response

from sds_registry.domain.interactions import lookup
from sds_registry.errors import NotFound
from sds_registry.services import browse, directory
from sds_registry.web import context
from sds_registry.web.pages import bp
from sds_registry.web.pages.common import not_found, page, when
from sds_registry.web.pages.explain import flag


def _changes(before: str | None, after: str | None) -> list[str]:
    """The fields an audited write changed, as ``name: old -> new`` (every field of a create or delete)."""
    old = json.loads(before) if before else {}
    new = json.loads(after) if after else {}
    skip = {"version", "updated_at", "created_at", "id"}
    out = []
    for name in [*old, *(k for k in new if k not in old)]:
        if name in skip or old.get(name) == new.get(name):
            continue
        out.append(f"{name}: {json.dumps(old.get(name))} → {json.dumps(new.get(name))}")
    return out


@bp.get("/systems/<asid>")
def system(asid: str) -> Response:
    session = context.session()
    try:
        if not asid.strip().isdigit():  # an ASID is 12 digits (and PostgreSQL refuses a NUL in a parameter)
            raise NotFound(asid)
        row = directory.get_accredited_system(session, asid.strip())
    except NotFound:
        return not_found(f"No accredited system has the ASID {asid}.")
    interactions = [(i, lookup(i)) for i in row.interactions]
    mhs = browse.find_mhs_records(session, browse.Query("party_key", row.party_key), limit=browse.ORGANISATION_LIMIT)
    history = [{"event": e, "changes": _changes(e.before, e.after)} for e in browse.system_history(session, row.asid)]
    return page("system.html", title=f"System {row.asid}", row=row, interactions=interactions, mhs=mhs.items,
                history=history, flags=[flag(code) for code in (row.flags or "").split()], when=when)
