"""The FHIR views' helpers: correlation ids, and the request reading that bypasses werkzeug's parsers."""

from __future__ import annotations

import uuid
from urllib.parse import unquote

from flask import Flask, request
from hypothesis import given
from hypothesis import strategies as st

from sds_registry.fhir import search
from sds_registry.web import fhir as views


def test_new_correlation_id_is_an_upper_case_uuid4() -> None:
    seen = set()
    for _ in range(2000):
        value = views.new_correlation_id()
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert value == str(parsed).upper()
        assert search.valid_correlation_id(value)
        seen.add(value)
    assert len(seen) == 2000


_QUERY_PIECES = ["organization", "identifier", "_format", "=", "&", "&&", "%7C", "%7c", "|", "+", "%", "%41", "%7",
                 "%E2%80%A8", "%FF", "https://fhir.nhs.uk/Id/ods-organization-code", "A12345", " ", "x=y=z", "é"]


@given(st.lists(st.sampled_from(_QUERY_PIECES), max_size=12).map("".join))
def test_params_and_self_link_are_werkzeugs(query: str) -> None:
    """The fast split of a query with only %7C escapes gives what request.args and unquote give."""
    app = Flask(__name__)
    raw = query.encode("utf-8").decode("latin-1")  # as a WSGI server puts it in the environ
    with app.test_request_context("/spine-directory/FHIR/R4/Device", environ_overrides={"QUERY_STRING": raw}):
        try:
            expected = list(request.args.items(multi=True))
        except UnicodeDecodeError:
            return
        assert search._grouped(views._params(request)) == search._grouped(expected)
        base_url, self_url = views._urls(request)
        assert base_url == "http://localhost/spine-directory/FHIR/R4/Device"
        decoded = request.query_string.decode("utf-8", "replace")
        assert self_url == (f"{base_url}?{unquote(decoded)}" if decoded else base_url)


def test_headers_read_from_the_environ() -> None:
    app = Flask(__name__)
    cid = "6D3D3674-7CE5-41EC-90D6-0242AC120003"
    with app.test_request_context("/x", headers={"X-Correlation-Id": cid, "Accept": "application/fhir+xml"}):
        assert views._correlation_id(request.environ) == (cid, None)
        assert request.environ.get("HTTP_ACCEPT") == request.headers.get("Accept")
    with app.test_request_context("/x", headers={"X-Correlation-Id": "nope"}):
        assert views._correlation_id(request.environ)[1] == search.invalid_correlation_id().message
