"""Several app processes on one database: sessions, CSRF, flash messages and sign-in limits
hold across them, and concurrent requests to both cannot break an invariant."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_URL, SECRET, create_postgres_database, drop_postgres_database, skip_or_fail
from tests.servers import run_command, running_server, server_env, terminate

PASSWORD = "a long enough password"


@contextlib.contextmanager
def database_for(engine: str, folder: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{folder / 'shared.db'}"
        return
    if not POSTGRES_URL:
        skip_or_fail("LENDING_TEST_POSTGRES_URL is not set")
    url, name = asyncio.run(create_postgres_database(POSTGRES_URL))
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(POSTGRES_URL, name))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_servers(request, tmp_path):
    with database_for(request.param, tmp_path) as url:
        env = server_env(SECRET_KEY=SECRET, DATABASE_URL=url)
        run_command("migrate", cwd=tmp_path, env=env)
        run_command("user", "create", "--email", "vol@example.org", "--name", "Vol", "--role", "volunteer",
                    "--password", PASSWORD, cwd=tmp_path, env=env)
        token = run_command("token", "create", "--email", "vol@example.org", cwd=tmp_path, env=env).stdout.strip()
        with running_server(tmp_path, env) as first, running_server(tmp_path, env) as second:
            yield first, second, token


def sign_in(client: httpx.Client, base: str, password: str = PASSWORD) -> httpx.Response:
    client.get(f"{base}/login")
    return client.post(f"{base}/login", data={"email": "vol@example.org", "password": password,
                                               "_csrf_token": client.cookies["lending_csrf"]})


def test_a_session_from_one_process_works_on_the_other(two_servers):
    first, second, _ = two_servers
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        assert sign_in(client, first.base_url).status_code == 303
        page = client.get(f"{second.base_url}/desk")
        assert page.status_code == 200
        assert "You are signed in as Vol" in page.text  # the flash set by the first process
        response = client.post(f"{second.base_url}/desk/members/", data={
            "name": "Shared Member", "phone": "029 2000 0000", "language": "en",
            "_csrf_token": client.cookies["lending_csrf"]})
        assert response.status_code == 303
        assert "Shared Member" in client.get(f"{first.base_url}/desk", params={"q": "shared"}).text
        client.post(f"{second.base_url}/logout", data={"_csrf_token": client.cookies["lending_csrf"]})
        client.cookies.set("id", client.cookies.get("id") or "gone")
        assert client.get(f"{first.base_url}/desk").status_code == 303


def test_sign_in_limit_counts_attempts_on_every_process(two_servers):
    first, second, _ = two_servers
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        for attempt in range(5):
            server = first if attempt % 2 else second
            assert sign_in(client, server.base_url, "wrong password").status_code == 400
        response = sign_in(client, first.base_url)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0


def test_concurrent_registrations_with_one_email_make_one_member(two_servers):
    first, second, token = two_servers

    async def register(client: httpx.AsyncClient, base: str) -> int:
        response = await client.post(f"{base}/api/v1/members", json={"name": "Racer", "email": "race@example.org"},
                                     headers={"Authorization": f"Bearer {token}"})
        return response.status_code

    async def race() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(register(client, (first, second)[n % 2].base_url) for n in range(30)))

    statuses = asyncio.run(race())
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 29, statuses
    found = httpx.get(f"{first.base_url}/api/v1/members", params={"q": "race@example.org"},
                      headers={"Authorization": f"Bearer {token}"}).json()["members"]
    assert len(found) == 1


def test_a_server_stops_promptly_on_sigterm_after_clients_hang_up(two_servers):
    """Clients that give up mid-request leave queries running; SIGTERM must still stop the
    server (on SQLite an abandoned query used to keep the process alive for ever)."""
    first, _, token = two_servers

    async def hammer() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            requests = [asyncio.ensure_future(client.get(f"{first.base_url}/api/v1/me",
                                                         headers={"Authorization": f"Bearer {token}"}))
                        for _ in range(200)]
            await asyncio.sleep(0.3)
            for request in requests:
                request.cancel()
            await asyncio.gather(*requests, return_exceptions=True)

    asyncio.run(hammer())
    assert terminate(first, timeout=8), "the server ignored SIGTERM"
