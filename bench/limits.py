"""Reference limits, measured on this machine in this run, for bench/run.py's ratios
(bench/README.md):

  * L1  Litestar's hello-world JSON route (bench/hello_app.py) on granian with the app's worker
        count, under the same wrk as the app's routes: requests/s; and L1c, its p50 latency
        with one client at a time (the least any request over HTTP costs here);
  * L4  SQLite point selects by primary key on one persistent stdlib sqlite3 connection, and
    L4a the same on one persistent aiosqlite connection (WAL, synchronous=NORMAL), the
        fastest an async app can ask SQLite for a row: selects/s;
  * L4p PostgreSQL point selects on one persistent asyncpg connection (prepared): selects/s;
  * L5  a bare check-out/check-in pair (bench/lending.py's ``raw_sqlite``/``raw_postgres``:
        insert the loan and mark the item, then close it; two transactions) on one persistent
        connection, on the app's own tables: pairs/s;
  * L6  raw QR matrices for 1,000 item URLs with the ``qrcode`` library (the app's error
        correction and fixed mask; bench/labels.py's ``raw_matrices``), and L6b those plus a
        bare fpdf2 document drawing the same rectangles on the same number of pages: seconds.

    .venv/bin/python bench/limits.py [--postgres URL] [--seconds 10] [--results FILE]

The database limits run on SQLite always and on PostgreSQL with --postgres (scratch databases).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

ROWS = 50_000


def plain_rows() -> list[tuple]:
    rng = random.Random(7)
    return [(i, f"{i:07d}0", f"thing {rng.randrange(10**6)}", "available") for i in range(1, ROWS + 1)]


def sqlite_point_selects(path: str, seconds: float) -> tuple[float, float]:
    """(stdlib sqlite3 selects/s, aiosqlite selects/s), one persistent connection each."""
    import aiosqlite

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE thing (id INTEGER PRIMARY KEY, code TEXT UNIQUE, name TEXT, status TEXT)")
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO thing VALUES (?, ?, ?, ?)", plain_rows())
    connection.execute("COMMIT")
    connection.execute("PRAGMA synchronous = NORMAL")
    rng = random.Random(1)
    count, end = 0, time.perf_counter() + min(seconds, 3)
    start = time.perf_counter()
    while time.perf_counter() < end:
        for _ in range(1000):
            connection.execute(
                "SELECT id, code, name, status FROM thing WHERE id = ?", (rng.randrange(1, ROWS + 1),)
            ).fetchone()
        count += 1000
    stdlib = count / (time.perf_counter() - start)
    connection.close()

    async def with_aiosqlite() -> float:
        async with aiosqlite.connect(path, isolation_level=None) as db:
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            done, stop = 0, time.perf_counter() + seconds
            began = time.perf_counter()
            while time.perf_counter() < stop:
                for _ in range(100):
                    async with db.execute(
                        "SELECT id, code, name, status FROM thing WHERE id = ?", (rng.randrange(1, ROWS + 1),)
                    ) as cursor:
                        await cursor.fetchone()
                done += 100
            return done / (time.perf_counter() - began)

    return stdlib, asyncio.run(with_aiosqlite())


async def postgres_point_selects(url: str, seconds: float) -> float:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE thing (id integer PRIMARY KEY, code text UNIQUE, name text, status text)"
        )
        await connection.copy_records_to_table("thing", records=plain_rows())
        await connection.execute("ANALYZE thing")
        statement = await connection.prepare("SELECT id, code, name, status FROM thing WHERE id = $1")
        rng = random.Random(1)
        done, stop = 0, time.perf_counter() + seconds
        began = time.perf_counter()
        while time.perf_counter() < stop:
            for _ in range(100):
                await statement.fetchrow(rng.randrange(1, ROWS + 1))
            done += 100
        return done / (time.perf_counter() - began)
    finally:
        await connection.close()


async def raw_pairs(database: common.Database, pairs: int) -> float:
    """bench/lending.py's bare pair on the app's tables (one member and one item seeded through
    the services), one persistent connection."""
    from bench.lending import raw_postgres, raw_sqlite, seed

    async with common.app_database(database.url):
        members, _codes, item_ids = await seed("limit", 1, 1)
    if database.engine == "sqlite":
        return await raw_sqlite(database.raw, members[0], item_ids[0], pairs, synchronous="NORMAL")
    return await raw_postgres(database.raw, members[0], item_ids[0], pairs)


def qr_limits(count: int) -> tuple[float, float, int]:
    """(qrcode seconds, qrcode + bare fpdf2 seconds, pages) for ``count`` item URLs like the
    app's label sheets hold (codes of bench/search.py's catalogue, a loopback BASE_URL)."""
    from bench.labels import bare_fpdf, raw_matrices
    from lending.adapters import qr
    from lending.adapters.labels import TEMPLATES

    urls = [qr.item_url("http://127.0.0.1:50000", f"{n:07d}0") for n in range(1, count + 1)]
    times, runs = [], 0
    for _ in range(3):
        start = time.perf_counter()
        runs = raw_matrices(urls, qr.MASK_PATTERN)
        times.append(time.perf_counter() - start)
    matrices = common.median(times)
    pages = -(-count // TEMPLATES["L7160"].per_page)
    drawing = []
    for _ in range(3):
        start = time.perf_counter()
        bare_fpdf(runs, pages)
        drawing.append(time.perf_counter() - start)
    return matrices, matrices + common.median(drawing), pages


def main() -> None:
    parser = common.step_parser(__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000, help="bare check-out/check-in pairs per database")
    parser.add_argument("--labels", type=int, default=1000, help="QR codes for L6")
    args = parser.parse_args()
    args.engine = "sqlite"
    common.start_step(args)
    if args.postgres:
        common.require_loopback(args.postgres)
    results = common.Results(args.results)

    common.say(f"L1: Litestar hello-world, granian {args.workers} worker(s), wrk -t1 -c{args.connections}")
    with common.work_folder("limits") as folder:
        with common.hello_server(folder, args.workers) as hello:
            load = common.wrk(hello.base, ["/json"], args.seconds, args.connections, repeat=args.repeat)
            single = common.wrk(hello.base, ["/json"], args.seconds, 1, repeat=args.repeat)
        results.limit("L1", "-", "Litestar hello-world JSON (granian)", load.rps, "req/s", detail=load.detail())
        results.limit(
            "L1c",
            "-",
            "Litestar hello-world JSON, one client: p50",
            single.p50,
            "ms",
            better="lower",
            detail=f"p95 {single.p95:.2f} ms, {single.rps:,.0f} req/s",
        )

        common.say("L4/L4a: SQLite point selects on one persistent connection (WAL, synchronous=NORMAL)")
        stdlib, aio = sqlite_point_selects(str(folder / "plain.db"), args.seconds)
        results.limit("L4", "SQLite", "point select, stdlib sqlite3, one connection", stdlib, "selects/s")
        results.limit("L4a", "SQLite", "point select, aiosqlite, one connection", aio, "selects/s")
        with common.scratch_database("sqlite", folder, name="pairs") as database:
            rate = asyncio.run(raw_pairs(database, args.pairs))
        results.limit(
            "L5",
            "SQLite",
            "bare check-out/check-in pair, one connection",
            rate,
            "pairs/s",
            detail=f"{args.pairs} pairs, aiosqlite, WAL, synchronous=NORMAL",
        )

        if args.postgres:
            common.say("L4p/L5: PostgreSQL on one persistent asyncpg connection")
            with common.scratch_database("postgres", folder, args.postgres) as database:
                rate = asyncio.run(postgres_point_selects(database.raw, args.seconds))
            results.limit("L4p", "PostgreSQL", "point select, asyncpg, one connection", rate, "selects/s")
            with common.scratch_database("postgres", folder, args.postgres) as database:
                rate = asyncio.run(raw_pairs(database, args.pairs))
            results.limit(
                "L5",
                "PostgreSQL",
                "bare check-out/check-in pair, one connection",
                rate,
                "pairs/s",
                detail=f"{args.pairs} pairs, asyncpg, SELECT ... FOR UPDATE",
            )

    common.say(f"L6: {args.labels:,} QR codes with qrcode (median of 3)")
    matrices, with_pdf, pages = qr_limits(args.labels)
    results.limit("L6", "-", f"{args.labels:,} QR matrices, qrcode, fixed mask", matrices, "s", better="lower")
    results.limit(
        "L6b", "-", f"{args.labels:,} QR matrices + bare fpdf2 drawing ({pages} pages)", with_pdf, "s", better="lower"
    )


if __name__ == "__main__":
    main()
