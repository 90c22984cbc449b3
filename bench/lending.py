"""Lending benchmark: check-out/check-in pairs through the services, beside the database's own
limit for the same writes, measured in the same run on the same database.

    python bench/lending.py [--pairs 500] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Scenarios (in process, through ``checkout.check_out`` and ``checkin.check_in``, what the desk and
the API call):
  * ``sequential``: one pair after another on one item;
  * ``20 concurrent on 5 items``: twenty tasks at once, each looping check-out then check-in on
    one of five popular items; refused check-outs (409, the item is out) are counted, and a
    monitor counts double loans (two loans of one item open at the same time), which must be 0.
The limit ("raw") is the bare minimum of the same effect on one persistent connection: per
pair, a transaction inserting the loan and marking the item, then one closing it. Loopback
only; bounded by ``--pairs``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import percentile


async def seed(prefix: str, members: int, items: int) -> tuple[list[int], list[str], list[int]]:
    from lending import clock, codes
    from lending.catalog import services as catalog
    from lending.catalog.services import ItemDetails
    from lending.catalog.tables import Item
    from lending.members.tables import Account
    from lending.memberships import counter_payments, tiers
    from lending.memberships.tiers import TierInput

    tier = await tiers.save_tier(
        values=TierInput(name=f"Bench {prefix}", min_pence=0, max_pence=100, allow_free=True, loan_limit=100)
    )
    now = clock.now()
    accounts = [
        Account(
            username=f"{prefix}{i}",
            password="x",
            email=f"{prefix}{i}@bench.example",
            name=f"B {i}",
            role="member",
            card_code=codes.new_code(12),
            active=True,
            admin=False,
            superuser=False,
            created_at=now,
        )
        for i in range(members)
    ]
    ids = [row["id"] for row in await Account.insert(*accounts).returning(Account.id).run()]
    for member_id in ids:
        await counter_payments.record_counter_payment(
            member_id=member_id, tier=tier.id, amount=0, method="cash", actor_id=None
        )
    made = [await catalog.add_item(details=ItemDetails(name=f"Bench tent {prefix} {n}")) for n in range(items)]
    item_ids = [
        row["id"]
        for row in await Item.select(Item.id).where(Item.code.is_in([m.code for m in made])).order_by(Item.id).run()
    ]
    return ids, [m.code for m in made], item_ids


async def app_sequential(member_id: int, code: str, pairs: int) -> tuple[float, list[float]]:
    from lending.loans import checkin, checkout

    times = []
    start = time.perf_counter()
    for _ in range(pairs):
        began = time.perf_counter()
        [loan] = await checkout.check_out(member_id=member_id, item_codes=[code], actor_id=None, via="api")
        await checkin.check_in(loan_id=loan.id, actor_id=None, via="api")
        times.append(time.perf_counter() - began)
    return pairs / (time.perf_counter() - start), times


async def app_concurrent(member_ids: list[int], item_codes: list[str], pairs: int) -> tuple[float, int, int, int]:
    """Twenty tasks on five items until ``pairs`` pairs completed; returns pairs/s, refusals,
    double loans seen by the monitor while it ran, and loans of one item whose recorded times
    overlap in the history afterwards."""
    from lending import errors
    from lending.loans import checkin, checkout
    from lending.loans.tables import Loan

    done = 0
    refused = 0
    stop = asyncio.Event()

    async def worker(n: int) -> None:
        nonlocal done, refused
        code = item_codes[n % len(item_codes)]
        while not stop.is_set():
            try:
                [loan] = await checkout.check_out(member_id=member_ids[n], item_codes=[code], actor_id=None, via="api")
            except errors.Conflict:
                refused += 1
                await asyncio.sleep(0)
                continue
            await checkin.check_in(loan_id=loan.id, actor_id=None, via="api")
            done += 1
            if done >= pairs:
                stop.set()

    doubles = 0

    async def monitor() -> None:
        nonlocal doubles
        while not stop.is_set():
            rows = await Loan.raw(
                "SELECT item, count(*) AS n FROM loan WHERE returned_at IS NULL GROUP BY item HAVING count(*) > 1"
            ).run()
            doubles += len(rows)
            await asyncio.sleep(0.01)

    start = time.perf_counter()
    await asyncio.gather(monitor(), *(worker(n) for n in range(20)))
    rate = done / (time.perf_counter() - start)
    # Afterwards, the whole history: no two loans of one item may overlap in time.
    overlapping = await Loan.raw(
        "SELECT count(*) AS n FROM loan a JOIN loan b ON a.item = b.item AND a.id < b.id "
        "AND b.lent_at < coalesce(a.returned_at, b.lent_at) AND a.lent_at < coalesce(b.returned_at, a.lent_at)"
    ).run()
    return rate, refused, doubles, overlapping[0]["n"]


async def raw_sqlite(path: str, member_id: int, item_id: int, pairs: int, synchronous: str | None = None) -> float:
    """``synchronous="NORMAL"`` (with WAL) is the fastest durable-enough setting: the limit
    bench/run.py uses. Left out, the connection keeps SQLite's default (FULL)."""
    import aiosqlite

    async with aiosqlite.connect(path, isolation_level=None) as connection:
        await connection.execute("PRAGMA busy_timeout = 30000")
        if synchronous:
            await connection.execute("PRAGMA journal_mode = WAL")
            await connection.execute(f"PRAGMA synchronous = {synchronous}")
        start = time.perf_counter()
        for _ in range(pairs):
            await connection.execute("BEGIN IMMEDIATE")
            cursor = await connection.execute(
                "INSERT INTO loan (item, member, lent_at, due_at, renewals, recorded_at, return_condition, "
                "return_notes, parts_missing) VALUES (?, ?, datetime('now'), datetime('now', '+7 days'), 0, "
                "datetime('now'), '', '', '[]') RETURNING id",
                (item_id, member_id),
            )
            loan_id = (await cursor.fetchone())[0]
            await connection.execute("UPDATE item SET status = 'on_loan' WHERE id = ?", (item_id,))
            await connection.execute("COMMIT")
            await connection.execute("BEGIN IMMEDIATE")
            await connection.execute("UPDATE loan SET returned_at = datetime('now') WHERE id = ?", (loan_id,))
            await connection.execute("UPDATE item SET status = 'available' WHERE id = ?", (item_id,))
            await connection.execute("COMMIT")
        return pairs / (time.perf_counter() - start)


