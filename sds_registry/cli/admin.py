"""``sds token`` and ``sds audit``: API clients and the SSP decision audit."""

from __future__ import annotations

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

    if admin == bool(ods_codes):
        raise click.UsageError("give either --admin or one or more --ods")
    try:
        with database(settings_or_exit()) as factory, transaction(factory) as session:
            new_token = create_client(session, name, admin=admin, ods_codes=ods_codes)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(new_token)


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
