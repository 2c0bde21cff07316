"""``sds token`` and ``sds audit``: API clients (create, list, revoke) and the SSP decision audit."""

from __future__ import annotations

import json

import click

from sds_registry.cli.common import database, settings_or_exit
from sds_registry.db import transaction
from sds_registry.errors import RegistryError


@click.group()
def token() -> None:
    """API bearer tokens."""


@token.command("create")
@click.option("--name", required=True, help="A name for the client (shown in the audit log).")
@click.option("--ods", "ods_codes", multiple=True, help="An ODS code the token may write (repeatable).")
@click.option("--admin", is_flag=True, help="The token may write anything.")
def token_create(name: str, ods_codes: tuple[str, ...], admin: bool) -> None:
    """Create a token bound to ODS codes (or an admin token) and print it once."""
    from sds_registry.services.clients import create_client
    from sds_registry.services.writes import CLI_ACTOR

    if admin == bool(ods_codes):
        raise click.UsageError("give either --admin or one or more --ods")
    try:
        with database(settings_or_exit()) as factory, transaction(factory) as session:
            new_token = create_client(session, name, admin=admin, ods_codes=ods_codes, actor=CLI_ACTOR)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(new_token)


@token.command("list")
@click.option("--live", is_flag=True, help="Leave revoked tokens out.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def token_list(live: bool, as_json: bool) -> None:
    """Tokens: id, name, admin or ODS codes, created, last used, revoked (never the token or its hash)."""
    from sds_registry.services.clients import client_dict, list_clients

    with database(settings_or_exit()) as factory, factory() as session:
        for row in list_clients(session, live_only=live):
            item = client_dict(row)
            if as_json:
                click.echo(json.dumps(item))
                continue
            scope = "admin" if item["admin"] else "ods=" + ",".join(item["ods_codes"])
            revoked = f"revoked={item['revoked_at']}" if item["revoked"] else "live"
            click.echo(f"{item['id']}\t{item['name']}\t{scope}\tcreated={item['created_at']}\t"
                       f"last_used={item['last_used_at'] or '-'}\t{revoked}")


@token.command("revoke")
@click.argument("name_or_id")
def token_revoke(name_or_id: str) -> None:
    """Revoke the live token NAME (or the token with id ID): it is refused from its next request on."""
    from sds_registry.services.clients import find_client, revoke_client
    from sds_registry.services.writes import CLI_ACTOR

    try:
        with database(settings_or_exit()) as factory, transaction(factory) as session:
            row = revoke_client(session, find_client(session, name_or_id), CLI_ACTOR)
            done = f"revoked {row.name!r} (id {row.id})"
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(done)


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing decisions as they are recorded.")
@click.option("--asid", help="Only decisions this ASID sent or received.")
@click.option("--last", type=click.IntRange(min=0), default=20, show_default=True,
              help="Without --follow: how many recent decisions to print.")
def audit(follow: bool, asid: str | None, last: int) -> None:
    """SSP decisions: the most recent ones, or (--follow) each one as it is recorded."""
    from sds_registry.services.audit import recent_decisions
    from sds_registry.ssp.follow import follow as follow_decisions
    from sds_registry.ssp.follow import format_line

    settings = settings_or_exit()
    if follow:
        follow_decisions(settings, asid=asid)
        return
    with database(settings) as factory, factory() as session:
        for row in recent_decisions(session, asid=asid, last=last):
            click.echo(format_line(row))
