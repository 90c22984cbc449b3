"""The embedded engine (``lending.sqlite_engine.PooledSQLiteEngine``): connections kept and
reused, one writer taken in turn, readers that see every commit, and transactions that end
cleanly however their caller leaves them. Each test has its own database file and engine; the
whole suite also runs on this engine (it is the default), including the races between server
processes (test_loan_races, test_processes, test_faults)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from lending import sqlite_engine
from lending.settings import Settings, SettingsError
from lending.sqlite_engine import PooledSQLiteEngine, ShieldedSQLiteEngine


@pytest.fixture
async def engine(tmp_path):
    made = PooledSQLiteEngine(path=str(tmp_path / "engine.db"), readers=3, timeout=5)
    await made.run_ddl("PRAGMA journal_mode=WAL")
    await made.run_ddl("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    await made.run_ddl(
        "CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE, counter INTEGER REFERENCES counter (id))"
    )
    await made.run_ddl("INSERT INTO counter (id, n) VALUES (1, 0)")
    yield made
    await made.close()


async def count(engine, table: str = "note") -> int:
    return (await engine.run_ddl(f"SELECT count(*) AS n FROM {table}"))[0]["n"]


def worker_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def test_queries_reuse_a_few_connections(engine):
    opened = engine.connections_opened
    await asyncio.gather(*(engine.run_ddl("SELECT n FROM counter WHERE id = 1") for _ in range(300)))
    for number in range(20):
        await engine.run_ddl(f"INSERT INTO note (text) VALUES ('note {number}')")
    assert await count(engine) == 20
    # Piccolo's own engine would have opened 321 connections (and threads) here.
    assert engine.connections_opened - opened <= 3
    assert engine.connections_opened <= 3 + 1  # three readers, one writer


async def test_every_connection_is_wal_normal_with_foreign_keys(engine):
    readers = await asyncio.gather(
        *(
            engine.run_ddl(
                "SELECT s.synchronous, f.foreign_keys, j.journal_mode FROM pragma_synchronous AS s, "
                "pragma_foreign_keys AS f, pragma_journal_mode AS j"
            )
            for _ in range(10)
        )
    )
    assert {tuple(row[0].values()) for row in readers} == {(1, 1, "wal")}  # 1 is NORMAL
    assert (await engine.run_ddl("PRAGMA synchronous"))[0]["synchronous"] == 1  # the writer
    with pytest.raises(sqlite3.IntegrityError):
        await engine.run_ddl("INSERT INTO note (text, counter) VALUES ('orphan', 99)")


async def test_concurrent_read_then_write_transactions_lose_no_update(engine):
    async def increment() -> None:
        for _ in range(10):
            async with engine.transaction(transaction_type=sqlite_engine.TransactionType.immediate):
                n = (await engine.run_ddl("SELECT n FROM counter WHERE id = 1"))[0]["n"]
                await asyncio.sleep(0)  # let the others try to interleave
                await engine.run_ddl(f"UPDATE counter SET n = {n + 1} WHERE id = 1")

    await asyncio.gather(*(increment() for _ in range(30)))
    assert (await engine.run_ddl("SELECT n FROM counter WHERE id = 1"))[0]["n"] == 300


async def test_readers_see_commits_of_other_connections_at_once(engine):
    await engine.run_ddl("SELECT n FROM counter")  # the readers are open before the write
    other = sqlite3.connect(engine.path, isolation_level=None)
    try:
        for number in range(5):
            other.execute("INSERT INTO note (text) VALUES (?)", (f"from elsewhere {number}",))
            counts = await asyncio.gather(*(count(engine) for _ in range(6)))
            assert set(counts) == {number + 1}
    finally:
        other.close()


async def test_a_failed_transaction_is_rolled_back_and_its_connection_reused(engine):
    with pytest.raises(sqlite3.IntegrityError):
        async with engine.transaction(transaction_type=sqlite_engine.TransactionType.immediate):
            await engine.run_ddl("INSERT INTO note (text) VALUES ('kept?')")
            await engine.run_ddl("INSERT INTO note (text) VALUES ('kept?')")
    assert await count(engine) == 0
    async with engine.transaction(transaction_type=sqlite_engine.TransactionType.immediate):
        await engine.run_ddl("INSERT INTO note (text) VALUES ('after')")
    assert await count(engine) == 1


async def test_a_cancelled_transaction_ends_before_its_connection_is_lent_again(engine):
    inside = asyncio.Event()

    async def abandoned() -> None:
        async with engine.transaction(transaction_type=sqlite_engine.TransactionType.immediate):
            await engine.run_ddl("INSERT INTO note (text) VALUES ('half written')")
            inside.set()
            await asyncio.sleep(30)  # the client goes away here

    task = asyncio.ensure_future(abandoned())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(2):  # the writer is free again, not held by the dead request
        async with engine.transaction(transaction_type=sqlite_engine.TransactionType.immediate):
            await engine.run_ddl("INSERT INTO note (text) VALUES ('next')")
    assert [row["text"] for row in await engine.run_ddl("SELECT text FROM note")] == ["next"]


async def test_cancelled_single_statements_finish_and_leave_the_pool_whole(engine):
    tasks = [
        asyncio.ensure_future(engine.run_ddl(f"INSERT INTO note (text) VALUES ('n{number}')")) for number in range(40)
    ]
    await asyncio.sleep(0.001)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    async with asyncio.timeout(5):
        written = await count(engine)
        await asyncio.gather(*(count(engine) for _ in range(20)))
        await engine.run_ddl("INSERT INTO note (text) VALUES ('last')")
    assert 20 <= written <= 40  # cancelled ones may or may not have run; never half of one
    assert await count(engine) == written + 1


async def test_a_writer_waiting_longer_than_the_busy_timeout_is_told_the_database_is_locked(tmp_path):
    engine = PooledSQLiteEngine(path=str(tmp_path / "busy.db"), timeout=0.2)
    await engine.run_ddl("CREATE TABLE note (text TEXT)")
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with engine.transaction(transaction_type=sqlite_engine.TransactionType.immediate):
            holding.set()
            await release.wait()

    holder = asyncio.ensure_future(hold())
    await holding.wait()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        await engine.run_ddl("INSERT INTO note (text) VALUES ('waits')")
    assert await count(engine) == 0  # reads never wait for the writer
    release.set()
    await holder
    await engine.run_ddl("INSERT INTO note (text) VALUES ('now')")
    await engine.close()


async def test_a_deferred_transaction_may_write(engine):
    """Piccolo's migrations write in deferred transactions: they run on a reader connection
    and take SQLite's write lock when they first write."""
    async with engine.transaction():
        await engine.run_ddl("INSERT INTO note (text) VALUES ('deferred')")
        assert await count(engine) == 1
    assert await count(engine) == 1


