"""Fixtures for the web pages: the app with SDS_WEB on, its client, and reading a form's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from sds_registry import create_app

SECRET = "test-only-secret-key-of-forty-characters!"


@pytest.fixture
def web_app(db: Engine, database_url: str) -> Iterator[Flask]:
    application = create_app({"database_url": database_url, "ldap_bind": "127.0.0.1:1389", "ssp_bind": "",
                              "web": True, "web_secret_key": SECRET})
    yield application
    application.extensions["sds"]["read_pool"].dispose()
    application.extensions["sds"]["engine"].dispose()


@pytest.fixture
def web(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


def csrf(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(web: FlaskClient, token: str) -> None:
    page = web.get("/register").get_data(as_text=True)
    answer = web.post("/register", data={"csrf_token": csrf(page), "token": token})
    assert answer.status_code == 303, answer.get_data(as_text=True)
