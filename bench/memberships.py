"""Memberships benchmark: how fast Stripe's webhook events are applied, beside the database's
own limit for the same effect, measured in the same run on the same database.

    python bench/memberships.py [--events 1000] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Scenarios (in process, through ``stripe_events.handle_stripe_event``, the webhook's service):
  * ``paid``: distinct ``checkout.session.completed`` events, one after another: each records
    the event, activates a membership, records a payment and queues a receipt;
  * ``5x concurrent``: each of those events delivered five times at once (asyncio.gather):
    one effect, four duplicates, all answered.
The limit ("raw") is the bare minimum of the same effect on one persistent connection: per
event, a transaction with the event row, the membership update and the payment row. Loopback
only; bounded by ``--events``.
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


async def seed(count: int, prefix: str) -> list[dict]:
    """``count`` members, each with a pending membership and an open checkout; the events
    Stripe would send when each is paid."""
    from lending import clock, codes
    from lending.members.tables import Account
    from lending.memberships import tiers
    from lending.memberships.tables import Checkout, Membership, Tier
    from lending.memberships.tiers import TierInput

    tier_name = f"Bench {prefix}"
    if not await Tier.exists().where(Tier.name == tier_name).run():
        await tiers.save_tier(values=TierInput(name=tier_name, min_pence=100, max_pence=5000))
    tier = await Tier.select(Tier.id).where(Tier.name == tier_name).first().run()
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
        for i in range(count)
    ]
    ids = [row["id"] for row in await Account.insert(*accounts).returning(Account.id).run()]
    rows = (
        await Membership.insert(
            *[
                Membership(
                    member=i,
                    tier=tier["id"],
                    status="pending",
                    amount_pence=500,
                    interval="one_off",
                    created_at=now,
                    updated_at=now,
                )
                for i in ids
            ]
        )
        .returning(Membership.id)
        .run()
    )
    membership_ids = [row["id"] for row in rows]
    checkouts = (
        await Checkout.insert(
            *[
                Checkout(
                    membership=m,
                    tier=tier["id"],
                    amount_pence=500,
                    interval="one_off",
                    status="open",
                    session_id=f"cs_{prefix}_{n}",
                    created_at=now,
                )
                for n, m in enumerate(membership_ids)
            ]
        )
        .returning(Checkout.id)
        .run()
    )
    created = int(time.time())
    return [
        {
            "id": f"evt_{prefix}_{n}",
            "object": "event",
            "type": "checkout.session.completed",
            "created": created,
            "data": {
                "object": {
                    "id": f"cs_{prefix}_{n}",
                    "object": "checkout.session",
                    "mode": "payment",
                    "payment_status": "paid",
                    "amount_total": 500,
                    "payment_intent": f"pi_{prefix}_{n}",
                    "customer": f"cus_{prefix}_{n}",
                    "metadata": {"checkout_id": str(c["id"]), "membership_id": str(m)},
                }
            },
        }
        for n, (c, m) in enumerate(zip(checkouts, membership_ids))
    ]


async def app_paid(events: list[dict]) -> tuple[float, list[float]]:
    from lending.memberships import stripe_events

    times = []
    start = time.perf_counter()
    for event in events:
        began = time.perf_counter()
        assert await stripe_events.handle_stripe_event(event=event) == "applied"
        times.append(time.perf_counter() - began)
    return len(events) / (time.perf_counter() - start), times


async def app_concurrent(events: list[dict]) -> tuple[float, list[float]]:
    from lending.memberships import stripe_events

    times = []
    start = time.perf_counter()
    for event in events:
        began = time.perf_counter()
        outcomes = await asyncio.gather(*(stripe_events.handle_stripe_event(event=event) for _ in range(5)))
        assert sorted(outcomes) == ["applied"] + ["duplicate"] * 4, outcomes
        times.append(time.perf_counter() - began)
    return len(events) / (time.perf_counter() - start), times


async def raw_sqlite(path: str, events: list[dict]) -> float:
    import aiosqlite

    async with aiosqlite.connect(path, isolation_level=None) as connection:
        await connection.execute("PRAGMA busy_timeout = 30000")
        start = time.perf_counter()
        for n, event in enumerate(events):
            session = event["data"]["object"]
            await connection.execute("BEGIN IMMEDIATE")
            await connection.execute(
                "INSERT INTO stripe_event (event_id, type, created, received_at, outcome, payload) "
                "VALUES (?, ?, ?, datetime('now'), 'applied', '') ON CONFLICT DO NOTHING",
                (event["id"], event["type"], event["created"]),
            )
            await connection.execute(
                "UPDATE membership SET status = 'active', ends_at = datetime('now', '+1 year') WHERE id = ?",
                (int(session["metadata"]["membership_id"]),),
            )
            await connection.execute(
                "INSERT INTO payment (receipt_code, member, membership, tier_name, amount_pence, forward_pence, "
                "currency, method, refunded_pence, stripe_reference, stripe_payment_intent, paid_at) "
                "SELECT ?, member, id, '', 500, 0, 'gbp', 'stripe', 0, ?, ?, datetime('now') FROM membership "
                "WHERE id = ?",
                (f"R{n:09d}", session["id"], session["payment_intent"], int(session["metadata"]["membership_id"])),
            )
            await connection.execute("COMMIT")
        return len(events) / (time.perf_counter() - start)


async def raw_postgres(url: str, events: list[dict]) -> float:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        start = time.perf_counter()
        for n, event in enumerate(events):
            session = event["data"]["object"]
            membership = int(session["metadata"]["membership_id"])
            async with connection.transaction():
                await connection.execute(
                    "INSERT INTO stripe_event (event_id, type, created, received_at, outcome, payload) "
                    "VALUES ($1, $2, $3, now(), 'applied', '') ON CONFLICT DO NOTHING",
                    event["id"],
                    event["type"],
                    event["created"],
                )
                await connection.execute(
                    "UPDATE membership SET status = 'active', ends_at = now() + interval '1 year' WHERE id = $1",
                    membership,
                )
                await connection.execute(
                    "INSERT INTO payment (receipt_code, member, membership, tier_name, amount_pence, forward_pence, "
                    "currency, method, refunded_pence, stripe_reference, stripe_payment_intent, paid_at) "
                    "SELECT $1, member, id, '', 500, 0, 'gbp', 'stripe', 0, $2, $3, now() FROM membership "
                    "WHERE id = $4",
                    f"R{n:09d}",
                    session["id"],
                    session["payment_intent"],
                    membership,
                )
        return len(events) / (time.perf_counter() - start)
    finally:
        await connection.close()


def line(name: str, rate: float, limit: float, times: list[float] | None = None) -> None:
    latency = (
        f"p50 {statistics.median(times) * 1000:6.2f} ms  p95 {percentile(times, 0.95) * 1000:6.2f} ms"
        if times
        else " " * 31
    )
    print(f"  {name:<26} {rate:9.0f} events/s  {latency}  limit {limit:9.0f}/s  ratio {rate / limit:5.2f}")


async def run(engine: str, url: str, count: int) -> None:
    from lending import db, schema

    schema.configure(url)
    await db.start()
    await db.migrate()
    try:
        raw_events = await seed(count, f"raw{uuid.uuid4().hex[:6]}")
        paid_events = await seed(count, f"app{uuid.uuid4().hex[:6]}")
        twice_events = await seed(count, f"dup{uuid.uuid4().hex[:6]}")
        if engine == "sqlite":
            limit = await raw_sqlite(url.split("sqlite:///", 1)[1], raw_events)
        else:
            limit = await raw_postgres(url, raw_events)
        print(f"{engine}: {count} events per scenario")
        print(f"  {'raw (limit)':<26} {limit:9.0f} events/s")
        rate, times = await app_paid(paid_events)
        line("paid", rate, limit, times)
        rate, times = await app_concurrent(twice_events)
        line("5x concurrent (per event)", rate, limit, times)
    finally:
        await db.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--postgres", default="")
    args = parser.parse_args()
    os.environ.setdefault("PICCOLO_CONF", "lending.piccolo_conf")
    with tempfile.TemporaryDirectory(prefix="lending-bench-") as folder:
        await run("sqlite", f"sqlite:///{folder}/bench.db", args.events)
    if args.postgres:
        from tests.conftest import create_postgres_database, drop_postgres_database

        url, name = await create_postgres_database(args.postgres)
        try:
            await run("postgres", url, args.events)
        finally:
            from lending import schema

            schema.configure(f"sqlite:///{tempfile.gettempdir()}/lending-bench-unused.db")
            await drop_postgres_database(args.postgres, name)


if __name__ == "__main__":
    asyncio.run(main())