async def test_another_event_loop_gets_connections_of_its_own(engine):
    await engine.run_ddl("INSERT INTO note (text) VALUES ('main loop')")

    def elsewhere() -> int:
        async def work() -> int:
            await engine.run_ddl("INSERT INTO note (text) VALUES ('other loop')")
            async with engine.transaction(transaction_type=sqlite_engine.TransactionType.immediate):
                await engine.run_ddl("UPDATE counter SET n = n + 1")
            return await count(engine)

        return asyncio.run(work())

    assert await asyncio.to_thread(elsewhere) == 2
    assert await count(engine) == 2
    assert (await engine.run_ddl("SELECT n FROM counter"))[0]["n"] == 1


async def test_close_ends_every_connection_thread(tmp_path):
    before = worker_threads()
    engine = PooledSQLiteEngine(path=str(tmp_path / "close.db"), readers=4)
    await engine.run_ddl("CREATE TABLE note (text TEXT)")
    await asyncio.gather(*(engine.run_ddl("SELECT count(*) FROM note") for _ in range(50)))
    assert len(worker_threads() - before) >= 2
    await engine.close()
    for _ in range(100):
        if not worker_threads() - before:
            break
        await asyncio.sleep(0.01)
    assert worker_threads() - before == set()
    await engine.run_ddl("INSERT INTO note (text) VALUES ('after close')")  # a closed engine opens anew
    assert await count(engine) == 1
    await engine.close()


def test_the_engine_is_chosen_by_the_setting(tmp_path, monkeypatch):
    from lending import db

    url = f"sqlite:///{tmp_path / 'choice.db'}"
    monkeypatch.delenv(sqlite_engine.ENGINE_SETTING, raising=False)
    assert type(db.make_engine(url)) is PooledSQLiteEngine
    monkeypatch.setenv(sqlite_engine.ENGINE_SETTING, "per-query")
    assert type(db.make_engine(url)) is ShieldedSQLiteEngine
    monkeypatch.setenv(sqlite_engine.READERS_SETTING, "2")
    monkeypatch.setenv(sqlite_engine.ENGINE_SETTING, "pooled")
    assert db.make_engine(url).readers == 2


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LENDING_SQLITE_ENGINE", "fast", "must be one of pooled, per-query"),
        ("LENDING_SQLITE_READERS", "0", "whole number from 1 to 64"),
        ("LENDING_SQLITE_READERS", "four", "whole number from 1 to 64"),
    ],
)
def test_a_wrong_engine_setting_is_refused_at_start(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value, "LENDING_DEMO": "1"})


@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        ("SELECT 1", True),
        ("  select * from note", True),
        ("\nSELECT count(*) FROM note", True),
        ("INSERT INTO note VALUES (1)", False),
        ("WITH x AS (SELECT 1) DELETE FROM note", False),
        ("PRAGMA journal_mode=WAL", False),
        ("UPDATE note SET text = 'SELECT'", False),
    ],
)
def test_only_selects_go_to_readers(sql, reads):
    assert sqlite_engine.is_read(sql) is reads


async def test_close_lets_a_transaction_still_running_finish_first(engine):
    """A server stopping while a request is mid-transaction: the request ends normally."""
    inside = asyncio.Event()

    async def request() -> None:
        async with engine.transaction(transaction_type=sqlite_engine.TransactionType.immediate):
            await engine.run_ddl("INSERT INTO note (text) VALUES ('first')")
            inside.set()
            await asyncio.sleep(0.2)
            await engine.run_ddl("INSERT INTO note (text) VALUES ('second')")

    running = asyncio.ensure_future(request())
    await inside.wait()
    await engine.close()
    await running  # no "closed database" error
    assert await count(engine) == 2
