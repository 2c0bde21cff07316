"""Schema migrations (Alembic, configured in code: no ini file) and the built-in interaction catalogue sync."""

from __future__ import annotations

import warnings
from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from sds_registry.domain.interactions import CATALOGUE
from sds_registry.models import InteractionType

#: The migration scripts ship inside the package; a wheel installed as files gives a real directory, as Alembic
#: needs. The top-level alembic.ini names the same folder (``sds_registry:migrations``) for ``alembic revision``.
MIGRATIONS = resources.files("sds_registry") / "migrations"


def alembic_config(database_url: str | None = None, connection: Connection | None = None) -> Config:
    """Alembic's configuration without an ini file: the packaged scripts, and the URL or connection to use."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if database_url:
        config.attributes["database_url"] = database_url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree (alembic check).

    SQLite cannot reflect expression indexes (the lower() ones); those warnings are expected and hidden.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index.*")
        command.check(alembic_config(database_url))


def sync_catalogue(session: Session) -> int:
    """Insert or refresh the built-in GP Connect interactions; other Spine URNs are left alone."""
    existing = {row.id: row for row in session.scalars(select(InteractionType))}
    changed = 0
    for item in CATALOGUE:
        row = existing.get(item.id) or InteractionType(id=item.id)
        values = {
            "capability": item.capability, "http_method": item.http_method, "path_pattern": item.path_pattern,
            "requested_scope": item.requested_scope, "description": item.description, "builtin": True,
        }
        if item.id not in existing or any(getattr(row, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            session.add(row)
            changed += 1
    return changed
