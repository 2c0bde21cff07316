"""Test support for sds mirror: a writable slapd (bench/ldapkit's, plus a root password), the CLI, and the
comparison of a whole subtree on two servers. No fixtures and no tests here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.ldapkit import diff, slapd
from bench.ldapkit.searches import Search
from sds_registry.cli import main
from sds_registry.config import Settings
from sds_registry.ldap.directory import Directory
from sds_registry.models import AuditEvent
from tests.support.ldap import RunningServer, base_settings, running_server

ROOT_DN = "cn=bench,o=nhs"  # bench/ldapkit/slapd.py's rootdn
ROOT_PASSWORD = "mirror-test-secret"
RECORDS = "(|(objectClass=nhsAs)(objectClass=nhsMhs))"
EVERY_RECORD = Search("all", "ou=Services,o=nhs", "sub", RECORDS)


@contextmanager
def writable_slapd(ldif: Path, work: Path) -> Iterator[str]:
    """bench.ldapkit.slapd.running, with ``rootpw`` so tests can bind as ROOT_DN and modify the source."""
    conf = slapd.prepare(ldif, work)
    text = conf.read_text()
    conf.write_text(text.replace(f'rootdn "{ROOT_DN}"', f'rootdn "{ROOT_DN}"\nrootpw {ROOT_PASSWORD}'))
    with slapd.serving(conf) as url:
        yield url


def run(database_url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["mirror", *args], env={"SDS_DATABASE_URL": database_url, **(env or {})},
                              catch_exceptions=False)


@contextmanager
def facade(engine: Engine, settings: Settings | None = None) -> Iterator[RunningServer]:
    """Our own LDAP server on ``engine``'s registry (``.uri``, ``.ldaps_port``)."""
    directory = Directory(engine, Settings())
    try:
        with running_server(settings or base_settings(), directory) as server:
            yield server
    finally:
        directory.close()


def differences(a: str, b: str, search: Search = EVERY_RECORD) -> list[str]:
    """Every entry of ``search`` on both servers compared attribute by attribute (bench.ldapkit.diff)."""
    one, other = diff.ldap3_search(a, search), diff.ldap3_search(b, search)
    assert one[0] == 0 and other[0] == 0, (one[0], other[0])
    return diff.differences(one, other, limit=20)


def count(url: str, search: Search = EVERY_RECORD) -> int:
    code, entries = diff.ldap3_search(url, search)
    assert code == 0
    return len(entries)


def audit_rows(engine: Engine, actor: str | None = None) -> int:
    with Session(engine) as s:
        query = select(func.count()).select_from(AuditEvent)
        if actor is not None:
            query = query.where(AuditEvent.actor == actor)
        return s.scalar(query) or 0


def summary(result: Result) -> str:
    """The command's last stdout line: 'N created, N updated, N deleted'."""
    return result.stdout.strip().splitlines()[-1]
