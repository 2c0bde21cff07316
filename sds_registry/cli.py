"""The ``sds`` command: thin click commands over the services. Each write command owns its transaction."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from sds_registry.config import Settings, load_settings
from sds_registry.db import begin_write, make_engine, make_sessionmaker, transaction
from sds_registry.errors import RegistryError

SEED_DIR = Path(str(resources.files("sds_registry") / "seed_data"))  # shipped in the package


def _settings() -> Settings:
    try:
        return load_settings()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A sessionmaker for the configured database; the engine is disposed when the command ends."""
    engine = make_engine(settings.database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@click.group()
def main() -> None:
    """sds-registry: a self-hostable Spine Directory Service (registry, LDAP, SDS FHIR API, SSP)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


# ---- database ---------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (alembic upgrade head) and sync the built-in interaction catalogue."""
    from sds_registry.migrate import sync_catalogue, upgrade

    settings = _settings()
    upgrade(settings.database_url)
    with _database(settings) as factory, transaction(factory) as session:
        changed = sync_catalogue(session)
    click.echo(f"database at head; {changed} catalogue interactions added or refreshed")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree (alembic check)."""
    from sds_registry.migrate import check

    check(_settings().database_url)
    click.echo("models and migrations agree")


# ---- data -------------------------------------------------------------------------------------------------


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read JSON: {exc}") from None


def _finish(session: Session, report: Any, what: str) -> None:
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        session.rollback()
        raise click.ClickException(f"{what}: {len(report.rejected)} record(s) rejected; nothing was stored")
    session.commit()


@main.command()
@click.option("--synthetic", type=click.IntRange(min=0), default=0, help="Also add N synthetic practices.")
@click.option("--start", type=click.IntRange(min=0), default=0, help="First synthetic practice number.")
def seed(synthetic: int, start: int) -> None:
    """Load the sample directory in seed_data/ (idempotent), plus N deterministic synthetic practices."""
    from sds_registry.services.directory import find_organisations
    from sds_registry.services.synthetic import create_practice, practice_ods
    from sds_registry.services.transfer import import_directory

    settings = _settings()
    added = 0
    with _database(settings) as factory:
        with factory() as session:
            begin_write(session)
            for path in sorted(SEED_DIR.glob("*.json")):
                report = import_directory(session, _load_json(path), skip_existing=True)
                click.echo(f"{path.name}:")
                _finish(session, report, path.name)
        for n in range(start, start + synthetic):
            with transaction(factory) as session:
                begin_write(session)
                if find_organisations(session, ods_code=practice_ods(n)):
                    continue
                create_practice(session, n)
                added += 1
    if synthetic:
        click.echo(f"synthetic practices: {added} added, {synthetic - added} already present")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lenient", is_flag=True, help="Store and flag values that break our rules instead of refusing.")
def import_(file: Path, lenient: bool) -> None:
    """Import FILE (.json in the export format, or .ldif as ldapsearch prints it): all or nothing."""
    settings = _settings()
    with _database(settings) as factory, factory() as session:
        begin_write(session)
        report: Any
        if file.suffix.lower() == ".ldif":
            from sds_registry.ldap.ldif import import_ldif

            report = import_ldif(session, file, lenient=lenient)
        else:
            from sds_registry.services.transfer import import_directory

            report = import_directory(session, _load_json(file), lenient=lenient)
        _finish(session, report, str(file))


@main.command()
@click.option("--format", "fmt", type=click.Choice(["json", "ldif"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
def export(fmt: str, output: Path | None) -> None:
    """Write the whole directory as JSON (re-importable) or LDIF (loads into slapd and back into us)."""
    settings = _settings()
    stream = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        with _database(settings) as factory, factory() as session:
            if fmt == "ldif":
                from sds_registry.ldap.ldif import export_ldif

                export_ldif(session, stream)
            else:
                from sds_registry.services.transfer import export_directory

                json.dump(export_directory(session), stream, indent=2)
                stream.write("\n")
    finally:
        if output:
            stream.close()


@main.command()
@click.argument("ods")
@click.argument("interaction")
def resolve(ods: str, interaction: str) -> None:
    """The GP Connect lookup: service root URL, party key and ASID for a practice and interaction."""
    from sds_registry.services.directory import resolve as do_resolve

    with _database(_settings()) as factory, factory() as session:
        try:
            found = do_resolve(session, ods, interaction)
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({
        "ods_code": found.ods_code, "interaction_id": found.interaction_id,
        "service_root_url": found.service_root_url, "party_key": found.party_key, "asid": found.asid,
        "fqdn": found.fqdn, "cpa_id": found.cpa_id,
    }, indent=2))


# ---- tokens -----------------------------------------------------------------------------------------------


@main.group()
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
        with _database(_settings()) as factory, transaction(factory) as session:
            new_token = create_client(session, name, admin=admin, ods_codes=ods_codes)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(new_token)


@main.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing decisions as they are recorded.")
@click.option("--asid", help="Only decisions this ASID sent or received.")
@click.option("--last", type=click.IntRange(min=0), default=20, show_default=True,
              help="Without --follow: how many recent decisions to print.")
def audit(follow: bool, asid: str | None, last: int) -> None:
    """SSP decisions: the most recent ones, or (--follow) each one as it is recorded."""
    from sds_registry.services.audit import recent_decisions
    from sds_registry.ssp.follow import follow as follow_decisions
    from sds_registry.ssp.follow import format_line

    settings = _settings()
    if follow:
        follow_decisions(settings, asid=asid)
        return
    with _database(settings) as factory, factory() as session:
        for row in recent_decisions(session, asid=asid, last=last):
            click.echo(format_line(row))


# ---- serving ----------------------------------------------------------------------------------------------


@main.command()
def serve() -> None:
    """Serve every enabled facade (HTTP on SDS_HTTP_BIND, LDAP on SDS_LDAP_BIND, SSP on SDS_SSP_BIND)."""
    from sds_registry.serve import supervise

    sys.exit(supervise(_settings()))


@main.command("serve-facade", hidden=True)
@click.argument("name", type=click.Choice(["http", "ldap", "ssp"]))
def serve_facade(name: str) -> None:
    """Run one facade in this process (used by 'sds serve')."""
    from sds_registry.serve import run_facade

    run_facade(name, _settings())


if __name__ == "__main__":
    main()
