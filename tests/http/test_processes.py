"""Several app processes on one database, both used: sessions, CSRF tokens, flash messages and
sign-in limits hold across them; a photo or manual uploaded through one is served by the other;
reminders sent by two `lending reminders send` at once, while both servers send their own mail,
reach each member once; opening hours changed through one are used by the other within the
venue cache's window; processes starting together migrate a new database once; concurrent
requests to both cannot break an invariant. (Check-outs of one item split between two servers:
tests/http/test_loan_races.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from PIL import Image

from tests.conftest import POSTGRES_URL, ROOT, SECRET, create_postgres_database, drop_postgres_database, skip_or_fail
from tests.http.test_reminders import Inbox, run_reminders, subject
from tests.servers import Server, free_port, lending_command, run_command, server_env, terminate

PASSWORD = "a long enough password"
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


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


@contextlib.contextmanager
def two_running(folder: Path, env: dict[str, str]) -> Iterator[tuple[Server, Server]]:
    """Two ``lending run`` servers on one database, started at the same time."""
    from tests.http.test_loan_races import servers_started_together  # that module imports this one

    with servers_started_together(folder, env, 2) as (first, second):
        yield first, second


@pytest.fixture(params=ENGINES)
def two_servers(request, tmp_path):
    with database_for(request.param, tmp_path) as url:
        env = server_env(SECRET_KEY=SECRET, DATABASE_URL=url)
        run_command("migrate", cwd=tmp_path, env=env)
        run_command(
            "user",
            "create",
            "--email",
            "vol@example.org",
            "--name",
            "Vol",
            "--role",
            "volunteer",
            "--password",
            PASSWORD,
            cwd=tmp_path,
            env=env,
        )
        token = run_command("token", "create", "--email", "vol@example.org", cwd=tmp_path, env=env).stdout.strip()
        with two_running(tmp_path, env) as (first, second):
            yield first, second, token


@pytest.mark.parametrize("engine", ENGINES)
def test_processes_starting_together_on_a_new_database_migrate_it_once(engine, tmp_path):
    """Every command migrates first; after an upgrade, several starting at once must not each
    create the same tables (all but one used to fail)."""
    with database_for(engine, tmp_path) as url:
        env = server_env(SECRET_KEY=SECRET, DATABASE_URL=url)
        started = [
            subprocess.Popen(
                [lending_command(), "migrate"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [process.communicate(timeout=120)[0] for process in started]
        assert [process.returncode for process in started] == [0, 0, 0], outputs
        run_command(
            "user",
            "create",
            "--email",
            "vol@example.org",
            "--name",
            "Vol",
            "--role",
            "volunteer",
            "--password",
            PASSWORD,
            cwd=tmp_path,
            env=env,
        )  # the tables are all there


def sign_in(client: httpx.Client, base: str, password: str = PASSWORD) -> httpx.Response:
    client.get(f"{base}/login")
    return client.post(
        f"{base}/login",
        data={"email": "vol@example.org", "password": password, "_csrf_token": client.cookies["lending_csrf"]},
    )


def test_a_session_from_one_process_works_on_the_other(two_servers):
    first, second, _ = two_servers
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        assert sign_in(client, first.base_url).status_code == 303
        page = client.get(f"{second.base_url}/desk")
        assert page.status_code == 200
        assert "You are signed in as Vol" in page.text  # the flash set by the first process
        response = client.post(
            f"{second.base_url}/desk/members/",
            data={
                "name": "Shared Member",
                "phone": "029 2000 0000",
                "language": "en",
                "_csrf_token": client.cookies["lending_csrf"],
            },
        )
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
        response = await client.post(
            f"{base}/api/v1/members",
            json={"name": "Racer", "email": "race@example.org"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return response.status_code

    async def race() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(register(client, (first, second)[n % 2].base_url) for n in range(30)))

    statuses = asyncio.run(race())
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 29, statuses
    found = httpx.get(
        f"{first.base_url}/api/v1/members",
        params={"q": "race@example.org"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["members"]
    assert len(found) == 1


def test_a_server_stops_promptly_on_sigterm_after_clients_hang_up(two_servers):
    """Clients that give up mid-request leave queries running; SIGTERM must still stop the
    server (on SQLite an abandoned query used to keep the process alive for ever)."""
    first, _, token = two_servers

    async def hammer() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            requests = [
                asyncio.ensure_future(
                    client.get(f"{first.base_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
                )
                for _ in range(200)
            ]
            await asyncio.sleep(0.3)
            for request in requests:
                request.cancel()
            await asyncio.gather(*requests, return_exceptions=True)

    asyncio.run(hammer())
    assert terminate(first, timeout=8), "the server ignored SIGTERM"


# --- a library with members, loans and mail, and two servers on it (one per engine) ---------------


@dataclass(frozen=True)
class Library:
    engine: str
    url: str
    env: dict[str, str]
    first: Server
    second: Server
    token: str  # a volunteer's, race-volunteer@example.org (password PASSWORD)
    member_ids: list[int]  # members with an active membership and an email address
    item_codes: list[str]
    inbox: Inbox

    def api(self, server: Server) -> httpx.Client:
        return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)


@pytest.fixture(scope="module", params=ENGINES)
def library(request, tmp_path_factory) -> Iterator[Library]:
    """Members, items and a volunteer (set up by tests/fakes/loan_race_data.py), a coordinator,
    a mail server, and two servers that send mail to it and each keep the venue's calendar."""
    from tests.http.test_loan_races import _with_root_on_path

    folder = tmp_path_factory.mktemp(f"library-{request.param}")
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with database_for(request.param, folder) as url:
            env = server_env(
                SECRET_KEY=SECRET,
                DATABASE_URL=url,
                SMTP_URL=f"smtp://127.0.0.1:{controller.port}?from=hello@library.example",
            )
            command = [sys.executable, "-m", "tests.fakes.loan_race_data", "--members", "8", "--items", "8"]
            made = subprocess.run(
                command, cwd=ROOT, env=_with_root_on_path(env), capture_output=True, text=True, timeout=120
            )
            if made.returncode != 0:
                pytest.fail(f"setting up the library failed:\n{made.stdout}\n{made.stderr}")
            data = json.loads(made.stdout.strip().splitlines()[-1])
            run_command(
                "user",
                "create",
                "--email",
                "coord@example.org",
                "--name",
                "Coord",
                "--role",
                "coordinator",
                "--password",
                PASSWORD,
                cwd=folder,
                env=env,
            )
            with two_running(folder, env) as (first, second):
                yield Library(
                    engine=request.param,
                    url=url,
                    env=env,
                    first=first,
                    second=second,
                    token=data["token"],
                    member_ids=data["member_ids"],
                    item_codes=data["item_codes"],
                    inbox=inbox,
                )
    finally:
        controller.stop()


