"""Shared fixtures: a real database per engine (SQLite always, PostgreSQL when
LENDING_TEST_POSTGRES_URL is set), an app, and clients signed in as each role.

With LENDING_TEST_STRICT=1 (CI), a skipped test fails the run: PostgreSQL and browser tests
must run there, not skip.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lending.members.tables import Account

# Hashing with OWASP's 600,000 iterations takes ~0.3 s; tests hash hundreds of passwords.
# Verification reads the count from each stored hash, so the code path is unchanged.
Account._pbkdf2_iteration_count = 1_000

POSTGRES_URL = os.environ.get("LENDING_TEST_POSTGRES_URL", "").strip()
STRICT = os.environ.get("LENDING_TEST_STRICT") == "1"
SECRET = "test-secret-" + "x" * 40


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if STRICT and skipped and exitstatus == 0:
        if reporter:
            reporter.write_line(f"LENDING_TEST_STRICT=1: {skipped} test(s) skipped; failing the run.", red=True)
        session.exitstatus = 1


def skip_or_fail(reason: str) -> None:
    if STRICT:
        pytest.fail(f"{reason} (LENDING_TEST_STRICT=1 forbids skipping)")
    pytest.skip(reason)


# --- databases ---------------------------------------------------------------------------------


async def create_postgres_database(server_url: str) -> tuple[str, str]:
    """A fresh, empty database on the test server; returns (its URL, its name)."""
    import asyncpg

    name = f"lending_test_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = server_url.rsplit("/", 1)[0]
    return f"{base}/{name}", name


async def drop_postgres_database(server_url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A migrated, empty database for the session, per engine."""
    from lending import db, schema

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'lending.db'}"
        schema.configure(url)
        await db.start()
        await db.migrate()
        yield url
        await db.stop()
        return
    if not POSTGRES_URL:
        skip_or_fail("LENDING_TEST_POSTGRES_URL is not set")
    url, name = await create_postgres_database(POSTGRES_URL)
    schema.configure(url)
    await db.start()
    await db.migrate()
    yield url
    await db.stop()
    schema.configure(f"sqlite:///{tmp_path_factory.mktemp('after') / 'unused.db'}")  # release the engine
    await drop_postgres_database(POSTGRES_URL, name)


async def empty_tables() -> None:
    from lending import db
    from lending.piccolo_app import APP_CONFIG

    names = [table._meta.tablename for table in APP_CONFIG.table_classes]
    if db.is_postgres():
        await db.engine().run_ddl(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
    else:
        for name in reversed(names):
            if name == "category":  # a tree: leaves first, as each row restricts its parent's deletion
                while (await db.engine().run_ddl("SELECT count(*) AS n FROM category"))[0]["n"]:
                    await db.engine().run_ddl(
                        "DELETE FROM category WHERE id NOT IN (SELECT parent FROM category WHERE parent IS NOT NULL)"
                    )
            await db.engine().run_ddl(f"DELETE FROM {name}")
    from lending import config_cache
    from lending.workflows import first_run

    config_cache.forget_all()  # each process keeps the venue's settings, categories and policy
    first_run.forget()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[str]:
    """The session's database for this engine, emptied before each test."""
    from lending import db, schema

    schema.configure(database_url)
    await db.start()
    await empty_tables()
    yield database_url


# --- the app ------------------------------------------------------------------------------------


def make_settings(database_url: str, **overrides):
    from lending.settings import Settings

    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET, "BASE_URL": "http://testserver.local"}
    env.update(overrides)
    return Settings.from_env(env)


@pytest.fixture
async def app(database: str):
    from lending.app import create_app

    return create_app(make_settings(database))


def http_client(app):
    """An HTTP client calling the app in this event loop. (Litestar's AsyncTestClient runs
    the app in a portal thread with its own loop, where a PostgreSQL pool opened by the
    ``database`` fixture cannot be used.) Redirects are not followed: tests check them."""
    import httpx

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver.local", follow_redirects=False)


@pytest.fixture
async def client(app) -> AsyncIterator:
    async with http_client(app) as test_client:
        yield test_client


PASSWORD = "correct horse battery"


@pytest.fixture
async def people(database: str) -> dict:
    """One account per role (and a referring organisation for the link worker)."""
    from lending.members import organisations
    from lending.members import services as members

    organisation = await organisations.create_organisation(name="Riverside Surgery", kind="gp_practice")
    found = {}
    for role in ("member", "volunteer", "link_worker", "coordinator"):
        found[role] = await members.create_account(
            name=f"Test {role}",
            email=f"{role}@example.org",
            role=role,
            password=PASSWORD,
            organisation=organisation.id if role == "link_worker" else None,
        )
    found["organisation"] = organisation
    return found


async def csrf_token(client) -> str:
    if "lending_csrf" not in client.cookies:
        await client.get("/login")
    return client.cookies["lending_csrf"]


async def sign_in(client, email: str, password: str = PASSWORD):
    token = await csrf_token(client)
    return await client.post("/login", data={"email": email, "password": password, "_csrf_token": token})


async def bearer(account_id: int) -> dict[str, str]:
    """Headers carrying a new API token of this account."""
    from lending.members import services as members

    return {"Authorization": f"Bearer {await members.create_api_token(account_id=account_id)}"}


async def post_form(client, url: str, data: dict):
    token = await csrf_token(client)
    return await client.post(url, data={**data, "_csrf_token": token})


@pytest.fixture
def as_role(app, people):
    """``async with as_role("volunteer") as c``: a client signed in as that role."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def signed_in(role: str):
        async with http_client(app) as test_client:
            response = await sign_in(test_client, f"{role}@example.org")
            assert response.status_code == 303, response.text
            yield test_client

    return signed_in


def random_email() -> str:
    return f"p{secrets.token_hex(4)}@example.org"


ROOT = Path(__file__).resolve().parents[1]


# --- Stripe ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_stripe():
    """The stand-in for Stripe's API, in its own process; events are kept there (not delivered)
    for tests that hand them to the service themselves."""
    from tests.fakes.stripe import running_fake_stripe

    with running_fake_stripe() as fake:
        yield fake


@pytest.fixture
async def gateway(fake_stripe):
    from lending.memberships.gateway import StripeGateway

    found = StripeGateway(
        secret_key=fake_stripe.secret_key, webhook_secret=fake_stripe.webhook_secret, api_base=fake_stripe.base_url
    )
    yield found
    await found.close()
