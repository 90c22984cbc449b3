"""Scenario S3 over HTTP against a real ``lending run`` server: check-out/check-in pairs from
``--clients`` concurrent API clients (one volunteer token, made with ``lending token create``)
on ``--hot`` popular items, while a monitor on its own database connection polls every
``--poll-ms`` milliseconds for double loans (two open loans of one item).

Each client has its own member and its own keep-alive connection and loops: ``POST
/api/v1/loans {"item_code", "member_id"}`` on a random popular item; on 201, ``POST
/api/v1/loans/{id}/return``; on 409 (the item is out) it counts the refusal and tries another.
Afterwards the whole loan history is checked for two loans of one item whose recorded times
overlap. Both counts must be 0: the step exits with status 3 otherwise.

    .venv/bin/python bench/http_loans.py [--engine sqlite|postgres --postgres URL] [--seconds 30]

The limit is L5, the bare pair on one persistent connection (bench/limits.py).
"""

from __future__ import annotations

import asyncio
import collections
import random
import sqlite3
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

DOUBLES = "SELECT item, count(*) AS n FROM loan WHERE returned_at IS NULL GROUP BY item HAVING count(*) > 1"
OPEN = "SELECT count(*) FROM loan WHERE returned_at IS NULL"
OVERLAPS = (
    "SELECT count(*) FROM loan a JOIN loan b ON a.item = b.item AND a.id < b.id "
    "AND b.lent_at < coalesce(a.returned_at, b.lent_at) AND a.lent_at < coalesce(b.returned_at, a.lent_at)"
)
INDEX = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'loan_one_open'",
    "postgres": "SELECT count(*) FROM pg_indexes WHERE indexname = 'loan_one_open'",
}


async def seed(database: common.Database, members: int, hot: int, cold: int) -> tuple[list[int], list[str]]:
    """A cold catalogue (raw SQL), then members with active memberships and the popular items
    through the services (bench/lending.py's seed)."""
    from bench.lending import seed as seed_lending

    async with common.app_database(database.url):
        if cold:
            await common.load_catalogue(database, common.groups_for(cold))
        member_ids, codes, _ = await seed_lending("s3", members, hot)
    return member_ids, codes


class Monitor:
    """A separate connection polling for double loans every ``interval`` seconds, in a thread
    of its own so the load generator's event loop does not delay it."""

    def __init__(self, database: common.Database, interval: float) -> None:
        self.database, self.interval = database, interval
        self.snapshots = self.doubles = self.max_open = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        if self.error:
            raise SystemExit(f"monitor failed: {self.error!r}")

    def _run(self) -> None:
        try:
            if self.database.engine == "sqlite":
                connection = sqlite3.connect(self.database.raw, timeout=30)
                try:
                    while not self.stop.is_set():
                        self._count(connection.execute(DOUBLES).fetchall(), connection.execute(OPEN).fetchone()[0])
                        time.sleep(self.interval)
                finally:
                    connection.close()
            else:
                asyncio.run(self._postgres())
        except BaseException as exc:  # reported by __exit__
            self.error = exc

    async def _postgres(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(self.database.raw)
        try:
            while not self.stop.is_set():
                self._count(await connection.fetch(DOUBLES), await connection.fetchval(OPEN))
                await asyncio.sleep(self.interval)
        finally:
            await connection.close()

    def _count(self, rows: list, open_loans: int) -> None:
        self.snapshots += 1
        self.doubles += len(rows)
        self.max_open = max(self.max_open, open_loans)


async def final_checks(database: common.Database) -> tuple[int, int, bool]:
    """(loans whose times overlap, loans left open, the partial unique index is there)."""
    if database.engine == "sqlite":
        connection = sqlite3.connect(database.raw, timeout=30)
        try:
            return (
                connection.execute(OVERLAPS).fetchone()[0],
                connection.execute(OPEN).fetchone()[0],
                bool(connection.execute(INDEX["sqlite"]).fetchone()[0]),
            )
        finally:
            connection.close()
    import asyncpg

    connection = await asyncpg.connect(database.raw)
    try:
        return (
            await connection.fetchval(OVERLAPS),
            await connection.fetchval(OPEN),
            bool(await connection.fetchval(INDEX["postgres"])),
        )
    finally:
        await connection.close()


async def pairs_over_http(base: str, token: str, members: list[int], codes: list[str], seconds: float) -> dict:
    done: list[float] = []
    refused = 0
    unexpected: collections.Counter[str] = collections.Counter()
    samples: list[str] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal refused
        rng = random.Random(n)
        http = common.Http(base, headers={"Authorization": f"Bearer {token}"})
        try:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                reply = await http.post(
                    "/api/v1/loans", json_body={"item_code": rng.choice(codes), "member_id": members[n]}
                )
                if reply.status == 409:
                    refused += 1
                    continue
                if reply.status != 201:
                    unexpected[f"check-out {reply.status}"] += 1
                    if len(samples) < 3:
                        samples.append(reply.body[:300].decode(errors="replace"))
                    continue
                loan = reply.json()["id"]
                reply = await http.post(f"/api/v1/loans/{loan}/return", json_body={})
                if reply.status != 200:
                    unexpected[f"check-in {reply.status}"] += 1
                    if len(samples) < 3:
                        samples.append(reply.body[:300].decode(errors="replace"))
                    continue
                done.append(time.perf_counter() - began)
        finally:
            await http.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(len(members))))
    elapsed = time.perf_counter() - start
    return {
        "pairs": len(done),
        "elapsed": elapsed,
        "times": done,
        "refused": refused,
        "unexpected": unexpected,
        "samples": samples,
    }