def rows(library: Library, sql: str) -> list[dict]:
    """Read straight from the database, past the app."""
    if library.engine == "sqlite":
        connection = sqlite3.connect(library.url.split("sqlite:///", 1)[1])
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute(sql)]
        finally:
            connection.close()

    async def read() -> list[dict]:
        import asyncpg

        connection = await asyncpg.connect(library.url)
        try:
            return [dict(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(read())


@contextlib.contextmanager
def browser_signed_in(server: Server, email: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=30) as client:
        client.get("/login")
        response = client.post(
            "/login", data={"email": email, "password": PASSWORD, "_csrf_token": client.cookies["lending_csrf"]}
        )
        assert response.status_code == 303, response.text
        yield client


# --- uploads ----------------------------------------------------------------------------------


def test_a_photo_and_manual_uploaded_through_one_process_are_served_by_the_other(library):
    photo = io.BytesIO()
    Image.radial_gradient("L").resize((1200, 900)).convert("RGB").save(photo, "JPEG")
    manual = b"%PDF-1.4\n% a manual, kept byte for byte\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    with browser_signed_in(library.first, "race-volunteer@example.org") as volunteer:
        response = volunteer.post(
            "/desk/items/new",
            data={
                "name": "Sewing machine",
                "condition": "good",
                "manual_title": "User guide",
                "_csrf_token": volunteer.cookies["lending_csrf"],
            },
            files={
                "photo": ("IMG_0001.jpg", photo.getvalue(), "image/jpeg"),
                "manual": ("guide.pdf", manual, "application/pdf"),
            },
        )
    assert response.status_code == 303, response.text
    code = response.headers["location"].rsplit("/", 1)[1]

    first, second = library.first, library.second
    item = httpx.get(second.url(f"/api/v1/items/{code}"), timeout=30).json()
    assert len(item["photos"]) == 1 and item["photos"][0].startswith(second.url("/photos/"))
    photo_path = item["photos"][0].removeprefix(second.base_url)
    for path in (photo_path, photo_path + "/thumb"):
        from_second, from_first = httpx.get(second.url(path), timeout=30), httpx.get(first.url(path), timeout=30)
        assert from_second.status_code == 200 and from_second.headers["content-type"] == "image/jpeg"
        assert from_second.content == from_first.content
        width, height = Image.open(io.BytesIO(from_second.content)).size
        assert width > height  # the landscape photo, made smaller
    [manual_path] = re.findall(r'href="(/manuals/\d+)"', httpx.get(second.url(f"/i/{code}"), timeout=30).text)
    assert httpx.get(second.url(manual_path), timeout=30).content == manual
    assert httpx.get(first.url(manual_path), timeout=30).content == manual


# --- reminders --------------------------------------------------------------------------------


def _reminder_counts(outputs: list[str]) -> dict[str, int]:
    found = {"due-soon": 0, "overdue": 0}
    for output in outputs:
        for kind in found:
            match = re.search(rf"(\d+) {kind} reminders?\b", output)
            assert match, output
            found[kind] += int(match.group(1))
    return found


def test_reminders_from_two_processes_while_both_servers_send_mail_reach_each_member_once(library):
    members, items = library.member_ids, library.item_codes
    now = datetime.now(UTC)

    def lend(server: Server, n: int, days_ago: int | None = None) -> dict:
        body = {"item_code": items[n], "member_id": members[n]}
        if days_ago is not None:
            body["lent_at"] = (now - timedelta(days=days_ago)).isoformat()
        with library.api(server) as api:
            response = api.post("/api/v1/loans", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    due_soon = lend(library.first, 0, days_ago=6)  # seven-day loans: due tomorrow
    overdue = lend(library.second, 1, days_ago=10)
    lend(library.first, 2)  # due in a week: no reminder yet

    async def at_once():
        """Two reminder runs, and a check-out on each server (each server then sends what is
        waiting, as the runs do), all at the same moment."""
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {library.token}"}, timeout=60) as client:
            check_outs = [
                client.post(server.url("/api/v1/loans"), json={"item_code": items[n], "member_id": members[n]})
                for server, n in ((library.first, 3), (library.second, 4))
            ]
            return await asyncio.gather(run_reminders(library.env, copies=2), *check_outs)

    runs, *lent = asyncio.run(at_once())
    assert [response.status_code for response in lent] == [201, 201], [response.text for response in lent]
    assert all(run.returncode == 0 for run in runs), [run.stderr for run in runs]
    assert _reminder_counts([run.stdout for run in runs]) == {"due-soon": 1, "overdue": 1}, [r.stdout for r in runs]

    deadline = time.monotonic() + 20
    while True:
        outbox = rows(library, "SELECT key, to_address, subject, sent_at FROM email")
        if all(row["sent_at"] for row in outbox) and len(library.inbox.messages) >= len(outbox):
            break
        assert time.monotonic() < deadline, (outbox, len(library.inbox.messages))
        time.sleep(0.2)
    time.sleep(0.5)  # a message sent twice would arrive now

    keys = [row["key"] for row in outbox]
    assert [k for k in keys if k.startswith("loan-due-soon:")] == [
        f"loan-due-soon:{due_soon['id']}:{due_soon['due_at'][:10]}"
    ], keys
    assert [k for k in keys if k.startswith("loan-overdue:")] == [
        f"loan-overdue:{overdue['id']}:{overdue['due_at'][:10]}"
    ], keys
    assert sum(k.startswith("loan-receipt:") for k in keys) == 5, keys
    received = Counter((m["To"], subject(m)) for m in library.inbox.messages)
    assert received == Counter((row["to_address"], row["subject"]) for row in outbox), received
    assert max(received.values()) == 1, received

    again = asyncio.run(run_reminders(library.env))
    assert _reminder_counts([again[0].stdout]) == {"due-soon": 0, "overdue": 0}, again[0].stdout
    assert len(library.inbox.messages) == len(outbox)


# --- the venue's calendar ---------------------------------------------------------------------


def test_opening_hours_changed_through_one_process_are_used_by_the_other(library):
    members, items = library.member_ids, library.item_codes
    zone = ZoneInfo("Europe/London")

    def due_shown(server: Server) -> datetime:
        with library.api(server) as api:
            response = api.get(f"/api/v1/members/{members[5]}/eligibility", params={"item_code": items[5]})
        assert response.status_code == 200, response.text
        return datetime.fromisoformat(response.json()["items"][0]["due_at"])

    def save_hours(client: httpx.Client, open_on: int | None) -> None:
        hours = {f"day_{day}": "10:00-17:00" if day == open_on else "" for day in range(7)}
        response = client.post(
            "/manage/lending/hours",
            data={"timezone": "Europe/London", **hours, "_csrf_token": client.cookies["lending_csrf"]},
        )
        assert response.status_code == 303, response.text

    before = due_shown(library.second)  # the second process now holds the calendar in its cache
    seven_days = before.astimezone(zone).date()  # the members' tier lends for seven days; open every day
    assert seven_days - datetime.now(zone).date() in (timedelta(days=7), timedelta(days=6)), before
    open_day = seven_days + timedelta(days=1)
    with browser_signed_in(library.first, "coord@example.org") as coordinator:
        save_hours(coordinator, open_day.weekday())  # closed on the seventh day: due on the eighth
        try:
            after = due_shown(library.first)
            assert after.astimezone(zone).date() == open_day and after.astimezone(zone).hour == 17, after
            # The second process forgets its copy on its next request: the configuration's version moved.
            assert due_shown(library.second) == after, "the second process kept the old hours"
            with library.api(library.second) as api:
                lent = api.post("/api/v1/loans", json={"item_code": items[6], "member_id": members[6]})
            assert lent.status_code == 201, lent.text
            assert datetime.fromisoformat(lent.json()["due_at"]) == after
        finally:
            save_hours(coordinator, None)
