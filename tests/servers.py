"""Real server processes for tests that need sockets: browser tests and several app
processes sharing one database."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 30.0
# Settings a developer's shell might carry that must not leak into a test server.
FOREIGN_SETTINGS = (
    "SECRET_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "SMTP_URL",
    "LENDING_DEBUG",
    "LENDING_DEMO",
    "DATABASE_URL",
    "BASE_URL",
)


@dataclass(frozen=True)
class Server:
    base_url: str
    process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return self.base_url + path


def lending_command() -> str:
    """The `lending` script of the virtualenv running these tests, so the server runs this code."""
    beside_python = Path(sys.executable).parent / "lending"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("lending")
    if found is None:
        pytest.fail("The `lending` command is not installed: pip install -e '.[test]'.")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_SETTINGS}
    env.update(settings)
    return env


def run_command(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([lending_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"`lending {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def running_server(folder: Path, env: dict[str, str], *, workers: int = 1, port: int | None = None) -> Iterator[Server]:
    """``lending run`` on ``port`` (a free one by default) in its own process group, stopped on
    exit. Give the port of a server that was killed to restart it where its clients are."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**env, "BASE_URL": env.get("BASE_URL", base_url)}
    log = folder / f"server-{port}.log"
    with log.open("ab") as output:  # a restart on the port of a killed server adds to its log
        process = subprocess.Popen(
            [lending_command(), "run", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_health(base_url, process, log)
        yield Server(base_url=base_url, process=process)
    finally:
        _stop(process)


def terminate(server: Server, timeout: float) -> bool:
    """Send SIGTERM to the server's process group; True if it exited within ``timeout``."""
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def kill(server: Server, timeout: float = 10) -> None:
    """SIGKILL the server's whole process group (the app's workers too): a crash, with no
    shutdown code run. Returns once the process has gone and nothing listens on its port."""
    assert server.process is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=timeout)
    # A worker's copy of the listening socket lasts until that worker has gone too.
    address = ("127.0.0.1", urllib.parse.urlsplit(server.base_url).port)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
        except OSError:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{server.base_url} still accepts connections {timeout:.0f}s after SIGKILL")
        time.sleep(0.02)
