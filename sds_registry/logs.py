"""Logging for every process (the ``sds`` CLI, the ``sds serve`` supervisor, gunicorn and the LDAP/SSP workers):
one level (SDS_LOG_LEVEL) and one format (SDS_LOG_FORMAT: ``text`` lines or ``json`` objects, one per line, through
python-json-logger), on stderr. Access lines carry their fields as ``extra`` (JSON keys; the text line says the
same in its message). Never log secrets: tokens, JWTs and passwords stay out of every message and extra."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
LOG_FORMATS = ("text", "json")
_HANDLER_NAME = "sds"
_JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


class _Stamp(logging.Formatter):
    """A formatter whose ``asctime`` is logging's, with the date and time part made once per second, not once per
    line (an access line per LDAP operation made strftime a visible share of a cached search)."""

    _last: tuple[int, str] = (-1, "")  # (second, its text), one attribute so threads never mix the two

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return super().formatTime(record, datefmt) if datefmt is not None else self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """``asctime`` of a record made at ``created`` (seconds since the epoch)."""
        second, text = self._last
        if second != int(created):
            text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))  # logging's default converter
            self._last = (int(created), text)
        return f"{text},{int((created - int(created)) * 1000):03d}"


class _TextFormatter(_Stamp):
    """The text format: ``TEXT_FORMAT`` with ``_Stamp``'s time stamps."""


class _JsonFormatter(_Stamp, JsonFormatter):  # type: ignore[misc]
    """python-json-logger's formatter (``time``, ``logger``, ``level``, ``message``, then the record's extras)
    with ``_Stamp``'s time stamps."""


#: A JSON access line's extra keys, or a function that gives them (called only when a JSON line is written).
Fields = dict[str, Any] | Callable[[], dict[str, Any]]
#: What a direct writer is given: the message (the text line's words; its str()) and the line's fields.
DirectWriter = Callable[[object, Fields], None]

#: How long an access line may wait in a process's batch before it is written, and how many lines make a batch.
BATCH_SECONDS = 0.2
BATCH_LINES = 256


class Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our stderr handler. Besides logging's records it takes access lines (``queue``), which wait in a batch
    and are written together, at most BATCH_SECONDS (or BATCH_LINES) later: one write and flush per batch, the
    JSON made while that code is hot, where a line written as it came cost a request several times as much. Any
    other record, a ``flush`` (logging's at exit) and ``close`` write the batch first, so a process's lines keep
    their order. Lines still waiting when a process is killed (SIGKILL, ``os._exit``) are lost."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[tuple[str, float, object, Fields]] = []
        self._pending_lock = threading.Lock()
        _handlers.add(self)

    def queue(self, logger_name: str, message: object, fields: Fields) -> None:
        with self._pending_lock:
            self._pending.append((logger_name, time.time(), message, fields))
            full = len(self._pending) >= BATCH_LINES
        if full:
            self.write_pending()
        else:
            _start_flusher()

    def write_pending(self) -> None:
        if not self._pending:
            return
        with self.lock:  # type: ignore[union-attr]  # held while made and written: a later record comes after
            with self._pending_lock:
                pending, self._pending = self._pending, []
            if not pending:
                return
            formatter = self.formatter
            stamp = formatter.stamp if isinstance(formatter, _Stamp) else _Stamp().stamp
            as_json = isinstance(formatter, _JsonFormatter)
            try:
                text = "".join(_line(entry, stamp, as_json) for entry in pending)
            except Exception as exc:  # noqa: BLE001 - a message's str() failed: the others are still written
                text = "".join(_line(entry, stamp, as_json, exc) for entry in pending)
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # noqa: BLE001 - as logging does: a broken stream must not break the caller
                pass

    def emit(self, record: logging.LogRecord) -> None:
        self.write_pending()
        super().emit(record)

    def flush(self) -> None:
        self.write_pending()
        super().flush()

    def close(self) -> None:
        self.write_pending()
        super().close()

    def _at_fork_reinit(self) -> None:  # logging calls it in a forked child: the parent writes its own batch
        super()._at_fork_reinit()  # type: ignore[misc]
        self._pending, self._pending_lock = [], threading.Lock()


_JSON = json.JSONEncoder(default=str)


def _line(entry: tuple[str, float, object, Fields], stamp: Callable[[float], str], as_json: bool,
          failed: Exception | None = None) -> str:
    """One queued access line as our formatter would write it (``failed``: write a stand-in if it cannot be)."""
    name, created, message, fields = entry
    if failed is not None:
        try:
            return _line(entry, stamp, as_json)
        except Exception as exc:  # noqa: BLE001
            message, fields = f"(an access line could not be written: {exc!r})", {}
    if as_json:
        return _JSON.encode({"time": stamp(created), "logger": name, "level": "INFO", "message": str(message),
                             **(fields() if callable(fields) else fields)}) + "\n"
    return f"{stamp(created)} {name} INFO {message}\n"


_handlers: weakref.WeakSet[Handler] = weakref.WeakSet()
_flusher = [False]  # this process's flusher thread runs (a forked child has none: reset at fork)


def _start_flusher() -> None:
    if not _flusher[0]:
        _flusher[0] = True
        threading.Thread(target=_flush_every_batch_seconds, name="sds-log-flusher", daemon=True).start()


def _flush_every_batch_seconds() -> None:
    while True:
        time.sleep(BATCH_SECONDS)
        flush()


def _forked() -> None:
    _flusher[0] = False


os.register_at_fork(after_in_child=_forked)


def flush() -> None:
    """Write every access line waiting in this process's batches now."""
    for handler in list(_handlers):
        handler.write_pending()


def direct_writer(logger: logging.Logger) -> DirectWriter | None:
    """For a hot access log: a function that takes ``message`` (with ``fields`` as a JSON line's extra keys) and
    writes, in our handler's next batch, exactly the line an INFO record of ``logger`` carrying ``extra=fields``
    would give, in either format, when our handler is the only one on its way and nothing filters or adds (else
    None: use ``logger.info``). It skips building a LogRecord, the caller lookup and the handler chain (and, for
    JSON, python-json-logger's walk over the record's attributes); what is written is the same line (the tests
    compare them)."""
    handler: logging.Handler | None = None
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters or node.disabled:
            return None
        if node.handlers:
            if handler is not None or len(node.handlers) != 1:
                return None
            handler = node.handlers[0]
        if not node.propagate:
            break
        node = node.parent
    if type(handler) is not Handler or handler.filters or handler.level > logging.INFO:
        return None
    if type(handler.formatter) not in (_TextFormatter, _JsonFormatter):
        return None
    return functools.partial(handler.queue, logger.name)


def access_line(logger: logging.Logger, message: object, fields: Fields) -> None:
    """One access line at INFO: ``message`` (the text line's words; its str() is taken when the line is written)
    with ``fields`` (a JSON line's extra keys, or a function giving them, called only for a JSON line), batched
    when ``direct_writer`` can, else through logging. The caller has checked INFO is on. So a caller may leave
    costly text to the batch."""
    write = direct_writer(logger)
    if write is not None:
        write(message, fields)
    else:
        logger.info("%s", message, extra=fields() if callable(fields) else fields)


def make_formatter(fmt: str = "text") -> logging.Formatter:
    """The formatter for ``fmt`` (``text`` or ``json``); also the factory gunicorn's logconfig_dict names."""
    if fmt == "json":
        return _JsonFormatter(TEXT_FORMAT, rename_fields=_JSON_RENAMES)
    return _TextFormatter(TEXT_FORMAT)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send every logger's records at ``level`` or above to stderr in ``fmt``; replaces the handler an earlier call
    added, so each process (and each spawned worker) may call it again once it knows its settings."""
    handler = Handler(sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:  # others' (pytest's) stay
        root.removeHandler(old)
        old.flush()  # its waiting access lines
    root.addHandler(handler)
    root.setLevel(level)
    _lighter_records()
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def _lighter_records() -> None:
    """No caller frame lookup, thread, process or task names in LogRecords: no format here shows them, and an
    access line per request should cost little (the logging HOWTO's "Optimization" switches)."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def gunicorn_logconfig(level: str = "INFO", fmt: str = "text") -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its own lines and the app's, on stderr, in the same format and level."""
    _lighter_records()  # the workers fork from the process that asks for this
    handler = {"class": "sds_registry.logs.Handler", "formatter": "sds", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"sds": {"()": "sds_registry.logs.make_formatter", "fmt": fmt}},
        "handlers": {"console": handler, "error_console": handler},
        "root": {"level": level, "handlers": ["error_console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["error_console"], "propagate": False,
                               "qualname": "gunicorn.error"},
            "gunicorn.access": {"level": level, "handlers": ["console"], "propagate": False,
                                "qualname": "gunicorn.access"},
        },
    }
