"""Scenario S7 over HTTP against a real ``lending run`` server: a mixed load for
``--mixed-seconds`` (5 minutes by default) at ``--load`` (half) of the capacity measured just
before, with the error rate, latency drift and the server's memory growth.

The catalogue is bench/search.py's fake one at ``--items`` items with its search index. Each
action is one of (weights in brackets):

  * browse [30]: a catalogue page (``/items`` and the "Next page" links, as the app gives them);
  * item [25]: an item page by code (``/i/{code}``);
  * search [20]: ``/items?q=`` with bench/search.py's queries (word, two words, prefix, typo);
  * api [5]: ``/api/v1/items/{code}``;
  * loan [12]: a check-out and check-in pair through the API (volunteer token) on one of 20
    popular items (409 when it is out is an answer, not an error);
  * sign-in [3]: a new browser: ``GET /login``, ``POST /login`` (CSRF token,
    password), ``GET /account``, ``POST /logout``. The server trusts X-Forwarded-For from
    loopback here (TRUSTED_PROXIES=127.0.0.1) and each sign-in comes from its own made-up
    address, as members' phones would, so the per-address sign-in limit is not what is measured.

First a calibration: ``--clients`` closed-loop clients for ``--calibrate-seconds``: capacity
in requests/s (beside L1). Then actions arrive at random (Poisson) at ``--load`` x the
calibrated action rate, at most ``--max-in-flight`` at once (more are counted as dropped).
Figures: requests/s achieved, the error rate (any unexpected status, timeout or connection
error), p95 latency of the last window beside the first (a minute, or a fifth of a short run),
the server's resident memory (VmRSS summed over its processes, from /proc) after calibration
and at the end, and double loans seen by a monitor on its own connection (must be 0: exit 3).

    .venv/bin/python bench/mixed.py [--engine sqlite|postgres --postgres URL] [--mixed-seconds 300]
"""

from __future__ import annotations

import asyncio
import collections
import random
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.http_loans import Monitor

WEIGHTS = {"browse": 30, "item": 25, "search": 20, "api": 5, "loan": 12, "sign-in": 3}
READERS = 10  # members who sign in with a password


@dataclass
class World:
    base: str
    token: str
    pages: list[str]
    codes: list[str]
    queries: list[str]
    hot: list[str]
    members: list[int]
    readers: list[str]


@dataclass
class Tally:
    records: list[tuple[float, str, float, bool]] = field(default_factory=list)  # sent, kind, seconds, ok
    errors: collections.Counter = field(default_factory=collections.Counter)
    refused: int = 0
    actions: int = 0
    samples: list[str] = field(default_factory=list)

    def note(self, sent: float, kind: str, ok: bool, detail: str = "") -> None:
        self.records.append((sent, kind, time.perf_counter() - sent, ok))
        if not ok:
            self.errors[f"{kind} {detail}"] += 1
            if len(self.samples) < 5:
                self.samples.append(f"{kind} {detail}")


