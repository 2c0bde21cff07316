"""``sds changes``: the registry's write audit (who changed which record, before and after), one line per event."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

import click

from sds_registry.cli.common import database, settings_or_exit
from sds_registry.config import Settings
from sds_registry.errors import InvalidIdentifier
from sds_registry.models import AuditEvent

#: Fields every update changes: left out of the one-line summary (``--json`` has everything).
_NOISE = frozenset({"version", "updated_at"})


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("an ISO 8601 date-time, e.g. 2026-01-31T09:00:00Z", param_hint=name) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def format_line(row: AuditEvent) -> str:
    """``<time> #<id> <actor> <action> <type>:<key>`` and, for updates, the fields that changed."""
    at = (row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{at} #{row.id} {row.actor} {row.action} {row.record_type}:{row.record_key}"
    if row.before and row.after:
        before, after = json.loads(row.before), json.loads(row.after)
        changed = sorted(k for k in before.keys() | after.keys() if k not in _NOISE and before.get(k) != after.get(k))
        line += " changed=" + (",".join(changed) or "-")
    return line


def _render(row: AuditEvent, as_json: bool) -> str:
    from sds_registry.services.audit import write_event_dict

    return json.dumps(write_event_dict(row)) if as_json else format_line(row)


def follow_changes(settings: Settings, filters: dict[str, Any], *, as_json: bool = False, interval: float = 1.0,
           out: TextIO = sys.stdout, stop: threading.Event | None = None) -> None:
    """Print each matching write recorded from now on, until ``stop`` is set or KeyboardInterrupt."""
    from sds_registry.services.audit import follow_write_events

    stop = stop or threading.Event()
    with database(settings) as factory:
        try:
            for rows in follow_write_events(factory, wait=lambda: stop.wait(interval), **filters):
                for row in rows:
                    out.write(_render(row, as_json) + "\n")
                if rows:
                    out.flush()
        except KeyboardInterrupt:
            pass


@click.command()
@click.option("--record", help="TYPE, TYPE:KEY or KEY (types: organisation|org, accredited_system|as, "
                               "message_handling_system|mhs, data_sharing_agreement|agreement, api_client|client, "
                               "directory and ldif for whole-file imports).")
@click.option("--ods", help="Only writes to records of this organisation (an agreement's either side).")
@click.option("--actor", help="Only writes by this API client name ('cli' for the command line).")
@click.option("--since", help="From this time on (ISO 8601, inclusive).")
@click.option("--until", help="Before this time (ISO 8601, exclusive).")
@click.option("--last", type=click.IntRange(min=0), default=20, show_default=True,
              help="Without --follow: how many of the most recent matching writes to print.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing writes as they are recorded.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event, with before and after.")
def changes(record: str | None, ods: str | None, actor: str | None, since: str | None, until: str | None,
            last: int, follow: bool, as_json: bool) -> None:
    """The write audit, oldest first: the most recent writes, or (--follow) each one as it is recorded."""
    from sds_registry.domain import formats
    from sds_registry.services.audit import parse_record, recent_write_events

    record_type, record_key = parse_record(record or "")
    if ods is not None:
        try:
            formats.ods_code(ods, "ods")
        except InvalidIdentifier as exc:
            raise click.BadParameter(str(exc), param_hint="--ods") from None
    filters: dict[str, Any] = {"record_type": record_type, "record_key": record_key, "actor": actor, "ods": ods,
                               "since": _when(since, "--since"), "until": _when(until, "--until")}
    settings = settings_or_exit()
    if follow:
        follow_changes(settings, filters, as_json=as_json)
        return
    with database(settings) as factory, factory() as session:
        for row in recent_write_events(session, last=last, **filters):
            click.echo(_render(row, as_json))
