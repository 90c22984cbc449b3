"""No double loans, for real: 50 check-outs of ONE item, each for a different member (so only
availability decides, not borrowing limits), sent at the same moment to real ``lending run``
server processes, on SQLite and on PostgreSQL, and split between two servers sharing one
database. Exactly one may succeed; the other 49 are 409 ``item_unavailable``, none is a 5xx,
and the database holds one open loan for the item, which is ``on_loan``.

The negative controls send the same load to a server without the guard: the ``loan_one_open``
index dropped and the availability check patched out (tests/fakes/unguarded_app.py, started
by granian), where these same assertions must find more than one loan. So a pass above means
the guard held, not that the test could not see a double loan. On PostgreSQL a second control
keeps the check and removes only the row lock: a double loan there needs two transactions
that really overlap, which shows the requests do. And with only the row lock removed but the
index in place, PostgreSQL still lends the item once: the index has the last word, and its
violations come back as 409 ``item_unavailable``, not as 500s.

Each client opens its own connection and authenticates before the race (the token's
once-an-hour "last used" write happens then), then all wait on one barrier and post together.
The databases and servers are per module and engine; each race has an item of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SECRET
from tests.http.test_processes import database_for
from tests.servers import Server, _stop, _wait_for_health, free_port, running_server, server_env

RACERS = 50
TIMEOUT = 60.0  # per request: up to 50 writers queue on one lock
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ONLY_POSTGRES = [pytest.param("postgres", marks=pytest.mark.postgres)]


# --- the library and its servers ---------------------------------------------------------------


@dataclass(frozen=True)
class Library:
    engine: str
    url: str
    env: dict[str, str]
    folder: Path
    token: str
    item_codes: list[str]
    member_ids: list[int]


def _with_root_on_path(env: dict[str, str]) -> dict[str, str]:
    """So that a child process can import ``tests.fakes``."""
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


@contextlib.contextmanager
def library(engine: str, folder: Path, *, items: int, drop_guard_index: bool = False) -> Iterator[Library]:
    """A fresh database with a free tier, RACERS members with active memberships, a volunteer's
    API token and the items, set up by tests/fakes/loan_race_data.py in its own process (so
    this process's ``lending.db``, which other tests' fixtures own, is left alone)."""
    with database_for(engine, folder) as url:
        env = server_env(SECRET_KEY=SECRET, DATABASE_URL=url)
        command = [sys.executable, "-m", "tests.fakes.loan_race_data", "--members", str(RACERS), "--items", str(items)]
        if drop_guard_index:
            command.append("--drop-guard-index")
        result = subprocess.run(
            command, cwd=ROOT, env=_with_root_on_path(env), capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            pytest.fail(f"setting up the race failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        data = json.loads(result.stdout.strip().splitlines()[-1])
        yield Library(
            engine=engine,
            url=url,
            env=env,
            folder=folder,
            token=data["token"],
            item_codes=data["item_codes"],
            member_ids=data["member_ids"],
        )


def granian_command() -> str:
    beside_python = Path(sys.executable).parent / "granian"
    if not beside_python.exists():
        pytest.fail("granian is not installed beside this Python: pip install -e '.[test]'.")
    return str(beside_python)


@contextlib.contextmanager
def unguarded_server(lib: Library, mode: str) -> Iterator[Server]:
    """The app of tests/fakes/unguarded_app.py under granian, served as ``lending run`` serves
    the real one (the set-up applied the migrations)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _with_root_on_path({**lib.env, "BASE_URL": base_url, "LENDING_UNGUARDED": mode})
    log = lib.folder / f"server-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                granian_command(),
                "--interface",
                "asgi",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--no-ws",
                "tests.fakes.unguarded_app:create_app",
            ],
            cwd=ROOT,
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


@contextlib.contextmanager
def servers_started_together(folder: Path, env: dict[str, str], count: int) -> Iterator[list[Server]]:
    """``running_server`` several times, booting at once (each takes seconds to start); all
    stopped on exit, including when one fails to start."""
    managers = [running_server(folder, env) for _ in range(count)]
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
        servers, problems = [], []
        for manager, future in zip(managers, futures, strict=True):
            if future.exception() is None:
                stack.push(manager.__exit__)
                servers.append(future.result())
            else:
                problems.append(future.exception())
        if problems:
            raise problems[0]
        yield servers


@dataclass(frozen=True)
class Guarded:
    lib: Library
    first: Server
    second: Server