async def seed(
    database: common.Database, items: int
) -> tuple[common.Catalogue, list[str], list[int], list[str], list[str]]:
    from bench.lending import seed as seed_lending
    from bench.search import query_sets
    from lending import db
    from lending.members import services as members

    async with common.app_database(database.url):
        catalogue = await common.load_catalogue(database, common.groups_for(items), index=True)
        vocabulary = {row["word"] for row in await db.engine().run_ddl("SELECT word FROM search_word")}
        count = max(10, min(100, len(catalogue.groups) // 4))
        queries = [typed for pairs in query_sets(catalogue.groups, count, vocabulary).values() for typed, _ in pairs]
        member_ids, hot, _ = await seed_lending("s7", 20, 20)
        readers = []
        for n in range(READERS):
            email = f"reader{n}@bench.example"
            await members.create_account(name=f"Reader {n}", email=email, role="member", password=common.PASSWORD)
            readers.append(email)
    return catalogue, queries, member_ids, hot, readers


class Pool:
    """Keep-alive connections shared by the actions."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.free: list[common.Http] = []

    async def request(self, method: str, path: str, **kwargs) -> common.Reply:
        http = self.free.pop() if self.free else common.Http(self.base)
        try:
            reply = await http.request(method, path, **kwargs)
        except BaseException:
            await http.close()
            raise
        self.free.append(http)
        return reply

    async def close(self) -> None:
        for http in self.free:
            await http.close()


class Actions:
    def __init__(self, world: World, tally: Tally, rng: random.Random) -> None:
        self.world, self.tally, self.rng = world, tally, rng
        self.pool = Pool(world.base)
        self.auth = {"Authorization": f"Bearer {world.token}"}
        self.addresses = 0

    async def one(self) -> None:
        kind = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        self.tally.actions += 1
        try:
            await getattr(self, kind.replace("-", "_"))()
        except Exception as exc:  # a timeout, a dropped connection, a body that is not what it should be
            self.tally.note(time.perf_counter(), kind, False, type(exc).__name__)

    async def get(self, kind: str, path: str, expected: int = 200, **kwargs) -> common.Reply:
        sent = time.perf_counter()
        reply = await self.pool.request("GET", path, timeout=30, **kwargs)
        self.tally.note(sent, kind, reply.status == expected, str(reply.status))
        return reply

    async def browse(self) -> None:
        await self.get("browse", self.rng.choice(self.world.pages))

    async def item(self) -> None:
        await self.get("item", f"/i/{self.rng.choice(self.world.codes)}")

    async def search(self) -> None:
        await self.get("search", f"/items?q={urllib.parse.quote_plus(self.rng.choice(self.world.queries))}")

    async def api(self) -> None:
        await self.get("api", f"/api/v1/items/{self.rng.choice(self.world.codes)}")

    async def loan(self) -> None:
        sent = time.perf_counter()
        reply = await self.pool.request(
            "POST",
            "/api/v1/loans",
            headers=self.auth,
            timeout=30,
            json_body={"item_code": self.rng.choice(self.world.hot), "member_id": self.rng.choice(self.world.members)},
        )
        if reply.status == 409:
            self.tally.refused += 1
            self.tally.note(sent, "loan", True)
            return
        self.tally.note(sent, "loan", reply.status == 201, f"check-out {reply.status}")
        if reply.status != 201:
            return
        sent = time.perf_counter()
        reply = await self.pool.request(
            "POST", f"/api/v1/loans/{reply.json()['id']}/return", headers=self.auth, timeout=30, json_body={}
        )
        self.tally.note(sent, "loan", reply.status == 200, f"check-in {reply.status}")

    async def sign_in(self) -> None:
        self.addresses += 1
        address = f"10.{(self.addresses >> 16) & 255}.{(self.addresses >> 8) & 255}.{self.addresses & 255}"
        browser = common.Http(self.world.base, cookies=True, headers={"X-Forwarded-For": address})
        try:
            steps = [
                ("GET", "/login", None, 200),
                ("POST", "/login", "form", 303),
                ("GET", "/account", None, 200),
                ("POST", "/logout", "csrf", 303),
            ]
            for method, path, body, expected in steps:
                sent = time.perf_counter()
                form = None
                if body == "form":
                    form = {
                        "email": self.rng.choice(self.world.readers),
                        "password": common.PASSWORD,
                        "_csrf_token": (browser.jar or {}).get("lending_csrf", ""),
                    }
                elif body == "csrf":
                    form = {"_csrf_token": (browser.jar or {}).get("lending_csrf", "")}
                reply = await browser.request(method, path, form=form, timeout=30)
                ok = reply.status == expected
                self.tally.note(sent, "sign-in", ok, f"{method} {path} {reply.status}")
                if not ok:
                    return
        finally:
            await browser.close()


async def closed_loop(world: World, clients: int, seconds: float) -> tuple[float, float]:
    """Capacity: (requests/s, actions/s) with ``clients`` clients and no pause."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        actions = Actions(world, tally, random.Random(n))
        try:
            while time.perf_counter() < deadline:
                await actions.one()
        finally:
            await actions.pool.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - start
    return len(tally.records) / elapsed, tally.actions / elapsed


async def open_loop(
    world: World, server: common.Server, rate: float, seconds: float, max_in_flight: int, rss: list[tuple[float, int]]
) -> tuple[Tally, float, int]:
    """Actions arriving at random at ``rate`` per second; (tally, elapsed, dropped)."""
    tally = Tally()
    rng = random.Random(7)
    actions = Actions(world, tally, rng)
    in_flight: set[asyncio.Task] = set()
    dropped = 0
    start = time.perf_counter()
    end = start + seconds
    arrival, last_rss = start, 0.0
    while True:
        arrival += rng.expovariate(rate)
        if arrival >= end:
            break
        now = time.perf_counter()
        if arrival > now:
            await asyncio.sleep(arrival - now)
        if now - last_rss >= 5:
            rss.append((now - start, server.rss_kib()))
            last_rss = now
        if len(in_flight) >= max_in_flight:
            dropped += 1
            continue
        task = asyncio.create_task(actions.one())
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(set(in_flight), timeout=60)
    elapsed = time.perf_counter() - start
    await actions.pool.close()
    return tally, elapsed, dropped


def window_p95(records: list[tuple[float, str, float, bool]], start: float, end: float) -> tuple[float, int]:
    chosen = [seconds * 1000 for sent, _kind, seconds, _ok in records if start <= sent < end]
    return common.percentile(chosen, 0.95), len(chosen)


def main() -> None:
    parser = common.step_parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--mixed-seconds", type=float, default=300)
    parser.add_argument("--calibrate-seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16, help="closed-loop clients for the calibration")
    parser.add_argument("--load", type=float, default=0.5, help="share of the calibrated capacity to offer")
    parser.add_argument("--max-in-flight", type=int, default=64)
    args = parser.parse_args()
    common.start_step(args)
    results = common.Results(args.results)

    with common.work_folder("mixed") as folder, common.scratch_database(args.engine, folder, args.postgres) as database:
        engine = database.label
        catalogue, queries, members, hot, readers = asyncio.run(seed(database, args.items))
        token = common.volunteer_token(database, folder)
        with common.app_server(database, folder, args.workers, TRUSTED_PROXIES="127.0.0.1") as server:
            rss_cold = server.rss_kib()
            pages = asyncio.run(common.catalogue_pages(server.base, 30))
            world = World(server.base, token, pages, catalogue.codes, queries, hot, members, readers)
            with Monitor(database, 0.005) as monitor:
                capacity, action_rate = asyncio.run(closed_loop(world, args.clients, args.calibrate_seconds))
                rate = max(1.0, action_rate * args.load)
                common.say(
                    f"{engine}: capacity {capacity:,.0f} req/s ({action_rate:,.1f} actions/s) with "
                    f"{args.clients} clients; offering {rate:,.1f} actions/s for {args.mixed_seconds:g} s"
                )
                rss_start = server.rss_kib()
                samples: list[tuple[float, int]] = [(0.0, rss_start)]
                tally, elapsed, dropped = asyncio.run(
                    open_loop(world, server, rate, args.mixed_seconds, args.max_in_flight, samples)
                )
                rss_end = server.rss_kib()

    scenario = f"S7 mixed {args.mixed_seconds:g} s"
    records = tally.records
    requests = len(records)
    failed = sum(1 for *_, ok in records if not ok)
    first_start = min((sent for sent, *_ in records), default=0.0)
    window = min(60.0, elapsed / 5)
    first, first_n = window_p95(records, first_start, first_start + window)
    last, last_n = window_p95(records, first_start + elapsed - window, first_start + elapsed)
    kinds = collections.Counter(kind for _s, kind, _t, _ok in records)
    results.figure(
        scenario,
        engine,
        f"capacity, {args.clients} closed-loop clients",
        capacity,
        "req/s",
        key="L1",
        detail=f"{action_rate:,.1f} actions/s; mix {', '.join(f'{k} {v}' for k, v in WEIGHTS.items())}",
    )
    results.figure(
        scenario,
        engine,
        f"offered {args.load:.0%} of capacity: requests answered",
        requests / elapsed,
        "req/s",
        key="L1",
        detail=f"{tally.actions:,} actions, {requests:,} requests, {dropped} dropped "
        f"(over {args.max_in_flight} in flight); " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
    )
    results.figure(
        scenario,
        engine,
        "error rate",
        100 * failed / requests if requests else 0.0,
        "%",
        better="zero",
        limit_label="0",
        limit_value=0,
        detail=(f"{failed} of {requests:,}: " + ", ".join(f"{k}: {v}" for k, v in tally.errors.items()))
        if failed
        else f"0 of {requests:,}; {tally.refused} check-outs refused (409, item out)",
    )
    results.figure(
        scenario,
        engine,
        f"p95 latency, last {window:.0f} s",
        last,
        "ms",
        better="lower",
        limit_label=f"p95 of the first {window:.0f} s",
        limit_value=first,
        detail=f"{last_n:,} and {first_n:,} requests; all: p50 "
        f"{common.median([r[2] for r in records]) * 1000:.1f} ms, p95 "
        f"{common.percentile([r[2] for r in records], 0.95) * 1000:.1f} ms",
    )
    growth = 100 * (rss_end - rss_start) / rss_start if rss_start else 0.0
    results.figure(
        scenario,
        engine,
        "server memory growth (RSS, all processes)",
        growth,
        "%",
        better="max",
        limit_label="at most 10 % (performance.md S7)",
        limit_value=10,
        detail=f"{rss_start / 1024:,.1f} MiB after calibration (cold {rss_cold / 1024:,.1f}), "
        f"{rss_end / 1024:,.1f} MiB at the end; peak {max(k for _, k in samples) / 1024:,.1f} MiB",
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
        detail=f"{monitor.snapshots:,} snapshots every 5 ms",
    )
    for sample in tally.samples:
        common.say(f"    e.g. {sample}")
    if monitor.doubles:
        common.say(f"FAIL: {monitor.doubles} double loans")
        sys.exit(3)


if __name__ == "__main__":
    main()
