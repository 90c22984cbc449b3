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


# Reports every Content-Security-Policy violation on a page to Python (see watch_csp).
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__lendingCspViolation(`${event.effectiveDirective || event.violatedDirective} blocked `
    + `${event.blockedURI || "inline"} (${event.sourceFile || location.href}:${event.lineNumber}) on ${location.href}`);
});
"""
_HEADER_COMPLAINTS = ("Content Security Policy", "Content-Security-Policy", "Permissions-Policy")


def watch_csp(context) -> list[str]:
    """The Content-Security-Policy violations (and console complaints about our CSP or
    Permissions-Policy headers) on every page of ``context``, as they happen."""
    found: list[str] = []
    context.expose_binding("__lendingCspViolation", lambda _source, report: found.append(report))
    context.add_init_script(_CSP_LISTENER)

    def listen(page) -> None:
        page.on(
            "console",
            lambda message: (
                found.append(f"console: {message.text} on {page.url}")
                if any(words in message.text for words in _HEADER_COMPLAINTS)
                else None
            ),
        )

    context.on("page", listen)
    return found


def assert_no_csp_violations(found: list[str]) -> None:
    assert not found, "the security headers blocked something:\n" + "\n".join(found)


@contextlib.contextmanager
def pages_on(browser, server: Server, *, timeout_ms: int = 10_000) -> Iterator:
    """A function opening pages of ``server`` in fresh browser contexts (no shared cookies);
    the contexts close on exit, after checking that no page broke the Content-Security-Policy."""
    contexts = []
    violations: list[list[str]] = []

    def open_page(**context_options):
        context = browser.new_context(base_url=server.base_url, **context_options)
        context.set_default_timeout(timeout_ms)
        contexts.append(context)
        violations.append(watch_csp(context))
        return context.new_page()

    try:
        yield open_page
        for context in contexts:
            for page in context.pages:
                with contextlib.suppress(Exception):
                    page.evaluate("0")  # a round trip, so reports still on their way arrive
        assert_no_csp_violations([report for found in violations for report in found])
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
            env = server_env(
                SECRET_KEY=SECRET,
                DATABASE_URL=f"sqlite:///{folder / 'lending.db'}",
                LENDING_DEMO="1",
                STRIPE_SECRET_KEY=fake.secret_key,
                STRIPE_WEBHOOK_SECRET=fake.webhook_secret,
                STRIPE_API_BASE=fake.base_url,
            )
            run_command("demo", cwd=folder, env=env)
            with running_server(folder, env) as server:
                fake.set_webhook(server.url("/webhooks/stripe"))
                yield server, fake


@pytest.fixture
def page(new_page):
    return new_page()
