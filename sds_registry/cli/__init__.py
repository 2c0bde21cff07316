"""The ``sds`` command: thin click commands over the services, one module per group of commands. Each write
command owns its transaction. Commands are added here; their modules never import this one."""

from __future__ import annotations

import click

from sds_registry.cli import admin, agreements, changes, data, db, mirror, serving
from sds_registry.config import load_settings
from sds_registry.errors import RegistryError
from sds_registry.logs import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sds-registry", prog_name="sds")
def main() -> None:
    """sds-registry: a self-hostable Spine Directory Service (registry, LDAP, SDS FHIR API, SSP)."""
    try:  # a bad setting is reported by the command itself, in one line: log with the defaults meanwhile
        settings = load_settings()
        setup_logging(settings.log_level, settings.log_format)
    except RegistryError:
        setup_logging()


for command in (db.db, data.seed, data.import_, data.export, data.resolve, admin.token, admin.audit,
                agreements.agreements, changes.changes, mirror.mirror, serving.serve, serving.serve_facade):
    main.add_command(command)
