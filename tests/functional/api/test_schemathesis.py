"""schemathesis against the live /api (the Flask app over a real socket, the sample directory seeded, an admin
token): for every GET/POST/PUT/PATCH/DELETE operation of /api/openapi.json, 25 derandomised examples; no 5xx,
and every answer conforms to the document (status, content type, headers, body)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Engine
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
MAX_EXAMPLES = 25


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: object) -> None:  # noqa: A002 - werkzeug's signature
        pass


@pytest.fixture
def live_api(app: Flask, seeded: Engine) -> Iterator[str]:
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.slow
def test_api_conforms_to_its_contract_under_schemathesis(live_api: str, admin_token: str) -> None:
    schema = (schemathesis.openapi.from_url(f"{live_api}/api/openapi.json")
              .include(method=["GET", "POST", "PUT", "PATCH", "DELETE"], path_regex="^/api/")
              .exclude(path_regex="^/api/(docs|openapi)"))
    headers = {"Authorization": f"Bearer {admin_token}"}
    started = time.monotonic()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                             suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.explicit,
                                                                              hypothesis.Phase.generate])
        @hypothesis.given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_api, headers=headers, checks=CHECKS, timeout=30)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 120
