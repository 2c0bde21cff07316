"""``sds serve`` and the hidden ``sds serve-facade`` that ``sds serve`` starts once per facade."""

from __future__ import annotations

import sys

import click

from sds_registry.cli.common import settings_or_exit


@click.command()
def serve() -> None:
    """Serve every enabled facade (HTTP on SDS_HTTP_BIND, LDAP on SDS_LDAP_BIND, SSP on SDS_SSP_BIND)."""
    from sds_registry.serve import supervise

    sys.exit(supervise(settings_or_exit()))


@click.command("serve-facade", hidden=True)
@click.argument("name", type=click.Choice(["http", "ldap", "ssp"]))
@click.option("--restarted", is_flag=True, help="This process replaces one that died.")
def serve_facade(name: str, restarted: bool) -> None:
    """Run one facade in this process (used by 'sds serve')."""
    from sds_registry.serve import run_facade

    run_facade(name, settings_or_exit(), restarted)
