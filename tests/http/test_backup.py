"""``lending backup`` and ``lending restore`` as whoever runs the server uses them, on SQLite and
PostgreSQL: a backup taken while a real server keeps writing is one moment of the database; it
restores into a new, empty database that needs no migration and that a server then serves; and
every bad input ends in one clear line and a non-zero exit, with nothing changed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lending.settings import sqlite_path
from tests.conftest import POSTGRES_URL, SECRET, create_postgres_database, drop_postgres_database, skip_or_fail
from tests.servers import free_port, lending_command, run_command, running_server, server_env

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PASSWORD = "a long enough password"
WRITERS = 3


# --- helpers -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def new_database(engine: str, folder: Path, name: str) -> Iterator[str]:
    """A URL for a database that does not hold anything yet (on SQLite, not even a file)."""
    if engine == "sqlite":
        yield f"sqlite:///{folder / f'{name}.db'}"
        return
    if not POSTGRES_URL:
        skip_or_fail("LENDING_TEST_POSTGRES_URL is not set")
    url, database = asyncio.run(create_postgres_database(POSTGRES_URL))
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(POSTGRES_URL, database))


def query(url: str, sql: str) -> list[tuple]:
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as connection:
            return connection.execute(sql).fetchall()

    async def fetch() -> list[tuple]:
        import asyncpg

        connection = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(fetch())


def lending(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command as a person runs it, whatever its exit status."""
    return subprocess.run(
        [lending_command(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def refused(result: subprocess.CompletedProcess, message: str, *, status: int = 2, started: bool = False) -> None:
    """One line on stderr saying ``message``, nothing on stdout, exit ``status``; ``started``: after
    the line that says the work began (a refusal comes before it)."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if started:
        assert lines[0].startswith("Restoring "), result.stderr
        lines = lines[1:]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lending: error: ") and message in lines[0], lines[0]
    assert result.stdout == ""


def fingerprint(url: str) -> object:
    """What a refused command must leave alone: the SQLite file's bytes, or on PostgreSQL the
    tables and every account."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    tables = query(
        url,
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v') ORDER BY relname",
    )
    accounts = query(url, "SELECT id, email, name FROM account ORDER BY id") if ("account",) in tables else []
    return tables, accounts


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".part"))


def counted(text: str, noun: str) -> int:
    found = re.search(rf"(\d[\d,]*) {noun}s?\b", text)
    assert found, text
    return int(found.group(1).replace(",", ""))


# --- a backup while the app writes ---------------------------------------------------------------------


@dataclass
class Write:
    writer: int
    number: int
    started: float
    finished: float
    status: int