async def raw_postgres(url: str, member_id: int, item_id: int, pairs: int) -> float:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        start = time.perf_counter()
        for _ in range(pairs):
            async with connection.transaction():
                await connection.execute("SELECT id FROM item WHERE id = $1 FOR UPDATE", item_id)
                loan_id = await connection.fetchval(
                    "INSERT INTO loan (item, member, lent_at, due_at, renewals, recorded_at, return_condition, "
                    "return_notes, parts_missing) VALUES ($1, $2, now(), now() + interval '7 days', 0, now(), '', "
                    "'', '[]') RETURNING id",
                    item_id,
                    member_id,
                )
                await connection.execute("UPDATE item SET status = 'on_loan' WHERE id = $1", item_id)
            async with connection.transaction():
                await connection.execute("UPDATE loan SET returned_at = now() WHERE id = $1", loan_id)
                await connection.execute("UPDATE item SET status = 'available' WHERE id = $1", item_id)
        return pairs / (time.perf_counter() - start)
    finally:
        await connection.close()


def line(name: str, rate: float, limit: float, extra: str = "") -> None:
    print(f"  {name:<28} {rate:8.0f} pairs/s  limit {limit:8.0f}/s  ratio {rate / limit:5.2f}  {extra}")


async def run(engine: str, url: str, pairs: int) -> None:
    from lending import db, schema

    schema.configure(url)
    await db.start()
    await db.migrate()
    try:
        members, codes, item_ids = await seed(uuid.uuid4().hex[:6], 21, 6)
        if engine == "sqlite":
            limit = await raw_sqlite(url.split("sqlite:///", 1)[1], members[20], item_ids[5], pairs)
        else:
            limit = await raw_postgres(url, members[20], item_ids[5], pairs)
        print(f"{engine}: {pairs} check-out/check-in pairs per scenario")
        print(f"  {'raw (limit)':<28} {limit:8.0f} pairs/s")
        rate, times = await app_sequential(members[0], codes[0], pairs)
        line(
            "sequential",
            rate,
            limit,
            f"p50 {statistics.median(times) * 1000:.2f} ms  p95 {percentile(times, 0.95) * 1000:.2f} ms",
        )
        rate, refused, doubles, overlaps = await app_concurrent(members[:20], codes[1:6], pairs)
        line(
            "20 concurrent on 5 items",
            rate,
            limit,
            f"refused {refused}  double loans {doubles}  overlapping times {overlaps}",
        )
        if doubles or overlaps:
            raise SystemExit(f"{engine}: {doubles} double loans, {overlaps} loans whose times overlap")
    finally:
        await db.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--postgres", default="")
    args = parser.parse_args()
    os.environ.setdefault("PICCOLO_CONF", "lending.piccolo_conf")
    with tempfile.TemporaryDirectory(prefix="lending-bench-") as folder:
        await run("sqlite", f"sqlite:///{folder}/bench.db", args.pairs)
    if args.postgres:
        from tests.conftest import create_postgres_database, drop_postgres_database

        url, name = await create_postgres_database(args.postgres)
        try:
            await run("postgres", url, args.pairs)
        finally:
            from lending import schema

            schema.configure(f"sqlite:///{tempfile.gettempdir()}/lending-bench-unused.db")
            await drop_postgres_database(args.postgres, name)


if __name__ == "__main__":
    asyncio.run(main())
