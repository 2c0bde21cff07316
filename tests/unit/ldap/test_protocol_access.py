"""Every LDAP operation the connection answers, or ends, writes one access line and counts once
(``sds_ldap_operations_total{operation,result}``): searches, compares and every paged-results page, and
also the ones that need no directory — bind, unbind, abandon, WhoAmI, StartTLS, refused writes, malformed
requests and the server's own disconnects."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from ldap3.operation.delete import delete_operation
from ldap3.operation.extended import extended_operation
from ldap3.protocol.rfc2696 import paged_search_control
from prometheus_client import REGISTRY

from sds_registry.ldap.ast import SearchEntry
from sds_registry.ldap.protocol import START_TLS, WHO_AM_I
from tests.unit.ldap.test_protocol_connection import _page, bind, connection, message, run, search

UNBIND = bytes.fromhex("30050201024200")
ABANDON_7 = bytes.fromhex("3006020108500107")
#: A search request (message 5) cut short inside its body: decodable far enough to answer protocolError.
TRUNCATED_SEARCH = bytes.fromhex("300a020105630504000a0109")


def _count(operation: str, result: str) -> float:
    return REGISTRY.get_sample_value("sds_ldap_operations_total", {"operation": operation, "result": result}) or 0.0


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sds.ldap.access"]


CASES = [
    ("bind", lambda: bind(1, "", ""), "bind", "0"),
    ("unbind", lambda: UNBIND, "unbind", "none"),
    ("abandon", lambda: ABANDON_7, "abandon", "none"),
    ("whoami", lambda: message(2, "extendedReq", extended_operation(WHO_AM_I)), "whoami", "0"),
    ("starttls without a certificate", lambda: message(3, "extendedReq", extended_operation(START_TLS)),
     "starttls", "52"),
    ("refused delete", lambda: message(4, "delRequest", delete_operation("cn=x,o=nhs")), "delete", "53"),
    ("unknown critical control", lambda: search(5, controls=[("1.2.3.4", True, None)]), "search", "12"),
    ("malformed request", lambda: TRUNCATED_SEARCH, "malformed", "2"),
    ("search", lambda: search(6), "search", "0"),
]


@pytest.mark.parametrize(("data", "operation", "result"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_line_and_one_count_per_operation(caplog: pytest.LogCaptureFixture, data: Callable[[], bytes],
                                              operation: str, result: str) -> None:
    conn, _ = connection()
    caplog.set_level(logging.INFO, logger="sds.ldap.access")
    before = _count(operation, result)
    run(conn, data())
    lines = _lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].operation == operation  # type: ignore[attr-defined]
    assert str(lines[0].result_code if lines[0].result_code is not None else "none") == result  # type: ignore[attr-defined]
    assert lines[0].connection_id == conn.conn_id  # type: ignore[attr-defined]
    assert _count(operation, result) == before + 1


def test_a_server_disconnect_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    conn, _ = connection(ldap_max_message_bytes=1000)
    caplog.set_level(logging.INFO, logger="sds.ldap.access")
    before = _count("disconnect", "2")
    run(conn, b"\x30\x82\x10\x00")  # announces 4 KiB: over the limit
    (line,) = _lines(caplog)
    assert line.operation == "disconnect" and line.result_code == 2  # type: ignore[attr-defined]
    assert "1000" in line.base  # type: ignore[attr-defined]
    assert _count("disconnect", "2") == before + 1


def test_every_paged_results_page_is_logged_with_its_entries(caplog: pytest.LogCaptureFixture) -> None:
    conn, directory = connection()
    directory.entries = [SearchEntry(f"cn={i},o=nhs", [("cn", [str(i)])]) for i in range(5)]
    caplog.set_level(logging.INFO, logger="sds.ldap.access")
    before = _count("search", "0")
    cookie = b""
    for mid in (1, 2, 3):
        out, _ = run(conn, search(mid, controls=[paged_search_control(False, 2, cookie)]))
        cookie = _page(out)[1]
    assert cookie == b""
    lines = _lines(caplog)
    assert [(r.message_id, r.entries, r.result_code) for r in lines] == [  # type: ignore[attr-defined]
        (1, 2, 0), (2, 2, 0), (3, 1, 0)]
    assert len(directory.calls) == 1 and _count("search", "0") == before + 3

