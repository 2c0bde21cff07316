"""``sds agreements``: list, add and delete the data-sharing agreements the SSP's check 9 reads."""

from __future__ import annotations

import json

import click

from sds_registry.cli.common import database, settings_or_exit
from sds_registry.db import transaction
from sds_registry.errors import RegistryError


@click.group()
def agreements() -> None:
    """Data-sharing agreements: consumer organisation -> provider organisation (``*`` = any)."""


@agreements.command("list")
@click.option("--consumer", "consumer_ods", help="Only agreements with this consumer side (ODS code or '*').")
@click.option("--provider", "provider_ods", help="Only agreements with this provider side (ODS code or '*').")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_(consumer_ods: str | None, provider_ods: str | None, as_json: bool) -> None:
    """Agreements in id order: id, consumer -> provider, description."""
    from sds_registry.services.agreements import find_agreements
    from sds_registry.services.records import agreement_dict

    with database(settings_or_exit()) as factory, factory() as session:
        for row in find_agreements(session, consumer_ods=consumer_ods, provider_ods=provider_ods):
            if as_json:
                click.echo(json.dumps(agreement_dict(row)))
            else:
                click.echo(f"{row.id}\t{row.consumer_ods} -> {row.provider_ods}\t{row.description or ''}")


@agreements.command("add")
@click.argument("consumer_ods")
@click.argument("provider_ods")
@click.option("--description", help="Why the two may talk.")
def add(consumer_ods: str, provider_ods: str, description: str | None) -> None:
    """Let CONSUMER_ODS call PROVIDER_ODS through the SSP ('*' for any organisation)."""
    from sds_registry.services.agreements import create_agreement
    from sds_registry.services.writes import CLI_ACTOR

    data = {"consumer_ods": consumer_ods, "provider_ods": provider_ods, "description": description}
    try:
        with database(settings_or_exit()) as factory, transaction(factory) as session:
            row = create_agreement(session, data, CLI_ACTOR)
            done = f"{row.id}\t{row.consumer_ods} -> {row.provider_ods}"
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(done)


@agreements.command("delete")
@click.argument("agreement", nargs=-1, required=True)
def delete(agreement: tuple[str, ...]) -> None:
    """Delete the agreement ID, or the one from CONSUMER_ODS to PROVIDER_ODS (two arguments)."""
    from sds_registry.services.agreements import delete_agreement, get_agreement, get_agreement_pair
    from sds_registry.services.writes import CLI_ACTOR

    if len(agreement) > 2 or (len(agreement) == 1 and not agreement[0].isdigit()):
        raise click.UsageError("give an agreement's id, or its CONSUMER_ODS and PROVIDER_ODS")
    try:
        with database(settings_or_exit()) as factory, transaction(factory) as session:
            row = (get_agreement(session, int(agreement[0])) if len(agreement) == 1
                   else get_agreement_pair(session, *agreement))
            done = f"deleted {row.id}\t{row.consumer_ods} -> {row.provider_ods}"
            delete_agreement(session, row, None, CLI_ACTOR)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(done)
