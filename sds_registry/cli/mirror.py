"""``sds mirror URL``: make the registry's copy of a live LDAP directory's records equal to the source."""

from __future__ import annotations

import time
from pathlib import Path

import click

from sds_registry.cli.common import counted, database, settings_or_exit
from sds_registry.db import begin_write
from sds_registry.errors import RegistryError
from sds_registry.mirror.fetch import DEFAULT_BASE, FetchStats, MirrorError, Source, fetch
from sds_registry.mirror.plan import apply_mirror, check_filter, read, scope_classes
from sds_registry.services.writes import Actor


def _password(password_file: Path | None, from_env: str) -> str | None:
    if password_file is not None:
        try:
            return password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"--password-file: {exc}") from None
    return from_env or None


@click.command()
@click.argument("url")
@click.option("--base", default=DEFAULT_BASE, show_default=True,
              help="ou=services,o=nhs (nhsAs, nhsMhs), ou=organisations,o=nhs (nhsOrg) or o=nhs (all three).")
@click.option("--filter", "extra_filter", default="", help="An RFC 4515 filter ANDed into the search.")
@click.option("--ods", multiple=True, help="Only these organisations' records (repeatable).")
@click.option("--bind-dn", default="", help="Simple bind as this DN (anonymous without).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the bind password (else SDS_MIRROR_PASSWORD).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Client certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Its private key (PEM).")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False),
              help="CA bundle to verify the server (default: the system's).")
@click.option("--start-tls", is_flag=True, help="StartTLS on ldap:// (implied by --cert or --ca).")
@click.option("--page-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Entries per page (paged-results control).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to connect and to wait for each answer.")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def mirror(url: str, base: str, extra_filter: str, ods: tuple[str, ...], bind_dn: str, password_file: Path | None,
           cert: str | None, key: str | None, ca: str | None, start_tls: bool, page_size: int, timeout: float,
           dry_run: bool) -> None:
    """Refresh the registry from the live LDAP directory at URL (ldap://host:port or ldaps://host:port).

    Reads nhsAs, nhsMhs (and nhsOrg under o=nhs) with the paged-results control, then makes the records the
    same search reaches here equal to the source, in one transaction: creates, updates, deletes, each audited
    with URL as the actor. Records the search does not reach are never touched."""
    settings = settings_or_exit()
    source = Source(url, base=base, extra_filter=extra_filter, ods_codes=tuple(o.strip() for o in ods),
                    bind_dn=bind_dn, password=_password(password_file, settings.mirror_password) if bind_dn else None,
                    cert=cert or "", key=key or "", ca=ca or "", start_tls=start_tls, page_size=page_size,
                    timeout=timeout)
    stats = FetchStats()
    started = time.monotonic()
    with database(settings) as factory:  # checked (reachable, migrated) before the source is read
        try:
            scope_classes(source)
            check_filter(source)
            outcome, desired = read(counted(fetch(source, stats), f"reading {url}"))
        except MirrorError as exc:
            raise click.ClickException(str(exc)) from None
        fetched = time.monotonic() - started
        with factory() as session:
            begin_write(session)
            try:
                apply_mirror(session, source, outcome, desired, Actor(source.actor, admin=True))
            except RegistryError as exc:
                session.rollback()
                raise click.ClickException(f"{url}: {exc}; nothing was changed") from None
            for line in outcome.lines():
                click.echo(line)
            if not outcome.ok:
                session.rollback()
                raise click.ClickException(f"{url}: {len(outcome.report.rejected) + len(outcome.rejected)} "
                                           "record(s) rejected; nothing was changed")
            if dry_run:
                session.rollback()
            else:
                session.commit()
    took = time.monotonic() - started
    click.echo(f"{outcome.summary()}{' (dry run: nothing changed)' if dry_run else ''}")
    click.echo(f"{outcome.fetched} entries read in {stats.pages} page(s) in {fetched:.1f}s; "
               f"{outcome.unchanged} unchanged; {took:.1f}s in all", err=True)