def keep_registering(base_url: str, token: str, writer: int, stop: threading.Event, done: list[Write]) -> None:
    """Register members one after another, each only once the last was answered."""
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        number = 0
        while not stop.is_set():
            started = time.monotonic()
            response = client.post(
                f"{base_url}/api/v1/members",
                json={"name": f"Writer {writer} number {number}", "email": f"w{writer}-{number}@example.org"},
            )
            done.append(Write(writer, number, started, time.monotonic(), response.status_code))
            number += 1


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_backup_taken_while_the_app_writes_restores_as_one_moment(engine, tmp_path):
    backup_file = tmp_path / "backups" / "lending.dump"
    backup_file.parent.mkdir()
    with new_database(engine, tmp_path, "live") as live_url:
        live = server_env(SECRET_KEY=SECRET, DATABASE_URL=live_url)
        run_command("demo", cwd=tmp_path, env=live)
        run_command(
            "user",
            "create",
            "--email",
            "desk@example.org",
            "--name",
            "Desk",
            "--role",
            "volunteer",
            "--password",
            PASSWORD,
            cwd=tmp_path,
            env=live,
        )
        token = run_command("token", "create", "--email", "desk@example.org", cwd=tmp_path, env=live).stdout.strip()

        writes: list[Write] = []
        stop = threading.Event()
        with running_server(tmp_path, live) as server:
            threads = [
                threading.Thread(target=keep_registering, args=(server.base_url, token, n, stop, writes))
                for n in range(WRITERS)
            ]
            for thread in threads:
                thread.start()
            try:
                wait_until(lambda: len(writes) >= 5 * WRITERS)
                began = time.monotonic()
                made = lending("backup", str(backup_file), cwd=tmp_path, env=live)
                ended = time.monotonic()
                written_so_far = len(writes)
                wait_until(lambda: len(writes) >= written_so_far + 5 * WRITERS)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=30)
        live_accounts = query(live_url, "SELECT count(*) FROM account")[0][0]

    assert made.returncode == 0, made.stderr
    assert f"to {backup_file}: " in made.stdout and re.search(r"\d (kB|MB), ", made.stdout), made.stdout
    assert {write.status for write in writes} == {201}, {write.status for write in writes}
    assert any(began < write.finished < ended for write in writes), "nothing was written while the backup ran"
    assert backup_file.stat().st_mode & 0o077 == 0  # personal data: readable by its owner only
    assert leftovers(backup_file.parent) == []

    with new_database(engine, tmp_path, "restored") as restored_url:
        restored = server_env(SECRET_KEY=SECRET, DATABASE_URL=restored_url)
        put_back = run_command("restore", str(backup_file), cwd=tmp_path, env=restored)
        migrations = query(restored_url, "SELECT name FROM migration ORDER BY name")
        assert "up to date" in run_command("migrate", cwd=tmp_path, env=restored).stdout
        assert query(restored_url, "SELECT name FROM migration ORDER BY name") == migrations  # nothing was pending

        emails = {row[0] for row in query(restored_url, "SELECT email FROM account WHERE email LIKE 'w%@example.org'")}
        # One moment: each writer's members are a prefix of what it wrote (the next was only sent
        # once the last was answered); all answered before the backup began are in, none sent
        # after it ended.
        for writer in range(WRITERS):
            numbers = sorted(
                int(email.split("-")[1].split("@")[0]) for email in emails if email.startswith(f"w{writer}-")
            )
            assert numbers == list(range(len(numbers))), (writer, numbers)
        for write in writes:
            email = f"w{write.writer}-{write.number}@example.org"
            if write.finished < began:
                assert email in emails
            if write.started > ended:
                assert email not in emails
        # ...and across writers: a member answered before another one was sent is in the backup
        # whenever that later one is.
        latest_sent = max(write.started for write in writes if f"w{write.writer}-{write.number}@example.org" in emails)
        missing = [
            write
            for write in writes
            if write.finished < latest_sent and f"w{write.writer}-{write.number}@example.org" not in emails
        ]
        assert missing == []
        assert len(emails) < len(writes)
        # Each member is whole: its account and the audit row written in the same transaction.
        assert query(
            restored_url,
            "SELECT count(*) FROM account a WHERE a.email LIKE 'w%@example.org' AND NOT EXISTS "
            "(SELECT 1 FROM audit_event e WHERE e.action = 'account.create' "
            "AND e.subject = 'account:' || a.id)",
        ) == [(0,)]
        assert query(
            restored_url,
            "SELECT count(*) FROM audit_event e WHERE e.action = 'account.create' AND NOT "
            "EXISTS (SELECT 1 FROM account a WHERE e.subject = 'account:' || a.id)",
        ) == [(0,)]
        # The counts the backup printed are the backup's, and the restore found the same.
        accounts = query(restored_url, "SELECT count(*) FROM account")[0][0]
        assert counted(made.stdout, "account") == accounts == counted(put_back.stdout, "account") < live_accounts
        assert counted(made.stdout, "item") == query(restored_url, "SELECT count(*) FROM item")[0][0] > 0
        assert query(restored_url, "SELECT name FROM account WHERE email = 'coordinator@demo.example'") == [
            ("Carys Coordinator",)
        ]

        with running_server(tmp_path, restored) as server, httpx.Client(timeout=10) as client:
            client.get(server.url("/login"))
            signed_in = client.post(
                server.url("/login"),
                data={
                    "email": "volunteer@demo.example",
                    "password": "demo-volunteer",
                    "_csrf_token": client.cookies["lending_csrf"],
                },
                follow_redirects=False,
            )
            assert signed_in.status_code == 303
            assert client.get(server.url("/desk")).status_code == 200
            headers = {"Authorization": f"Bearer {token}"}  # API tokens are restored too
            found = client.get(server.url("/api/v1/members"), params={"q": "w0-0@example.org"}, headers=headers)
            assert [member["name"] for member in found.json()["members"]] == ["Writer 0 number 0"]
            # New rows get new ids (PostgreSQL's sequences came back with the tables).
            new = client.post(
                server.url("/api/v1/members"), json={"name": "After", "email": "after@example.org"}, headers=headers
            )
            assert new.status_code == 201, new.text


# --- bad input -----------------------------------------------------------------------------------------


@dataclass
class Install:
    engine: str
    url: str
    env: dict[str, str]
    folder: Path
    backup: Path  # a good backup of this install, holding its one account


@contextlib.contextmanager
def new_install(engine: str, folder: Path) -> Iterator[Install]:
    with new_database(engine, folder, "lending") as url:
        env = server_env(SECRET_KEY=SECRET, DATABASE_URL=url)
        run_command(
            "user",
            "create",
            "--email",
            "desk@example.org",
            "--name",
            "Desk",
            "--role",
            "volunteer",
            "--password",
            PASSWORD,
            cwd=folder,
            env=env,
        )
        backup = folder / "good.dump"
        run_command("backup", str(backup), cwd=folder, env=env)
        yield Install(engine, url, env, folder, backup)


