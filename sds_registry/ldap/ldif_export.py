"""LDIF export of the whole directory: loads into slapd (bench schema) and re-imports identically.

Writes o=nhs, ou=Services, every nhsAs then nhsMhs entry, then ou=Organisations and its nhsOrg entries
when there are any; attributes in dit.py's order, values needing it in base64, lines folded at 76.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from sds_registry.ldap import dit


def _safe(value: str) -> bool:
    return not (
        value[:1] in (" ", ":", "<") or value[-1:] == " " or any(ord(c) > 126 or c in "\r\n\x00" for c in value)
    )


def ldif_line(name: str, value: str) -> str:
    text = f"{name}: {value}" if _safe(value) else f"{name}:: {base64.b64encode(value.encode()).decode()}"
    if len(text) <= 76:
        return text + "\n"
    parts = [text[:76]] + [" " + text[i : i + 75] for i in range(76, len(text), 75)]
    return "\n".join(parts) + "\n"


def _write(stream: IO[str], entry_dn: str, attrs: list[tuple[str, list[str]]]) -> None:
    stream.write(ldif_line("dn", entry_dn))
    for name, values in attrs:
        for v in values:
            stream.write(ldif_line(name, v))
    stream.write("\n")


CHUNK = 5000


def export_ldif(session: Session, stream: IO[str], progress: Callable[[int], None] | None = None) -> int:
    """Write o=nhs, ou=Services, every nhsAs and nhsMhs entry, then ou=Organisations and its nhsOrg
    entries (when there are any). Returns the number of entries written. Reads CHUNK rows at a time
    (keyset on id) with their child values, so memory stays flat however big the directory is. ``progress``
    is called with the number of records written, a chunk at a time. Data-sharing agreements are not LDAP
    entries: ``sds export`` writes them to a side file (services.transfer.export_agreements)."""
    _write(stream, dit.BASE, [("objectClass", ["top", "organization"]), ("o", ["nhs"])])
    _write(stream, dit.SERVICES, [("objectClass", ["top", "organizationalUnit"]), ("ou", ["Services"])])
    count = 2
    for cls in dit.ENTRY_CLASSES:
        table = cls.model.__table__
        last = 0
        while True:
            rows = (
                session.execute(select(table).where(table.c.id > last).order_by(table.c.id).limit(CHUNK))
                .mappings()
                .all()
            )
            if not rows:
                break
            if cls is dit.ORG and last == 0:
                ou = [("objectClass", ["top", "organizationalUnit"]), ("ou", ["Organisations"])]
                _write(stream, dit.ORGANISATIONS, ou)
                count += 1
            ids = [row["id"] for row in rows]
            lists = _child_values(session, cls, ids)
            for row in rows:
                attrs: list[tuple[str, list[str]]] = [("objectClass", list(cls.classes))]
                for f in cls.fields:
                    if f.child is not None:
                        values = lists[f.field].get(row["id"], [])
                    else:
                        v = row[f.field]
                        values = [] if v is None else [str(v)]
                    if values:
                        attrs.append((f.attr, values))
                _write(stream, cls.dn_of(row[cls.key_field]), attrs)
                count += 1
            last = ids[-1]
            if progress:
                progress(len(rows))
    return count


def _child_values(session: Session, cls: dit.EntryClass, ids: list[int]) -> dict[str, dict[int, list[str]]]:
    """field -> parent id -> values in position order, for the multi-valued attributes of ``ids``."""
    lists: dict[str, dict[int, list[str]]] = {}
    for f in cls.fields:
        if f.child is None:
            continue
        child = f.child[0].__table__
        fk = child.c[f.child[1]]
        grouped: dict[int, list[str]] = {}
        query = select(fk, child.c[f.child[2]]).where(fk.between(ids[0], ids[-1])).order_by(fk, child.c.position)
        for parent, value in session.execute(query):
            grouped.setdefault(parent, []).append(value)
        lists[f.field] = grouped
    return lists


def record_flags(session: Session) -> dict[str, list[str]]:
    """DN -> lenient flags of every flagged record (what an export's side file carries besides the agreements:
    a flag for an attribute we do not hold cannot be re-derived from the exported entry)."""
    out: dict[str, list[str]] = {}
    for cls in dit.ENTRY_CLASSES:
        table = cls.model.__table__
        query = select(table.c[cls.key_field], table.c.flags).where(table.c.flags.is_not(None)).order_by(table.c.id)
        for key, flags in session.execute(query):
            out[cls.dn_of(key)] = flags.split()
    return out
