"""``sds seed``, ``sds import``, ``sds export`` and ``sds resolve``: the directory's data in and out."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click

from sds_registry.cli.common import database, finish, load_json, settings_or_exit
from sds_registry.db import begin_write, transaction
from sds_registry.errors import RegistryError

SEED_DIR = Path(str(resources.files("sds_registry") / "seed_data"))  # shipped in the package


@click.command()
@click.option("--synthetic", type=click.IntRange(min=0), default=0, help="Also add N synthetic practices.")
@click.option("--start", type=click.IntRange(min=0), default=0, help="First synthetic practice number.")
def seed(synthetic: int, start: int) -> None:
    """Load the sample directory shipped in the package (idempotent), plus N deterministic synthetic practices."""
    from sds_registry.services.directory import find_organisations
    from sds_registry.services.synthetic import create_practice, practice_ods
    from sds_registry.services.transfer import import_directory

    settings = settings_or_exit()
    added = 0
    with database(settings) as factory:
        with factory() as session:
            begin_write(session)
            for path in sorted(SEED_DIR.glob("*.json")):
                report = import_directory(session, load_json(path), skip_existing=True)
                click.echo(f"{path.name}:")
                finish(session, report, path.name)
        for n in range(start, start + synthetic):
            with transaction(factory) as session:
                begin_write(session)
                if find_organisations(session, ods_code=practice_ods(n)):
                    continue
                create_practice(session, n)
                added += 1
    if synthetic:
        click.echo(f"synthetic practices: {added} added, {synthetic - added} already present")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lenient", is_flag=True, help="Store and flag values that break our rules instead of refusing.")
def import_(file: Path, lenient: bool) -> None:
    """Import FILE (.json in the export format, or .ldif as ldapsearch prints it): all or nothing."""
    settings = settings_or_exit()
    with database(settings) as factory, factory() as session:
        begin_write(session)
        report: Any
        if file.suffix.lower() == ".ldif":
            from sds_registry.ldap.ldif import import_ldif

            report = import_ldif(session, file, lenient=lenient)
        else:
            from sds_registry.services.transfer import import_directory

            report = import_directory(session, load_json(file), lenient=lenient)
        finish(session, report, str(file))


@click.command()
@click.option("--format", "fmt", type=click.Choice(["json", "ldif"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
def export(fmt: str, output: Path | None) -> None:
    """Write the whole directory as JSON (re-importable) or LDIF (loads into slapd and back into us)."""
    settings = settings_or_exit()
    stream = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        with database(settings) as factory, factory() as session:
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


@click.command()
@click.argument("ods")
@click.argument("interaction")
def resolve(ods: str, interaction: str) -> None:
    """The GP Connect lookup: service root URL, party key and ASID for a practice and interaction."""
    from sds_registry.services.directory import resolve as do_resolve

    with database(settings_or_exit()) as factory, factory() as session:
        try:
            found = do_resolve(session, ods, interaction)
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({
        "ods_code": found.ods_code, "interaction_id": found.interaction_id,
        "service_root_url": found.service_root_url, "party_key": found.party_key, "asid": found.asid,
        "fqdn": found.fqdn, "cpa_id": found.cpa_id,
    }, indent=2))