@pytest.fixture(scope="module", params=ENGINES)
def install(request, tmp_path_factory) -> Iterator[Install]:
    with new_install(request.param, tmp_path_factory.mktemp(f"install-{request.param}")) as found:
        yield found


@pytest.fixture(scope="module")
def postgres_install(tmp_path_factory) -> Iterator[Install]:
    with new_install("postgres", tmp_path_factory.mktemp("install-postgres-only")) as found:
        yield found


@contextlib.contextmanager
def other_database(engine: str, folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    with new_database(engine, folder, "other") as url:
        yield url, server_env(SECRET_KEY=SECRET, DATABASE_URL=url)


def test_backup_refuses_to_replace_a_file_unless_forced(install, tmp_path):
    target = tmp_path / "lending.dump"
    target.write_bytes(b"last week's backup")
    refused(lending("backup", str(target), cwd=tmp_path, env=install.env), "already exists")
    assert target.read_bytes() == b"last week's backup"
    assert leftovers(tmp_path) == []
    forced = lending("backup", str(target), "--force", cwd=tmp_path, env=install.env)
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes()[:5] in (b"SQLit", b"PGDMP")


def test_backup_into_a_folder_that_does_not_exist(install, tmp_path):
    refused(
        lending("backup", str(tmp_path / "missing" / "lending.dump"), cwd=tmp_path, env=install.env), "does not exist"
    )
    assert not (tmp_path / "missing").exists()
    refused(lending("backup", str(tmp_path), cwd=tmp_path, env=install.env), "is a folder")


def test_backup_of_a_database_that_cannot_be_reached(install, tmp_path):
    if install.engine == "sqlite":
        url, message = f"sqlite:///{tmp_path / 'var' / 'nothing.db'}", "There is no SQLite database"
    else:
        url, message = f"postgresql://lending:s3cret-pw@127.0.0.1:{free_port()}/lending", "Cannot reach"
    result = lending(
        "backup",
        str(tmp_path / "lending.dump"),
        cwd=tmp_path,
        env=server_env(SECRET_KEY=SECRET, DATABASE_URL=url, PGPASSWORD=""),
    )
    refused(result, message, status=1)
    assert "s3cret" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # no backup, no half file, no empty database


@pytest.mark.postgres
def test_backup_without_pg_dump_says_what_to_install(postgres_install, tmp_path):
    env = {**postgres_install.env, "PATH": str(tmp_path / "bin")}
    refused(
        lending("backup", str(tmp_path / "lending.dump"), cwd=tmp_path, env=env),
        "pg_dump is not installed: install the PostgreSQL client",
        status=1,
    )
    assert leftovers(tmp_path) == [] and not (tmp_path / "lending.dump").exists()


@pytest.mark.postgres
def test_a_failed_pg_dump_leaves_no_file_and_never_shows_the_password(postgres_install, tmp_path):
    """A stand-in pg_dump that records how it was called, writes half a file, then fails."""
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "pg_dump"
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$CALLED_WITH"\nprintf "%s" "$PGPASSWORD" > "$CALLED_WITH.pw"\n'
        'for arg; do case "$arg" in --file=*) printf PGDMP-half > "${arg#--file=}";; esac; done\n'
        'echo "pg_dump: error: query failed: disk quota exceeded" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    # The test server trusts local connections, so it ignores the password; pg_dump must still get it.
    url = postgres_install.url.replace("postgres@", "postgres:pa%40ss%2Fword@", 1)
    called = tmp_path / "called"
    env = {
        **postgres_install.env,
        "DATABASE_URL": url,
        "PATH": f"{tools}:{postgres_install.env['PATH']}",
        "CALLED_WITH": str(called),
    }
    backups = tmp_path / "backups"
    backups.mkdir()
    result = lending("backup", str(backups / "lending.dump"), cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "lending: error: pg_dump failed, so no backup was written: pg_dump: error: query failed: disk quota exceeded."
    )
    assert list(backups.iterdir()) == []  # neither the half file nor the named one
    argv = called.read_text()
    assert "pa%40ss" not in argv and "pa@ss" not in argv and "--format=custom" in argv and "--no-owner" in argv
    assert (tmp_path / "called.pw").read_text() == "pa@ss/word"
    assert "pa@ss" not in result.stderr and "pa%40ss" not in result.stderr


def test_restore_refuses_a_database_that_holds_accounts_unless_forced(install, tmp_path):
    with other_database(install.engine, tmp_path) as (url, env):
        refuse_then_force(install, url, env, tmp_path)


def refuse_then_force(install: Install, url: str, env: dict[str, str], tmp_path: Path) -> None:
    run_command(
        "user",
        "create",
        "--email",
        "someone@example.org",
        "--name",
        "Someone",
        "--role",
        "member",
        cwd=tmp_path,
        env=env,
    )
    before = fingerprint(url)
    refused(lending("restore", str(install.backup), cwd=tmp_path, env=env), "already holds 1 account")
    assert fingerprint(url) == before
    forced = lending("restore", str(install.backup), "--force", cwd=tmp_path, env=env)
    assert forced.returncode == 0, forced.stderr
    assert query(url, "SELECT email FROM account") == [("desk@example.org",)]


def test_restore_of_a_cut_short_backup_changes_nothing(install, tmp_path):
    before = fingerprint(install.url)
    data = install.backup.read_bytes()
    for size in (len(data) // 2, 60):
        short = tmp_path / f"short-{size}.dump"
        short.write_bytes(data[:size])
        # Even with --force: the file is checked before the database is touched.
        refused(lending("restore", str(short), "--force", cwd=install.folder, env=install.env), "incomplete")
        assert fingerprint(install.url) == before


def test_restore_refuses_a_backup_of_the_other_kind_of_database(install, tmp_path):
    if install.engine == "postgres":
        with new_database("sqlite", tmp_path, "small") as url:
            env = server_env(DATABASE_URL=url)
            run_command("migrate", cwd=tmp_path, env=env)
            run_command("backup", str(tmp_path / "sqlite.db"), cwd=tmp_path, env=env)
        other, message = tmp_path / "sqlite.db", "is a backup of a SQLite database, but DATABASE_URL names a PostgreSQL"
    else:
        other = tmp_path / "postgres.dump"  # the first bytes of a pg_dump custom-format file
        other.write_bytes(b"PGDMP\x01\x0e\x00\x04\x08\x01\x01" + bytes(500))
        message = "is a PostgreSQL backup (pg_dump custom format), but DATABASE_URL names a SQLite"
    before = fingerprint(install.url)
    refused(lending("restore", str(other), "--force", cwd=install.folder, env=install.env), message)
    assert fingerprint(install.url) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"email,name\nsomeone@example.org,Someone\n", "is not a backup made by `lending backup`"),
        (b"\x1f\x8b\x08\x00" + bytes(100), "compressed with gzip"),
        (b"--\n-- PostgreSQL database dump\n--\n", "plain-text SQL dump"),
    ],
    ids=["empty", "csv", "gzip", "sql"],
)
def test_restore_says_what_a_file_is_when_it_is_no_backup(install, tmp_path, content, message):
    path = tmp_path / "backup"
    path.write_bytes(content)
    before = fingerprint(install.url)
    refused(lending("restore", str(path), "--force", cwd=install.folder, env=install.env), message)
    refused(lending("restore", str(tmp_path / "absent.dump"), cwd=install.folder, env=install.env), "does not exist")
    assert fingerprint(install.url) == before


