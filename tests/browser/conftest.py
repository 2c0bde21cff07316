"""A real browser on a real ``sds serve``: Playwright driving Debian's Chromium (``apt-get install chromium``;
never a browser Playwright downloads). One browser for the session; one ``sds serve`` (HTTP, LDAP, SSP, SDS_WEB=1)
per database backend; each test gets a fresh browser context and its own seeded rows (``seeded``).

Screenshots go to ``$SDS_TEST_ARTEFACTS/browser`` when that variable is set, else to the test's tmp_path; each
test prints where. Without chromium the tests are skipped, except under CI=true, where that fails them.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.support.serving import Running, sds_serve

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if IN_CI:
        pytest.fail("chromium is required under CI=true (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def web_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """``sds serve`` with every facade and the web pages, for the whole session on this backend."""
    with sds_serve(database_url, tmp_path_factory.mktemp("web-serve"), ldap=True, ssp=True,
                   env={"SDS_WEB": "1", "SDS_SSP_CACHE_SECONDS": "0"}) as running:
        yield running


@pytest.fixture
def artefacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("SDS_TEST_ARTEFACTS")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = Path(root) / "browser" / name if root else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Any, web_server: Running, artefacts: Path) -> Iterator[Any]:
    """A page in a fresh context (no cookies) whose relative URLs go to the web server; a screenshot of the
    last state is kept in ``artefacts`` (printed) whatever the outcome."""
    context = browser.new_context(base_url=web_server.http_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        tab.screenshot(path=str(artefacts / "last.png"), full_page=True)
        print(f"screenshots: {artefacts}")
        context.close()
