"""One access line per LDAP operation answered (logger ``sds.ldap.access``): connection id, message id, operation,
base (or bind DN), filter, result code, entries and duration. Never a bind password.

``answered`` also counts the operation (``sds_ldap_operations_total``); unbind and abandon, which have no
response, count with result ``none``; a connection the server ends counts as operation ``disconnect``."""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

from sds_registry import metrics
from sds_registry.ldap import filterstr
from sds_registry.ldap.ast import Filter
from sds_registry.logs import access_line

log = logging.getLogger("sds.ldap.access")
_ids = itertools.count(1)


def next_connection_id() -> str:
    """Unique across the serving processes of one host: pid and a per-process counter."""
    return f"{os.getpid()}-{next(_ids)}"


def result_code(message: bytes) -> int | None:
    """The resultCode of one encoded LDAPResult message (SEQUENCE { messageID, [APPLICATION n] { ENUMERATED ...")."""
    i = 0
    try:
        for expect_inside in (True, False, True):  # into the SEQUENCE, over the message ID, into the operation
            i += 1
            length = message[i]
            i += 1
            if length & 0x80:
                n = length & 0x7F
                length, i = int.from_bytes(message[i:i + n], "big"), i + n
            if not expect_inside:
                i += length
        return message[i + 2] if message[i] == 0x0A else None
    except IndexError:
        return None


class _Line:
    """One operation's access line, made into text (str()) or JSON fields (``fields``) only when it is written:
    an answered search pays for a small object, not for printing its filter, its words and its fields."""

    __slots__ = ("conn_id", "message_id", "operation", "base", "filt", "code", "entries", "duration_ms")

    def __init__(self, conn_id: str, message_id: int, operation: str, base: str, filt: Filter | str | None,
                 code: int | None, entries: int | None, duration_ms: float) -> None:
        self.conn_id, self.message_id, self.operation, self.base = conn_id, message_id, operation, base
        self.filt, self.code, self.entries, self.duration_ms = filt, code, entries, duration_ms

    def filter_text(self) -> str | None:
        filt = self.filt
        return filt if filt is None or isinstance(filt, str) else filterstr.format_filter(filt)

    def __str__(self) -> str:
        return (f"conn {self.conn_id} msg {self.message_id} {self.operation} {self.base!r} "
                f"{self.filter_text() or '-'} result {self.code} entries {self.entries} {self.duration_ms} ms")

    def fields(self) -> dict[str, Any]:
        return {"connection_id": self.conn_id, "message_id": self.message_id, "operation": self.operation,
                "base": self.base, "filter": self.filter_text(), "result_code": self.code, "entries": self.entries,
                "duration_ms": self.duration_ms}


def line(conn_id: str, message_id: int, operation: str, base: str, filt: Filter | str | None, code: int | None,
         entries: int | None, started: float) -> None:
    entry = _Line(conn_id, message_id, operation, base, filt, code, entries,
                  round((time.perf_counter() - started) * 1000.0, 3))
    access_line(log, entry, entry.fields)


def answered(conn_id: str, message_id: int, operation: str, base: str, filt: Filter | str | None, code: int | None,
             entries: int | None, started: float, directory_seconds: float | None = None) -> None:
    """Count one operation (with its directory time, for searches and compares) and write its access line."""
    metrics.observe_ldap(operation, code, directory_seconds)
    if log.isEnabledFor(logging.INFO):
        line(conn_id, message_id, operation, base, filt, code, entries, started)
