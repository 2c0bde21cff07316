"""For tests of our log handler: the root logger put back afterwards, and our handler alone on the root."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from sds_registry import logs
from sds_registry.logs import DirectWriter, direct_writer, setup_logging


@contextmanager
def root_kept() -> Iterator[None]:
    """The root logger's handlers and level as they were before, whatever the body did."""
    root = logging.getLogger()
    kept, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in kept:
            root.addHandler(handler)
        root.setLevel(level)


def ours_alone(fmt: str, stream: IO[str]) -> None:
    """setup_logging at INFO in ``fmt`` writing to ``stream``, its handler alone on the root. Call it in the test's
    body: pytest adds its capture handlers for the body, and they rightly turn the direct path off."""
    setup_logging("INFO", fmt)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logs.Handler):
            handler.setStream(stream)
        else:
            root.removeHandler(handler)


def direct_to(stream: IO[str], logger: str, fmt: str = "json") -> DirectWriter:
    """``ours_alone``, then the direct writer of ``logger`` (which must exist: only our handler is on its way)."""
    ours_alone(fmt, stream)
    write = direct_writer(logging.getLogger(logger))
    assert write is not None
    return write
