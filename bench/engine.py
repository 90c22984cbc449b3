"""The embedded engine: point selects and write transactions through Piccolo on our SQLite
engine, beside one persistent aiosqlite connection (the limit) and Piccolo's own engine (a new
connection per query), measured in the same run on the same file.

    python bench/engine.py [--seconds 3] [--rows 50000] [--clients 1,16]

Figures (operations/s):
  * ``point select``: ``Item.select().where(Item.id == n).first()`` on random ids, through
    ``PooledSQLiteEngine`` (the default), ``ShieldedSQLiteEngine`` (``LENDING_SQLITE_ENGINE=
    per-query``, Piccolo's connection per query) and, as the limit, the same SQL on one
    persistent aiosqlite connection (WAL, synchronous=NORMAL) with no ORM;
  * ``write transaction``: ``db.transaction(write=True)`` (BEGIN IMMEDIATE) updating one row and
    reading it back; the limit is the same on one persistent connection.
With ``--clients 16``, that many tasks run at once: the limit's one connection then always has
the next statement queued, while each of ours is first built by Piccolo on the event loop
(about 100 us), which caps it; the pooled engine's readers share the rest. The bar (exit status
1 below it): one client's pooled point selects at least half the persistent connection's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


async def load(path: str, rows: int) -> None:
    import aiosqlite

    async with aiosqlite.connect(path) as connection:
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("CREATE TABLE bench_thing (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER)")
        await connection.executemany(
            "INSERT INTO bench_thing (id, name, n) VALUES (?, ?, 0)", [(i, f"thing {i}") for i in range(1, rows + 1)]
        )
        await connection.commit()


def bench_table(engine):
    from piccolo.columns import Integer, Varchar
    from piccolo.table import Table

    class BenchThing(Table, tablename="bench_thing", db=engine):
        name = Varchar()
        n = Integer()

    return BenchThing


async def timed(operation, *, seconds: float, clients: int) -> float:
    """Operations/s of ``operation()`` run by ``clients`` tasks for ``seconds``."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await operation()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - started)


async def limit_figures(path: str, rows: int, seconds: float, clients: int) -> dict[str, float]:
    import aiosqlite

    async with aiosqlite.connect(path, isolation_level=None) as connection:
        await connection.execute("PRAGMA synchronous=NORMAL")
        turn = asyncio.Lock()

        async def select() -> None:
            async with connection.execute(
                "SELECT id, name, n FROM bench_thing WHERE id = ? LIMIT 1", (random.randint(1, rows),)
            ) as cursor:
                await cursor.fetchone()

        async def write() -> None:
            async with turn:  # one connection: its transactions cannot interleave
                await connection.execute("BEGIN IMMEDIATE")
                key = random.randint(1, rows)
                await connection.execute("UPDATE bench_thing SET n = n + 1 WHERE id = ?", (key,))
                await connection.execute_fetchall("SELECT n FROM bench_thing WHERE id = ?", (key,))
                await connection.execute("COMMIT")

        return {
            "point select": await timed(select, seconds=seconds, clients=clients),
            "write transaction": await timed(write, seconds=seconds, clients=clients),
        }


async def engine_figures(path: str, kind: str, rows: int, seconds: float, clients: int) -> tuple[dict[str, float], int]:
    os.environ["LENDING_SQLITE_ENGINE"] = kind
    from lending import db, schema

    schema.configure(f"sqlite:///{path}")
    engine = db.engine()
    await db.start()
    thing = bench_table(engine)

    async def select() -> None:
        await thing.select().where(thing.id == random.randint(1, rows)).first()

    async def write() -> None:
        async with db.transaction(write=True):
            key = random.randint(1, rows)
            await thing.update({thing.n: thing.n + 1}).where(thing.id == key)
            await thing.select(thing.n).where(thing.id == key).first()

    try:
        figures = {
            "point select": await timed(select, seconds=seconds, clients=clients),
            "write transaction": await timed(write, seconds=seconds, clients=clients),
        }
    finally:
        await db.stop()
    return figures, getattr(engine, "connections_opened", -1)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--clients", default="1,16", help="comma-separated numbers of concurrent tasks")
    options = parser.parse_args()
    random.seed(8)
    folder = tempfile.mkdtemp(prefix="lending-engine-bench-")
    path = os.path.join(folder, "bench.db")
    await load(path, options.rows)
    failed = False
    print(f"{options.rows:,} rows, {options.seconds:g} s per figure; operations/s (ratio = ours / limit)")
    print(f"{'clients':>7}  {'operation':<18} {'limit':>9} {'pooled':>9} {'ratio':>6} {'per-query':>10} {'ratio':>6}")
    for clients in (int(c) for c in options.clients.split(",")):
        limit = await limit_figures(path, options.rows, options.seconds, clients)
        pooled, opened = await engine_figures(path, "pooled", options.rows, options.seconds, clients)
        per_query, _ = await engine_figures(path, "per-query", options.rows, options.seconds, clients)
        for operation, bound in limit.items():
            print(
                f"{clients:>7}  {operation:<18} {bound:>9,.0f} {pooled[operation]:>9,.0f} "
                f"{pooled[operation] / bound:>6.2f} {per_query[operation]:>10,.0f} {per_query[operation] / bound:>6.2f}"
            )
        print(f"{'':>7}  pooled engine opened {opened} connection(s) in all")
        if clients == 1 and pooled["point select"] < 0.5 * limit["point select"]:
            failed = True
    if failed:
        print("one client's pooled point selects fell below half the persistent-connection limit")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
