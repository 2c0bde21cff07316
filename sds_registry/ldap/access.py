"""One access line per LDAP operation answered (logger ``sds.ldap.access``): connection id, message id, operation,
base (or bind DN), filter, result code, entries and duration. Never a bind password.

``answered`` also counts the operation (``sds_ldap_operations_total``); unbind and abandon, which have no
response, count with result ``none``; a connection the server ends counts as operation ``disconnect``."""

from __future__ import annotations

import itertools
import logging
import os
import time

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


def line(conn_id: str, message_id: int, operation: str, base: str, filt: Filter | str | None, code: int | None,
         entries: int | None, started: float) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000.0, 3)
    filter_text = filt if filt is None or isinstance(filt, str) else filterstr.format_filter(filt)
    fields = {"connection_id": conn_id, "message_id": message_id, "operation": operation, "base": base,
              "filter": filter_text, "result_code": code, "entries": entries, "duration_ms": duration_ms}
    access_line(log, f"conn {conn_id} msg {message_id} {operation} {base!r} {filter_text or '-'} result {code} "
                     f"entries {entries} {duration_ms} ms", fields)


def answered(conn_id: str, message_id: int, operation: str, base: str, filt: Filter | str | None, code: int | None,
             entries: int | None, started: float, directory_seconds: float | None = None) -> None:
    """Count one operation (with its directory time, for searches and compares) and write its access line."""
    metrics.observe_ldap(operation, code, directory_seconds)
    if log.isEnabledFor(logging.INFO):
        line(conn_id, message_id, operation, base, filt, code, entries, started)
