"""Browser tests: a real server subprocess on a fresh SQLite database, driven by Debian's chromium.

Playwright's sync API is used directly (not the pytest-playwright plugin), and these tests run in
their own pytest process (`make test` does so): the sync Playwright loop upsets later asyncio tests.
Playwright cannot download its own browser here, so it launches /usr/bin/chromium.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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
STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Server:
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + path


def _lending_command() -> str:
    """The `lending` script of the virtualenv running these tests, so the server runs this code."""
    beside_python = Path(sys.executable).parent / "lending"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("lending")
    if found is None:
        pytest.fail("The `lending` command is not installed: pip install -e '.[test]'.")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_health(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    pytest.fail(f"The server did not answer /health within {STARTUP_TIMEOUT:.0f}s:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group (granian spawns worker processes)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    lending = _lending_command()
    with tempfile.TemporaryDirectory(prefix="lending-e2e-") as tmp:
        folder = Path(tmp)
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "LENDING_DEMO": "1",
            "DATABASE_URL": f"sqlite:///{folder / 'lending.db'}",
            "BASE_URL": base_url,
        }
        for name in ("SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "SMTP_URL",
                     "LENDING_DEBUG"):
            env.pop(name, None)

        demo = subprocess.run([lending, "demo"], cwd=folder, env=env, capture_output=True, text=True, timeout=60)
        if demo.returncode != 0:
            pytest.fail(f"`lending demo` failed ({demo.returncode}):\n{demo.stdout}\n{demo.stderr}")

        log = folder / "server.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [lending, "run", "--host", "127.0.0.1", "--port", str(port)],
                cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so teardown stops the workers too
            )
        try:
            _wait_for_health(base_url, process, log)
            yield Server(base_url=base_url)
        finally:
            _stop(process)


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
