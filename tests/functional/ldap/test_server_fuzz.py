"""Fuzz a running LDAP server with malformed messages; afterwards it must still answer a correct search.

The messages are tests/support/ldap_fuzz.py's (bench/hostile.py sends a million of them): mutants in a sound
outer frame pipelined on long-lived connections (the server answers protocolError and goes on), frame-level
garbage on a connection of its own (the server sends a notice of disconnection and hangs up). Under CI=true
the full 100,000 messages run; locally 20,000 unless SDS_LDAP_FUZZ_MESSAGES says otherwise.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from sds_registry.config import Settings
from sds_registry.db import make_engine
from sds_registry.ldap.directory import Directory
from tests.support.ldap import assert_serves, base_settings, running_server, sample_sqlite_database
from tests.support.ldap_fuzz import fuzz

IN_CI = os.environ.get("CI", "").lower() == "true"
TOTAL = 100_000 if IN_CI else int(os.environ.get("SDS_LDAP_FUZZ_MESSAGES", "20000"))


@pytest.fixture
def sqlite_directory(tmp_path: Path) -> Iterator[Directory]:
    """The real Directory on its own SQLite file (the fuzz runs on one backend to stay within a minute)."""
    engine = make_engine(sample_sqlite_database(tmp_path))
    directory = Directory(engine, Settings())
    yield directory
    directory.close()
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_server_survives_malformed_messages(caplog: pytest.LogCaptureFixture, sqlite_directory: Directory) -> None:
    with running_server(base_settings(ldap_idle_timeout=30), sqlite_directory) as server:
        with caplog.at_level(logging.ERROR, logger="sds_registry.ldap"):
            sent = fuzz((server.host, server.port), TOTAL, random.Random(20240417))
        assert sent >= TOTAL
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors[:5]]
        assert_serves(server)
