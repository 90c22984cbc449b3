"""Browser tests: a real server subprocess on a fresh SQLite database, driven by Debian's chromium.

Playwright's sync API is used directly (not the pytest-playwright plugin), and these tests run in
their own pytest process (`make test` does so): the sync Playwright loop upsets later asyncio tests.
Playwright cannot download its own browser here, so it launches /usr/bin/chromium.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Server, run_command, running_server, server_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="lending-e2e-") as tmp:
        folder = Path(tmp)
        env = server_env(LENDING_DEMO="1", DATABASE_URL=f"sqlite:///{folder / 'lending.db'}")
        run_command("demo", cwd=folder, env=env)
        with running_server(folder, env) as running:
            yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (apt-get install -y chromium); browser tests need it."
        if os.environ.get("LENDING_TEST_STRICT") == "1":
            pytest.fail(message + " LENDING_TEST_STRICT=1 forbids skipping them.")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser, server: Server):
    """Opens pages in fresh browser contexts (no shared cookies); closes them after the test."""
    contexts = []

    def open_page(**context_options):
        context = browser.new_context(base_url=server.base_url, **context_options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()