def test_restore_refuses_a_sqlite_database_of_another_program(tmp_path):
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE recipe (name TEXT)")
        connection.commit()
    env = server_env(DATABASE_URL=f"sqlite:///{tmp_path / 'lending.db'}")
    refused(lending("restore", str(other), cwd=tmp_path, env=env), "is a SQLite database, but not a backup of lending")
    assert not (tmp_path / "lending.db").exists()


@pytest.mark.postgres
def test_postgres_restore_refuses_a_database_with_newer_tables(postgres_install, tmp_path):
    with other_database("postgres", tmp_path) as (url, env):
        run_command("migrate", cwd=tmp_path, env=env)
        query(url, "CREATE TABLE newer_feature (id serial PRIMARY KEY)")
        before = fingerprint(url)
        refused(lending("restore", str(postgres_install.backup), "--force", cwd=tmp_path, env=env), "has tables that")
        assert fingerprint(url) == before


@pytest.mark.postgres
def test_postgres_restore_that_fails_halfway_changes_nothing(postgres_install, tmp_path):
    """pg_restore runs in one transaction: here it cannot drop the account table, which a view
    of this database depends on, so nothing it did before that stays."""
    with other_database("postgres", tmp_path) as (url, env):
        run_command(
            "user",
            "create",
            "--email",
            "someone@example.org",
            "--name",
            "Someone",
            "--role",
            "member",
            cwd=tmp_path,
            env=env,
        )
        query(url, "CREATE VIEW member_names AS SELECT name FROM account")
        before = fingerprint(url)
        refused(
            lending("restore", str(postgres_install.backup), "--force", cwd=tmp_path, env=env),
            "pg_restore failed, so nothing was changed",
            status=1,
            started=True,
        )
        assert fingerprint(url) == before
