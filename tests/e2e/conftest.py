"""Browser tests: a real server subprocess on a fresh SQLite database, driven by Debian's chromium.

Playwright's sync API is used directly (not the pytest-playwright plugin), and these tests run in
their own pytest process (`make test` does so): the sync Playwright loop upsets later asyncio tests.
Playwright cannot download its own browser here, so it launches /usr/bin/chromium.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def pages_on(browser, server: Server, *, timeout_ms: int = 10_000) -> Iterator:
    """A function opening pages of ``server`` in fresh browser contexts (no shared cookies);
    the contexts close on exit."""
    contexts = []

    def open_page(**context_options):
        context = browser.new_context(base_url=server.base_url, **context_options)
        context.set_default_timeout(timeout_ms)
        contexts.append(context)
        return context.new_page()

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def new_page(browser, server: Server):
    with pages_on(browser, server) as open_page:
        yield open_page


@contextlib.contextmanager
def demo_server_with_stripe(prefix: str) -> Iterator[tuple[Server, object]]:
    """A demo venue on its own SQLite file, paying through the Stripe stand-in, whose webhooks
    reach the server."""
    from tests.conftest import SECRET
    from tests.fakes.stripe import running_fake_stripe

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        folder = Path(tmp)
        with running_fake_stripe(log_folder=folder) as fake:
            env = server_env(SECRET_KEY=SECRET, DATABASE_URL=f"sqlite:///{folder / 'lending.db'}", LENDING_DEMO="1",
                             STRIPE_SECRET_KEY=fake.secret_key, STRIPE_WEBHOOK_SECRET=fake.webhook_secret,
                             STRIPE_API_BASE=fake.base_url)
            run_command("demo", cwd=folder, env=env)
            with running_server(folder, env) as server:
                fake.set_webhook(server.url("/webhooks/stripe"))
                yield server, fake


@pytest.fixture
def page(new_page):
    return new_page()
