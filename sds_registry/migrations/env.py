"""Alembic environment: the URL comes from sds_registry.config (or an explicit connection in tests)."""

from __future__ import annotations

from alembic import context

import sds_registry.models  # noqa: F401  (registers every table)
from sds_registry.config import load_settings
from sds_registry.db import Base, make_engine

target_metadata = Base.metadata
config = context.config
#: Tables the migrations keep that no model maps: 0004's write counter, which only triggers and
#: services/generation.py touch (so tests and tools that walk the models' tables leave its row alone).
UNMAPPED_TABLES = frozenset({"directory_generation"})


def _include(_obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object) -> bool:
    return not (type_ == "table" and name in UNMAPPED_TABLES)


def run_migrations_offline() -> None:
    url = config.attributes.get("database_url") or load_settings().database_url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("database_url") or load_settings().database_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=_include,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
