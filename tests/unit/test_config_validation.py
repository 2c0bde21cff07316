"""Start-up validation of the SDS_* settings (sds_registry/config.py): typos, log levels, SQLite folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from sds_registry.config import DEFAULT_DATABASE_URL, load_settings, unknown_variable_warnings
from sds_registry.errors import ConfigError


def test_an_unknown_variable_is_named_with_the_closest_setting() -> None:
    warnings = unknown_variable_warnings({"SDS_SSP_WORKER": "4", "SDS_HTTP_BIND": "127.0.0.1:1", "PATH": "/bin"})
    assert warnings == ["SDS_SSP_WORKER is not a setting and is ignored; did you mean SDS_SSP_WORKERS?"]


def test_unknown_variables_without_a_close_match_and_the_test_suites_own() -> None:
    warnings = unknown_variable_warnings({"SDS_ZZZZZZZZZZZZ": "1", "SDS_TEST_POSTGRES_URL": "x"})
    assert warnings == ["SDS_ZZZZZZZZZZZZ is not a setting and is ignored"]


def test_a_bad_log_level_names_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"SDS_LOG_LEVEL": "LOUD"})
    assert str(caught.value) == ("SDS_LOG_LEVEL: 'LOUD' is not a log level; "
                                 "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    assert load_settings(environ={"SDS_LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_a_sqlite_file_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "sds.sqlite3"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"SDS_DATABASE_URL": f"sqlite:///{missing}"})
    assert "SDS_DATABASE_URL" in str(caught.value) and str(missing.parent) in str(caught.value)
    assert not missing.parent.exists()
    ok = f"sqlite:///{tmp_path / 'sds.sqlite3'}"
    assert load_settings(environ={"SDS_DATABASE_URL": ok}).database_url == ok


def test_the_default_and_in_memory_databases_need_no_folder() -> None:
    assert load_settings(environ={}).database_url == DEFAULT_DATABASE_URL
    assert load_settings(environ={"SDS_DATABASE_URL": "sqlite://"}).database_url == "sqlite://"
    assert load_settings(environ={"SDS_DATABASE_URL": "sqlite:///:memory:"}).database_url == "sqlite:///:memory:"
