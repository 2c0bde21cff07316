"""logs.direct_writer: an access line written straight to the stream is the line logging would write, in the text
and the JSON format, and anything else on the way (another handler, a filter) sends it back through logging."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from sds_registry.logs import direct_writer, flush
from tests.support.logsetup import ours_alone, root_kept


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """Where ours_alone's handler writes; the root logger's handlers and level put back afterwards."""
    with root_kept():
        yield io.StringIO()


FIELDS = {"connection_id": "1-2", "message_id": 3, "operation": "search", "base": "o=nhs", "filter": "(objectClass=*)",
          "result_code": 0, "entries": 1, "duration_ms": 0.05, "absent": None}
ARGS = ("1-2", 3, "search", "o=nhs", "(objectClass=*)", 0, 1, 0.05)
FORMAT = "conn %s msg %s %s %r %s result %s entries %s %s ms"


def test_the_direct_line_is_the_line_logging_writes(stderr: io.StringIO) -> None:
    ours_alone("text", stderr)
    logger = logging.getLogger("sds.ldap.access")
    write = direct_writer(logger)
    assert write is not None
    write(FORMAT % ARGS, FIELDS)
    flush()  # access lines wait in a batch
    logger.info(FORMAT, *ARGS, extra=FIELDS)
    direct, logged = stderr.getvalue().splitlines()
    # The same text but for the milliseconds of the time stamp ("2026-12-04 06:12:51,962 sds.ldap.access INFO ...").
    assert direct[:19] == logged[:19] or direct[:17] == logged[:17]
    assert direct[23:] == logged[23:]
    assert direct[19] == "," and direct[20:23].isdigit()


def test_the_direct_json_line_is_the_line_python_json_logger_writes(stderr: io.StringIO) -> None:
    ours_alone("json", stderr)
    logger = logging.getLogger("sds.http")
    write = direct_writer(logger)
    assert write is not None
    write(FORMAT % ARGS + " é", FIELDS)
    flush()
    logger.info(FORMAT + " é", *ARGS, extra=FIELDS)
    direct, logged = stderr.getvalue().splitlines()
    direct_obj, logged_obj = json.loads(direct), json.loads(logged)
    assert list(direct_obj) == list(logged_obj) == ["time", "logger", "level", "message", *FIELDS]
    assert direct_obj.pop("time")[:17] == logged_obj.pop("time")[:17]
    assert direct_obj == logged_obj
    # byte for byte but for the time stamp: the same separators, key order and escaping
    assert direct.split('"logger"', 1)[1] == logged.split('"logger"', 1)[1]


def test_another_handler_or_a_filter_means_logging(stderr: io.StringIO) -> None:
    logger = logging.getLogger("sds.ldap.access")
    ours_alone("json", stderr)
    assert direct_writer(logger) is not None
    ours_alone("text", stderr)
    extra = logging.NullHandler()
    logging.getLogger().addHandler(extra)
    assert direct_writer(logger) is None
    logging.getLogger().removeHandler(extra)
    assert direct_writer(logger) is not None
    logger.addFilter(lambda record: True)
    try:
        assert direct_writer(logger) is None
    finally:
        logger.filters.clear()
