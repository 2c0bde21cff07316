"""Helpers every ``sds`` command shares: settings that fail as a usage message, a database per command,
reading JSON files and finishing an all-or-nothing import. No commands here."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session, sessionmaker

from sds_registry.config import Settings, load_settings, unknown_variable_warnings
from sds_registry.db import make_engine, make_sessionmaker, unavailable
from sds_registry.errors import RegistryError

T = TypeVar("T")

log = logging.getLogger("sds.config")


def settings_or_exit() -> Settings:
    """The settings, or a one-line usage error naming the variable; warns once about unknown SDS_* variables (not
    again in the facade processes ``sds serve`` starts)."""
    context = click.get_current_context(silent=True)
    if context is None or context.info_name != "serve-facade":
        for warning in unknown_variable_warnings():  # first: a typo may explain the error below
            log.warning("%s", warning)
    try:
        return load_settings()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A sessionmaker for the configured database, once it is reachable and migrated (else one line saying what to
    do, and a non-zero exit); the engine is disposed when the command ends."""
    from sds_registry.serve import database_problem

    problem = database_problem(settings.database_url)
    if problem is not None:
        raise click.ClickException(problem)
    engine = make_engine(settings.database_url)
    try:
        yield make_sessionmaker(engine)
    except Exception as exc:
        failure = unavailable(exc)  # gone away meanwhile, or full: one line, nothing written
        if failure is None:
            raise
        raise click.ClickException(str(failure)) from None
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


@contextmanager
def progress(length: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; otherwise nothing is printed (pipes and tests)."""
    if not sys.stderr.isatty() or length <= 0:
        yield lambda _n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


def counted(items: Iterable[T], label: str) -> Iterator[T]:
    """``items``, counted on a progress line on stderr when it is a terminal (for streams of unknown length)."""
    if not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
        yield from bar