def main() -> None:
    parser = common.step_parser(__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--hot", type=int, default=20, help="popular items the clients share")
    parser.add_argument("--cold", type=int, default=1000, help="other items in the catalogue")
    parser.add_argument("--poll-ms", type=float, default=5)
    parser.set_defaults(seconds=30)
    args = parser.parse_args()
    common.start_step(args)
    results = common.Results(args.results)

    with common.work_folder("loans") as folder, common.scratch_database(args.engine, folder, args.postgres) as database:
        engine = database.label
        members, codes = asyncio.run(seed(database, args.clients, args.hot, args.cold))
        token = common.volunteer_token(database, folder)
        with common.app_server(database, folder, args.workers) as server:
            with Monitor(database, args.poll_ms / 1000) as monitor:
                outcome = asyncio.run(pairs_over_http(server.base, token, members, codes, args.seconds))
        overlaps, left_open, indexed = asyncio.run(final_checks(database))

    times = outcome["times"]
    rate = outcome["pairs"] / outcome["elapsed"] if outcome["elapsed"] else 0.0
    unexpected = sum(outcome["unexpected"].values())
    scenario = "S3 check-out/in"
    figure = f"pairs over HTTP, {args.clients} clients on {args.hot} items"
    results.figure(
        scenario,
        engine,
        figure,
        rate,
        "pairs/s",
        key="L5",
        detail=f"p50 {common.median(times) * 1000:.0f} ms, p95 {common.percentile(times, 0.95) * 1000:.0f}"
        f" ms; {outcome['pairs']:,} pairs, {outcome['refused']:,} refused (409)",
    )
    results.figure(
        scenario,
        engine,
        "double loans seen by the monitor",
        monitor.doubles,
        "",
        better="zero",
        limit_label="must be 0",
        limit_value=0,
        gate="fail",
        detail=f"{monitor.snapshots:,} snapshots every {args.poll_ms:g} ms, at most {monitor.max_open} "
        f"open at once; index loan_one_open {'present' if indexed else 'MISSING'}",
    )
    results.figure(
        scenario,
        engine,
        "loans whose recorded times overlap",
        overlaps,
        "",
        better="zero",
        limit_label="must be 0",
        limit_value=0,
        gate="fail",
        detail=f"{left_open} left open",
    )
    results.figure(
        scenario,
        engine,
        "unexpected responses (not 201/409/200)",
        unexpected,
        "",
        better="zero",
        limit_label="0",
        limit_value=0,
        detail=", ".join(f"{k}: {v}" for k, v in outcome["unexpected"].items()) or "none",
    )
    for sample in outcome["samples"]:
        common.say(f"    e.g. {sample}")
    if monitor.doubles or overlaps:
        common.say(f"FAIL: {monitor.doubles} double loans, {overlaps} loans whose times overlap")
        sys.exit(3)


if __name__ == "__main__":
    main()
