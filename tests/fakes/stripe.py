"""Run the fake Stripe (``tests/fakes/stripe_server.py``) for a test and drive it.

It runs as its own process, like the real thing, so the app under test (in-process or a
``lending run`` server) reaches it only through the ``stripe`` SDK over HTTP, and its webhooks
arrive over HTTP, signed, in the background::

    with running_fake_stripe(webhook_url=app.url("/stripe/webhook")) as fake:
        settings = {"STRIPE_SECRET_KEY": fake.secret_key, "STRIPE_API_BASE": fake.base_url,
                    "STRIPE_WEBHOOK_SECRET": fake.webhook_secret}
        ...
        fake.pay(session_id)
        fake.wait_for_deliveries()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "sk_test_fake"
STARTUP_TIMEOUT = 15.0


class FakeStripeError(AssertionError):
    """A control call the fake refused: a test set something up wrongly, so fail loudly."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeStripe:
    """A handle on one running fake: where it is, its keys, and its test-control endpoints."""

    def __init__(
        self,
        base_url: str,
        webhook_secret: str,
        *,
        secret_key: str = SECRET_KEY,
        process: subprocess.Popen | None = None,
        log_path: Path | None = None,
    ):
        self.base_url = base_url
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.process = process
        self.log_path = log_path
        # trust_env=False: a developer's HTTP(S)_PROXY must not capture calls to 127.0.0.1.
        self._http = httpx.Client(base_url=base_url, timeout=60, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def client(self) -> stripe.StripeClient:
        """The real SDK pointed at the fake; no retries, so a test sees each request once."""
        return stripe.StripeClient(self.secret_key, base_addresses={"api": self.base_url}, max_network_retries=0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def _call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        ok: tuple[int, ...] = (200,),
        params: dict | None = None,
    ) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        if response.status_code not in ok:
            raise FakeStripeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    # --- control --------------------------------------------------------------------------

    def set_webhook(self, url: str | None, secret: str | None = None) -> None:
        """Where events go (None stops delivery; events are still stored)."""
        secret = secret or self.webhook_secret
        self._call("POST", "/_test/webhook", {"url": url, "secret": secret})
        self.webhook_secret = secret

    def pay(self, session_id: str, outcome: str = "succeed") -> dict:
        """Complete a Checkout Session as if on the payment page. "succeed" and "async" return the
        session; "fail" (declined: only a ``payment_intent.payment_failed`` event) returns
        ``{"error", "session"}``."""
        return self._call(
            "POST",
            f"/_test/sessions/{session_id}/pay",
            {"outcome": outcome},
            ok=(402,) if outcome == "fail" else (200,),
        )

    def settle(self, session_id: str, succeed: bool = True) -> dict:
        """A delayed ("async") payment clears or fails; returns the session."""
        return self._call("POST", f"/_test/sessions/{session_id}/settle", {"succeed": succeed})

    def renew(self, subscription_id: str, succeed: bool = True) -> dict:
        """The next period's invoice is paid or fails: ``{"invoice", "subscription"}``."""
        return self._call("POST", f"/_test/subscriptions/{subscription_id}/renew", {"succeed": succeed})

    def end_subscription(self, subscription_id: str) -> dict:
        """The period ends after ``cancel_at_period_end``; returns the canceled subscription."""
        return self._call("POST", f"/_test/subscriptions/{subscription_id}/end", {})

    def resend(self, event_id: str, times: int = 5, concurrent: bool = True) -> list[int | None]:
        """Deliver a stored event again (same id and body), ``times`` at once when concurrent;
        the HTTP statuses (None for a connection error)."""
        return self._call("POST", f"/_test/events/{event_id}/resend", {"times": times, "concurrent": concurrent})[
            "statuses"
        ]

    def send(self, type: str, obj: dict, previous_attributes: dict | None = None) -> dict:
        """A new event of any ``type`` around ``obj``, delivered before this returns:
        ``{"event", "statuses"}``."""
        body: dict = {"type": type, "object": obj}
        if previous_attributes is not None:
            body["previous_attributes"] = previous_attributes
        return self._call("POST", "/_test/send", body)

    def events(self, type: str | None = None) -> list[dict]:
        """Every event so far, oldest first, each with its ``deliveries``."""
        return self._call("GET", "/_test/events", params={"type": type} if type else None)

    def requests(self) -> list[dict]:
        """The API requests received: method, path, decoded params, idempotency key, status."""
        return self._call("GET", "/_test/requests")

    def reset(self) -> None:
        """Forget every object, event and request (the webhook settings stay)."""
        self._call("POST", "/_test/reset", {})

    def wait_for_deliveries(self, timeout: float = 10) -> None:
        """Block until no webhook delivery is queued or in flight."""
        deadline = time.monotonic() + timeout
        while True:
            state = self._call("GET", "/_test/idle")
            if state["idle"]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Fake Stripe still has {state['pending']} webhook deliveries after {timeout}s")
            time.sleep(0.02)


def _wait_until_ready(fake: FakeStripe, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(timeout=1, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"The fake Stripe exited with {process.returncode}:\n{fake.log()}")
            try:
                if http.get(fake.base_url + "/_test/idle").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    pytest.fail(f"The fake Stripe did not answer within {STARTUP_TIMEOUT:.0f}s:\n{fake.log()}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def running_fake_stripe(
    webhook_url: str | None = None, webhook_secret: str = "whsec_test_fake", log_folder: Path | str | None = None
) -> Iterator[FakeStripe]:
    """The fake Stripe on a free 127.0.0.1 port, in its own process group, stopped on exit.
    Its output goes to ``log_folder/fake-stripe-<port>.log`` (kept), else to a temporary file."""
    port = _free_port()
    folder = Path(log_folder) if log_folder is not None else Path(tempfile.mkdtemp(prefix="fake-stripe-"))
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"fake-stripe-{port}.log"
    command = [
        sys.executable,
        "-m",
        "tests.fakes.stripe_server",
        "--port",
        str(port),
        "--webhook-secret",
        webhook_secret,
    ]
    if webhook_url:
        command += ["--webhook-url", webhook_url]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    fake = FakeStripe(f"http://127.0.0.1:{port}", webhook_secret, process=process, log_path=log_path)
    try:
        _wait_until_ready(fake, process)
        yield fake
    finally:
        fake.close()
        _stop(process)
        if log_folder is None:
            shutil.rmtree(folder, ignore_errors=True)
