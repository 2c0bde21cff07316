"""``sds db``: schema migrations and the model/migration check."""

from __future__ import annotations

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

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
    try:
        upgrade(settings.database_url)
    except OperationalError as exc:  # unreachable server, unwritable file: one line, not a traceback
        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise click.ClickException(f"cannot reach the database {shown}: {reason} (check SDS_DATABASE_URL and "
                                   "that the server runs)") from None
    with database(settings) as factory, transaction(factory) as session:
        changed = sync_catalogue(session)
    click.echo(f"database at head; {changed} catalogue interactions added or refreshed")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree (alembic check)."""
    from sds_registry.migrate import check

    check(settings_or_exit().database_url)
    click.echo("models and migrations agree")
