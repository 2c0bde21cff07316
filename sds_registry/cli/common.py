"""Helpers every ``sds`` command shares: settings that fail as a usage message, a database per command,
reading JSON files and finishing an all-or-nothing import. No commands here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from sds_registry.config import Settings, load_settings
from sds_registry.db import make_engine, make_sessionmaker
from sds_registry.errors import RegistryError


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A sessionmaker for the configured database; the engine is disposed when the command ends."""
    engine = make_engine(settings.database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read JSON: {exc}") from None


def finish(session: Session, report: Any, what: str) -> None:
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        session.rollback()
        raise click.ClickException(f"{what}: {len(report.rejected)} record(s) rejected; nothing was stored")
    session.commit()
