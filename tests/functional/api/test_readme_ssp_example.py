"""The README's worked SSP request works: its Python snippet (read from README.md, run as it stands) makes an
audit JWT that /api/ssp/authorise accepts on the seed data, with the exact body and headers the README shows."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from sds_registry.services.audit import writer_for

README = Path(__file__).resolve().parents[3] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### A worked SSP request")
    return text[start:text.index("\n## ", start)]


def _snippet_jwt(section: str) -> str:
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None, "the worked example has no Python snippet"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet.group(1), "README.md", "exec"), {"__name__": "__main__"})
    return out.getvalue().strip()


def test_the_readme_jwt_and_headers_are_allowed(client: FlaskClient, app: Flask, seeded: Engine) -> None:
    section = _section()
    token = _snippet_jwt(section)
    assert token.count(".") == 2 and token.endswith(".")
    heredoc = re.search(r"<<EOF\n(.*?)\nEOF", section, re.S)
    assert heredoc is not None
    body = json.loads(heredoc.group(1).replace("$JWT", token))

    # The curl through the SSP carries the same target and headers as the /authorise body.
    curl = re.search(r'curl -si "http://127\.0\.0\.1:8443/(\S+)"(.*?)```', section, re.S)
    assert curl is not None and curl.group(1) == body["targetUrl"]
    for name in ("Ssp-From", "Ssp-To", "Ssp-InteractionID"):
        assert f'-H "{name}: {body["headers"][name]}"' in curl.group(2)
    assert '-H "Authorization: Bearer $JWT"' in curl.group(2)

    response = client.post("/api/ssp/authorise", json=body)
    writer_for(app.extensions["sds"]["engine"]).flush()  # the decision is written before the tables are emptied
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["allowed"] is True, answer
    assert (answer["status"], answer["outcome"]) == (200, "ALLOWED")
    assert answer["endpoint"] == "https://orange.testlab.nhs.uk/A20047/STU3/1/gpconnect"
