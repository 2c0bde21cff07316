"""``sds db``: schema migrations and the model/migration check."""

from __future__ import annotations

import click

from sds_registry.cli.common import database, settings_or_exit
from sds_registry.db import transaction


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (alembic upgrade head) and sync the built-in interaction catalogue."""
    from sds_registry.migrate import sync_catalogue, upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url)
    with database(settings) as factory, transaction(factory) as session:
        changed = sync_catalogue(session)
    click.echo(f"database at head; {changed} catalogue interactions added or refreshed")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree (alembic check)."""
    from sds_registry.migrate import check

    check(settings_or_exit().database_url)
    click.echo("models and migrations agree")
