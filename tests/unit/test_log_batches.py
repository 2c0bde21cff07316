"""Access lines wait in a per-process batch (logs.Handler.queue): they reach the stream within BATCH_SECONDS with
no one flushing, before any later record of the same process, and a forked child never writes its parent's."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sds_registry import logs
from sds_registry.logs import direct_writer
from tests.support.logsetup import direct_to, root_kept

FIELDS = {"operation": "search", "result_code": 0}


@pytest.fixture
def root_restored() -> Iterator[None]:
    with root_kept():
        yield


def test_a_queued_line_is_written_within_the_batch_seconds(root_restored: None) -> None:
    stream = io.StringIO()
    write = direct_to(stream, "sds.ldap.access")
    write("first", FIELDS)
    deadline = time.monotonic() + logs.BATCH_SECONDS * 10
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert '"message": "first", "operation": "search", "result_code": 0}' in stream.getvalue()


def test_a_full_batch_is_written_at_once(root_restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(logs, "BATCH_LINES", 3)
    write = direct_to(stream, "sds.http")
    for n in range(3):
        write(f"line {n}", FIELDS)
    assert [line.split('"message": ')[1][:8] for line in stream.getvalue().splitlines()] == \
        ['"line 0"', '"line 1"', '"line 2"']


def test_lines_keep_their_order_with_other_records(root_restored: None) -> None:
    stream = io.StringIO()
    write = direct_to(stream, "sds.http")
    write("access", FIELDS)
    logging.getLogger("sds.serve").warning("later")
    assert [line.split('"message": ')[1].split('"')[1] for line in stream.getvalue().splitlines()] == \
        ["access", "later"]


def test_a_forked_child_does_not_write_its_parents_waiting_lines(root_restored: None, tmp_path: Path) -> None:
    out = (tmp_path / "log").open("a", encoding="utf-8")
    write = direct_to(out, "sds.http")
    write("parent's", FIELDS)
    pid = os.fork()
    if pid == 0:  # the child: its own line, then everything it has, then out without the parent's cleanups
        try:
            child_write = direct_writer(logging.getLogger("sds.http"))
            assert child_write is not None
            child_write("child's", FIELDS)
            logs.flush()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    logs.flush()
    out.close()
    messages = [line.split('"message": ')[1].split('"')[1] for line in (tmp_path / "log").read_text().splitlines()]
    assert sorted(messages) == ["child's", "parent's"]


class _Broken:
    def __str__(self) -> str:
        raise RuntimeError("no words")


def test_a_line_that_cannot_be_made_leaves_a_stand_in_and_the_others(root_restored: None) -> None:
    stream = io.StringIO()
    write = direct_to(stream, "sds.http")
    write("before", FIELDS)
    write(_Broken(), FIELDS)
    write("after", lambda: dict(FIELDS, lazy=True))  # fields may be a function, called for a JSON line
    logs.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "before", "(an access line could not be written: RuntimeError('no words'))", "after"]
    assert lines[2]["lazy"] is True and lines[0]["operation"] == "search"


def test_a_forked_child_writes_its_lines_with_no_flush(root_restored: None, tmp_path: Path) -> None:
    """The flusher thread does not survive fork; the child starts its own on its first line."""
    out = (tmp_path / "log").open("a", encoding="utf-8")
    direct_to(out, "sds.http")("parent's", FIELDS)  # the parent's flusher is running now
    logs.flush()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            child_write = direct_writer(logging.getLogger("sds.http"))
            assert child_write is not None
            child_write("child's", FIELDS)
            deadline = time.monotonic() + logs.BATCH_SECONDS * 10
            while "child's" not in (tmp_path / "log").read_text() and time.monotonic() < deadline:
                time.sleep(0.01)
            status = 0 if "child's" in (tmp_path / "log").read_text() else 3
        finally:
            os._exit(status)
    assert os.waitpid(pid, 0)[1] == 0, "the child's line was not written without a flush"
    out.close()
