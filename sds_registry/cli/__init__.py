"""The ``sds`` command: thin click commands over the services, one module per group of commands. Each write
command owns its transaction. Commands are added here; their modules never import this one."""

from __future__ import annotations

import logging

import click

from sds_registry.cli import admin, agreements, changes, data, db, mirror, serving


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sds-registry", prog_name="sds")
def main() -> None:
    """sds-registry: a self-hostable Spine Directory Service (registry, LDAP, SDS FHIR API, SSP)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


for command in (db.db, data.seed, data.import_, data.export, data.resolve, admin.token, admin.audit,
                agreements.agreements, changes.changes, mirror.mirror, serving.serve, serving.serve_facade):
    main.add_command(command)
