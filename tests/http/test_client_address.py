"""Behind a reverse proxy, attempts are counted per client, not per proxy: with
TRUSTED_PROXIES set, one person's wrong passwords (or referral codes) pause only them, a
client cannot escape the count by writing its own X-Forwarded-For, and a header that cannot
be read is never a 500."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from lending.members import services as members
from lending.members.tables import LoginAttempt
from tests.conftest import PASSWORD, make_settings

PROXY = ("127.0.0.1", 40000)  # the address the app sees every request come from


@pytest.fixture
def tight_limit(monkeypatch):
    """Three failures per address (and many per email), so a test reaches the address limit."""
    monkeypatch.setattr(
        members, "SIGN_IN_LIMIT", dataclasses.replace(members.SIGN_IN_LIMIT, per_address=3, per_email=100)
    )


def app_behind(database: str, trusted: str):
    from lending.app import create_app

    return create_app(make_settings(database, TRUSTED_PROXIES=trusted))


def browser(app, forwarded_for: str | None) -> httpx.AsyncClient:
    """One person's browser, reaching the app through the proxy, which adds their address."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=PROXY)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver.local", headers=headers, follow_redirects=False
    )


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": client.cookies["lending_csrf"]}
    )


async def address_keys() -> set[str]:
    return {
        row["key"]
        for row in await LoginAttempt.select(LoginAttempt.key).run()
        if row["key"].startswith(("addr:", "redeem:"))
    }


async def test_behind_a_trusted_proxy_one_persons_failures_pause_only_them(database, people, tight_limit):
    app = app_behind(database, "127.0.0.1")
    async with browser(app, "203.0.113.7") as guesser, browser(app, "198.51.100.9") as member:
        for n in range(3):
            assert (await sign_in(guesser, f"nobody{n}@example.org", "wrong password")).status_code == 400
        assert (await sign_in(guesser, "member@example.org", PASSWORD)).status_code == 429
        # Everyone else comes through the same proxy and still signs in, their own slip
        # counted against their own address.
        assert (await sign_in(member, "member@example.org", "mistyped")).status_code == 400
        response = await sign_in(member, "member@example.org", PASSWORD)
        assert response.status_code == 303, response.text
    assert await address_keys() == {"addr:203.0.113.7", "addr:198.51.100.9"}


async def test_a_client_cannot_pick_its_own_address_through_the_proxy(database, people, tight_limit):
    """The proxy appends what it saw to what the client sent; only the proxy's part counts."""
    app = app_behind(database, "127.0.0.1")
    for n in range(3):
        async with browser(app, f"192.0.2.{n}, 203.0.113.7") as guesser:
            assert (await sign_in(guesser, f"nobody{n}@example.org", "wrong password")).status_code == 400
    async with browser(app, "192.0.2.99, 203.0.113.7") as guesser:
        assert (await sign_in(guesser, "member@example.org", PASSWORD)).status_code == 429
    assert await address_keys() == {"addr:203.0.113.7"}


async def test_without_trusted_proxies_the_header_is_not_believed(database, people, tight_limit):
    app = app_behind(database, "")
    for n in range(3):
        async with browser(app, f"192.0.2.{n}") as guesser:
            assert (await sign_in(guesser, f"nobody{n}@example.org", "wrong password")).status_code == 400
    async with browser(app, "192.0.2.200") as guesser:
        assert (await sign_in(guesser, "member@example.org", PASSWORD)).status_code == 429
    assert await address_keys() == {"addr:127.0.0.1"}


@pytest.mark.parametrize("header", ["garbage", "203.0.113.7, unknown", "\u00e9\u00e9, ,,[", "1.2.3.4:5:6:7:8:9:10"])
async def test_a_header_that_cannot_be_read_counts_the_proxy_and_is_no_500(database, people, header):
    app = app_behind(database, "127.0.0.1")
    async with browser(app, None) as client:
        await client.get("/login")
        response = await client.post(
            "/login",
            data={
                "email": "member@example.org",
                "password": "wrong password",
                "_csrf_token": client.cookies["lending_csrf"],
            },
            headers={"X-Forwarded-For": header.encode("latin-1")},
        )
        assert response.status_code == 400, response.text
    assert await address_keys() == {"addr:127.0.0.1"}


async def test_wrong_referral_codes_are_counted_per_client(database, people):
    app = app_behind(database, "127.0.0.1")
    async with browser(app, "203.0.113.7") as client:
        await client.get("/redeem")
        response = await client.post(
            "/redeem",
            data={
                "code": "ZZZZZZZZ",
                "name": "Someone",
                "email": "someone@example.org",
                "password": PASSWORD,
                "language": "en",
                "_csrf_token": client.cookies["lending_csrf"],
            },
        )
        assert response.status_code == 404, response.text
    assert await address_keys() == {"redeem:203.0.113.7"}