@pytest.fixture(scope="module")
def guarded(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    """The real app: a library with an item per race, and two ``lending run`` servers on it."""
    folder = tmp_path_factory.mktemp(f"races-{engine}")
    with library(engine, folder, items=3) as lib, servers_started_together(folder, lib.env, 2) as (first, second):
        yield Guarded(lib, first, second)


@pytest.fixture(scope="module")
def unguarded_library(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    """A library whose database has lost its ``loan_one_open`` index, an item per control."""
    folder = tmp_path_factory.mktemp(f"controls-{engine}")
    with library(engine, folder, items=2, drop_guard_index=True) as lib:
        yield lib


# --- the race ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    server: str
    member_id: int
    status: int | None  # None: no answer (the body says why)
    code: str | None
    body: str
    sent_at: float
    answered_at: float


async def _race(servers: list[Server], lib: Library, item_code: str) -> list[Outcome]:
    """One check-out of the item per member, spread over the servers, all posted at once."""
    headers = {"Authorization": f"Bearer {lib.token}"}
    tls = ssl.create_default_context()  # one for all: each client would otherwise load the CA bundle
    clients = [
        httpx.AsyncClient(base_url=servers[n % len(servers)].base_url, headers=headers, timeout=TIMEOUT, verify=tls)
        for n in range(len(lib.member_ids))
    ]
    barrier = asyncio.Barrier(len(clients))

    async def warm_up(client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/me")
        assert response.status_code == 200, f"{client.base_url}/api/v1/me: {response.status_code} {response.text[:300]}"

    async def check_out(client: httpx.AsyncClient, member_id: int) -> Outcome:
        await barrier.wait()
        sent_at = time.monotonic()
        try:
            response = await client.post("/api/v1/loans", json={"item_code": item_code, "member_id": member_id})
        except httpx.HTTPError as exc:
            return Outcome(
                str(client.base_url).rstrip("/"), member_id, None, None, repr(exc), sent_at, time.monotonic()
            )
        answered_at = time.monotonic()
        try:
            code = response.json().get("code")
        except (ValueError, AttributeError):
            code = None
        return Outcome(
            str(client.base_url).rstrip("/"),
            member_id,
            response.status_code,
            code,
            response.text[:500],
            sent_at,
            answered_at,
        )

    try:
        await warm_up(clients[0])  # the token's "last used" write, once
        await asyncio.gather(*(warm_up(client) for client in clients))
        return await asyncio.gather(
            *(check_out(client, member_id) for client, member_id in zip(clients, lib.member_ids, strict=True))
        )
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def race(servers: list[Server], lib: Library, item_code: str) -> list[Outcome]:
    return asyncio.run(_race(servers, lib, item_code))


# --- what the database says ----------------------------------------------------------------------

OPEN_LOANS = (
    "SELECT loan.id, loan.member FROM loan JOIN item ON item.id = loan.item "
    "WHERE item.code = {p} AND loan.returned_at IS NULL ORDER BY loan.id"
)
ITEM_STATUS = "SELECT status FROM item WHERE code = {p}"


@dataclass(frozen=True)
class Stored:
    open_loans: list[tuple[int, int]]  # (loan id, member id)
    item_status: str | None


def stored(lib: Library, item_code: str) -> Stored:
    """Read straight from the database, past the app."""
    if lib.engine == "sqlite":
        connection = sqlite3.connect(lib.url.split("sqlite:///", 1)[1])
        try:
            loans = [tuple(row) for row in connection.execute(OPEN_LOANS.format(p="?"), (item_code,))]
            status = connection.execute(ITEM_STATUS.format(p="?"), (item_code,)).fetchone()
        finally:
            connection.close()
        return Stored(loans, status[0] if status else None)

    async def read() -> Stored:
        import asyncpg

        connection = await asyncpg.connect(lib.url)
        try:
            rows = await connection.fetch(OPEN_LOANS.format(p="$1"), item_code)
            status = await connection.fetchval(ITEM_STATUS.format(p="$1"), item_code)
        finally:
            await connection.close()
        return Stored([(row["id"], row["member"]) for row in rows], status)

    return asyncio.run(read())


# --- diagnostics ---------------------------------------------------------------------------------


def _log_tails(folder: Path, lines: int = 40) -> str:
    parts = []
    for log in sorted(folder.glob("server-*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name} (last {len(tail)} lines) ---\n" + "\n".join(tail))
    return "\n".join(parts) or "(no server logs)"


def in_flight_at_first_answer(outcomes: list[Outcome]) -> int:
    first_answer = min(o.answered_at for o in outcomes)
    return sum(1 for o in outcomes if o.sent_at < first_answer)


def report(outcomes: list[Outcome], lib: Library, item_code: str, found: Stored | None = None) -> str:
    sent = [o.sent_at for o in outcomes]
    first_answer = min(o.answered_at for o in outcomes)
    odd = [o for o in outcomes if o.status not in (201, 409) or (o.status == 409 and o.code != "item_unavailable")]
    lines = [
        f"engine={lib.engine} item={item_code}",
        f"statuses: {dict(sorted(Counter(o.status for o in outcomes).items(), key=str))}",
        f"(status, code): {dict(sorted(Counter((o.status, o.code) for o in outcomes).items(), key=str))}",
        f"(server, status): {dict(sorted(Counter((o.server, o.status) for o in outcomes).items(), key=str))}",
        f"sent within {1000 * (max(sent) - min(sent)):.1f} ms; {in_flight_at_first_answer(outcomes)}/{len(outcomes)} "
        f"sent before the first answer (at {1000 * (first_answer - min(sent)):.0f} ms); the last answer at "
        f"{1000 * (max(o.answered_at for o in outcomes) - min(sent)):.0f} ms",
        f"201s (member, body): {[(o.member_id, o.body[:160]) for o in outcomes if o.status == 201][:5]}",
        f"unexpected answers ({len(odd)}): {[(o.server, o.status, o.body[:300]) for o in odd][:5]}",
    ]
    if found is not None:
        lines.append(f"database: open loans (id, member) {found.open_loans[:60]}; item status {found.item_status!r}")
    lines.append(_log_tails(lib.folder))
    return "\n".join(lines)


def assert_exactly_one_loan(outcomes: list[Outcome], lib: Library, item_code: str) -> None:
    found = stored(lib, item_code)
    why = report(outcomes, lib, item_code, found)
    print(why.split("\n--- ", 1)[0])  # shown with -rP, and with the captured output of a failure
    assert len(outcomes) == RACERS, why
    assert in_flight_at_first_answer(outcomes) >= RACERS // 2, "the requests did not overlap:\n" + why
    assert not [o for o in outcomes if o.status is None or o.status >= 500], "no answer or a 5xx:\n" + why
    assert Counter(o.status for o in outcomes) == {201: 1, 409: RACERS - 1}, why
    assert all(o.code == "item_unavailable" for o in outcomes if o.status == 409), why
    winner = next(o for o in outcomes if o.status == 201)
    assert json.loads(winner.body)["item_code"] == item_code, why
    assert [member for _, member in found.open_loans] == [winner.member_id], why
    assert found.item_status == "on_loan", why


def assert_double_loans_detected(outcomes: list[Outcome], lib: Library, item_code: str) -> None:
    found = stored(lib, item_code)
    why = report(outcomes, lib, item_code, found)
    print(why.split("\n--- ", 1)[0])
    lent = [o for o in outcomes if o.status == 201]
    assert len(lent) > 1, "the unguarded server lent the item only once, so the race test proves nothing:\n" + why
    assert len(found.open_loans) > 1, why
    assert sorted(member for _, member in found.open_loans) == sorted(o.member_id for o in lent), why


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES, scope="module")
def test_fifty_simultaneous_check_outs_of_one_item_lend_it_once(guarded):
    item = guarded.lib.item_codes[0]
    outcomes = race([guarded.first], guarded.lib, item)
    assert_exactly_one_loan(outcomes, guarded.lib, item)


@pytest.mark.parametrize("engine", ENGINES, scope="module")
def test_check_outs_split_between_two_servers_lend_the_item_once(guarded):
    item = guarded.lib.item_codes[1]
    outcomes = race([guarded.first, guarded.second], guarded.lib, item)
    assert_exactly_one_loan(outcomes, guarded.lib, item)
    answered_by = {o.server for o in outcomes if o.status == 409}
    assert answered_by == {guarded.first.base_url, guarded.second.base_url}, report(outcomes, guarded.lib, item)


@pytest.mark.parametrize("engine", ONLY_POSTGRES, scope="module")
def test_without_the_row_lock_the_index_alone_still_lends_the_item_once_on_postgres(guarded):
    """The database's last word: with no FOR UPDATE (and a pause after the availability check,
    see tests/fakes/unguarded_app.py), several check-outs pass the check and meet the
    ``loan_one_open`` index; each violation must come back as a 409, not a 500."""
    item = guarded.lib.item_codes[2]
    with unguarded_server(guarded.lib, "no_lock") as server:
        outcomes = race([server], guarded.lib, item)
    assert_exactly_one_loan(outcomes, guarded.lib, item)
    # The index's 409 has no "reasons": nothing in the assessment objected.
    by_index = [o for o in outcomes if o.status == 409 and "reasons" not in json.loads(o.body)]
    assert by_index, "no check-out reached the index, so this did not test it:\n" + report(outcomes, guarded.lib, item)


@pytest.mark.parametrize("engine", ENGINES, scope="module")
def test_control_without_the_check_and_the_index_the_race_test_sees_double_loans(unguarded_library):
    item = unguarded_library.item_codes[0]
    with unguarded_server(unguarded_library, "no_guard") as server:
        outcomes = race([server], unguarded_library, item)
    assert_double_loans_detected(outcomes, unguarded_library, item)


@pytest.mark.parametrize("engine", ONLY_POSTGRES, scope="module")
def test_control_without_the_row_lock_and_the_index_postgres_lends_one_item_twice(unguarded_library):
    """The availability check stays; only FOR UPDATE and the index go. A second loan then needs
    two transactions that really overlap, so this shows the requests do (up to the ten of the
    server's connection pool)."""
    item = unguarded_library.item_codes[1]
    with unguarded_server(unguarded_library, "no_lock") as server:
        outcomes = race([server], unguarded_library, item)
    assert_double_loans_detected(outcomes, unguarded_library, item)
