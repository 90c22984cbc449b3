"""Search benchmark: catalogue search through the service (``catalog.list_items``, one page of
50, in process) beside the raw database's own full-text query on the same data (a bare FTS5
``MATCH ... LIMIT 50`` on SQLite, a bare ``tsvector @@ tsquery ... LIMIT 50`` on PostgreSQL),
so the ratio survives a noisy machine.

    .venv/bin/python bench/search.py [--groups 100000] [--queries 200] [--timeout 1500]
    .venv/bin/python bench/search.py --postgres postgresql://postgres@127.0.0.1:5432/test

It loads ``--groups`` item groups (deterministic fake names, descriptions, categories and parts
from word lists; one item each, a tenth with a second copy) into a scratch SQLite file and,
with ``--postgres``, into a scratch database it creates on that server and drops afterwards.
The rows go in with executemany (SQLite) or COPY (PostgreSQL); the search index is then built
in bulk by ``lending.catalog.search.rebuild_index()``. For each kind of query (one word, two
words, a three-letter prefix as typed into a search box, a word with a typo) it prints p50
and p95 over ``--queries`` queries, the limit's p50 and p95, and the ratio of the p50s. For
typos the limit is the bare full-text query for the word that was meant. The whole run stops
after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SEED = 20261124

BRANDS = [
    "Makita",
    "Bosch",
    "DeWalt",
    "Ryobi",
    "Stanley",
    "Einhell",
    "Karcher",
    "Hozelock",
    "Singer",
    "Brother",
    "Epson",
    "Coleman",
    "Vango",
    "Draper",
    "Silverline",
    "Hitachi",
    "Milwaukee",
    "Festool",
    "Husqvarna",
    "Stihl",
    "Flymo",
    "Bissell",
    "Vax",
    "Kenwood",
    "Sage",
    "Panasonic",
    "Yamaha",
    "Fender",
]
ADJECTIVES = [
    "cordless",
    "electric",
    "petrol",
    "folding",
    "heavy",
    "compact",
    "large",
    "small",
    "mini",
    "professional",
    "portable",
    "telescopic",
    "adjustable",
    "rechargeable",
    "wireless",
    "digital",
    "industrial",
    "lightweight",
    "extendable",
    "waterproof",
    "trwm",
    "bach",
    "mawr",
    "trydan",
    "plygu",
    "cludadwy",
]
THINGS = [
    "drill",
    "hammer drill",
    "impact driver",
    "circular saw",
    "jigsaw",
    "mitre saw",
    "sander",
    "belt sander",
    "planer",
    "router",
    "angle grinder",
    "hedge trimmer",
    "strimmer",
    "lawn mower",
    "leaf blower",
    "chainsaw",
    "pressure washer",
    "wheelbarrow",
    "ladder",
    "step ladder",
    "scaffold tower",
    "wallpaper stripper",
    "tile cutter",
    "stud finder",
    "laser level",
    "spirit level",
    "socket set",
    "spanner set",
    "workbench",
    "vice",
    "clamp",
    "sewing machine",
    "overlocker",
    "projector",
    "screen",
    "speaker",
    "amplifier",
    "microphone",
    "keyboard",
    "guitar",
    "ukulele",
    "tent",
    "gazebo",
    "camping stove",
    "sleeping bag",
    "rucksack",
    "cool box",
    "carpet cleaner",
    "steam cleaner",
    "vacuum cleaner",
    "dehumidifier",
    "heater",
    "fan",
    "food processor",
    "stand mixer",
    "bread maker",
    "pasta machine",
    "jam pan",
    "dehydrator",
    "slow cooker",
    "soup maker",
    "juicer",
    "gwnïo",
    "peiriant gwnïo",
    "ysgol",
    "morthwyl",
    "llif",
    "dril",
    "pabell",
    "sgrin",
    "taflunydd",
    "siaradwr",
    "peiriant torri gwair",
    "berfa",
    "rhaw",
    "fforch",
    "cneifiwr",
    "glanhawr carped",
]
WORDS = [
    "with",
    "and",
    "for",
    "the",
    "a",
    "of",
    "in",
    "spare",
    "blades",
    "battery",
    "batteries",
    "charger",
    "case",
    "bag",
    "carry",
    "manual",
    "instructions",
    "guard",
    "dust",
    "extraction",
    "variable",
    "speed",
    "metal",
    "wood",
    "plastic",
    "garden",
    "kitchen",
    "outdoor",
    "indoor",
    "family",
    "party",
    "event",
    "camping",
    "cooking",
    "cleaning",
    "decorating",
    "repair",
    "building",
    "shed",
    "fence",
    "hedge",
    "lawn",
    "patio",
    "wall",
    "floor",
    "carpet",
    "window",
    "door",
    "shelf",
    "cupboard",
    "volts",
    "watts",
    "litres",
    "metres",
    "power",
    "quiet",
    "loud",
    "fast",
    "slow",
    "safe",
    "easy",
    "use",
    "beginners",
    "experts",
    "children",
    "adults",
    "needs",
    "gloves",
    "goggles",
    "ear",
    "defenders",
    "mask",
    "cable",
    "extension",
    "lead",
    "plug",
    "socket",
    "tested",
    "serviced",
    "donated",
    "by",
    "local",
    "community",
    "group",
    "cafe",
    "repair",
    "good",
    "condition",
    "some",
    "wear",
    "scratches",
    "works",
    "well",
    "gyda",
    "ar",
    "gyfer",
    "yr",
    "a'r",
    "i'r",
    "cymuned",
    "gardd",
    "cegin",
    "glanhau",
    "atgyweirio",
    "gwaith",
    "coed",
    "metel",
    "batri",
    "gwefrydd",
    "llawlyfr",
    "bag",
    "cario",
    "diogel",
    "hawdd",
    "plant",
    "oedolion",
    "menig",
    "sbectol",
    "gogls",
    "trydan",
    "pŵer",
    "tawel",
    "cyflym",
    "araf",
    "ŵyn",
    "tŷ",
]
PARTS = [
    "Charger",
    "Battery",
    "Spare battery",
    "Carry case",
    "Manual",
    "Blade",
    "Spare blades",
    "Guard",
    "Dust bag",
    "Extension lead",
    "Remote control",
    "Power cable",
    "Stand",
    "Pegs",
    "Poles",
    "Bag",
    "Lid",
    "Hose",
    "Nozzle",
    "Brush head",
    "Key",
    "Chuck key",
    "Allen key",
    "Sanding sheets",
]
CATEGORIES = {
    "Tools": ["Drills", "Saws", "Sanders", "Hand tools", "Measuring"],
    "Garden": ["Cutting", "Watering", "Digging"],
    "Kitchen": ["Baking", "Preserving", "Small appliances"],
    "Events": ["Sound", "Shelter", "Projection"],
    "Cleaning": ["Carpets", "Floors"],
    "Outdoors": ["Camping", "Cooking"],
    "Crafts": ["Sewing", "Music"],
    "Offer": ["Gardd", "Cegin", "Gwnïo"],
}


def fake_catalogue(groups: int) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Categories (id, name, parent), item groups and items, the same for every engine."""
    rng = random.Random(SEED)
    now = datetime(2026, 11, 24, tzinfo=UTC)
    categories, leaves = [], []
    for parent_name, children in CATEGORIES.items():
        parent_id = len(categories) + 1
        categories.append((parent_id, parent_name, None, len(categories), now))
        for child in children:
            categories.append((len(categories) + 1, child, parent_id, len(categories), now))
            leaves.append(len(categories))
    group_rows, item_rows = [], []
    statuses = ["available"] * 85 + ["on_loan"] * 10 + ["maintenance"] * 2 + ["retired"] * 3
    for group_id in range(1, groups + 1):
        brand = rng.choice(BRANDS)
        name = f"{brand} {rng.choice(ADJECTIVES)} {rng.choice(THINGS)}"
        if rng.random() < 0.5:
            name += f" {brand[:3].upper()}{rng.randrange(100, 1000)}"
        description = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(8, 25))).capitalize() + "."
        parts = json.dumps(rng.sample(PARTS, rng.randrange(0, 4)))
        group_rows.append((group_id, name, description, rng.choice(leaves), "", parts, None, now, now))
        for copy in range(2 if rng.random() < 0.1 else 1):
            code = f"{group_id:07d}{copy}"
            item_rows.append((group_id, code, rng.choice(statuses), "", "good", None, "", None, "", None, now, now))
    return categories, group_rows, item_rows


GROUP_COLUMNS = (
    "id",
    "name",
    "description",
    "category",
    "safety_notes",
    "parts",
    "loan_days",
    "created_at",
    "updated_at",
)
ITEM_COLUMNS = (
    "item_group",
    "code",
    "status",
    "status_reason",
    "condition",
    "replacement_value_pence",
    "donor",
    "site",
    "notes",
    "labelled_at",
    "created_at",
    "updated_at",
)
CATEGORY_COLUMNS = ("id", "name", "parent", "position", "created_at")


def load_sqlite(path: str, categories: list, groups: list, items: list) -> None:
    connection = sqlite3.connect(path)
    with connection:
        for table, columns, rows in (
            ("category", CATEGORY_COLUMNS, categories),
            ("item_group", GROUP_COLUMNS, groups),
            ("item", ITEM_COLUMNS, items),
        ):
            connection.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows
            )
    connection.execute("ANALYZE")
    connection.close()


async def load_postgres(url: str, categories: list, groups: list, items: list) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        for table, columns, rows in (
            ("category", CATEGORY_COLUMNS, categories),
            ("item_group", GROUP_COLUMNS, groups),
            ("item", ITEM_COLUMNS, items),
        ):
            await connection.copy_records_to_table(table, records=rows, columns=list(columns))
        for table in ("category", "item_group", "item"):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    finally:
        await connection.close()


def one_edit(rng: random.Random, word: str) -> str:
    """The word with one typing mistake: two letters swapped, one left out, doubled or wrong."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(["swap", "drop", "double", "wrong"])
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice("aeioulnrst") + word[i + 1 :]


def query_sets(groups: list, count: int, vocabulary: set[str]) -> dict[str, list[tuple[str, str]]]:
    """(query, what the limit searches for) per kind; the same queries for every engine."""
    from lending.catalog.search import words

    rng = random.Random(SEED + 1)
    names = [words(group[1]) for group in rng.sample(groups, count * 4)]
    things = sorted({w for thing in THINGS for w in words(thing) if len(w) >= 5})
    sets: dict[str, list[tuple[str, str]]] = {"one word": [], "two words": [], "prefix (3 letters)": [], "typo": []}
    for name in names[:count]:
        word = rng.choice(name[1:3])
        sets["one word"].append((word, word))
    for name in names[count : 2 * count]:
        pair = " ".join(rng.sample(name[:3], 2))
        sets["two words"].append((pair, pair))
    for name in names[2 * count : 3 * count]:
        word = rng.choice([w for w in name if len(w) >= 4] or name)
        sets["prefix (3 letters)"].append((word[:3], word[:3]))
    while len(sets["typo"]) < count:
        meant = rng.choice(things)
        typed = one_edit(rng, meant)
        if typed not in vocabulary and len(typed) >= 4:
            sets["typo"].append((typed, meant))
    return sets


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


async def timed(queries: list[str], run: Callable[[str], Awaitable[object]]) -> list[float]:
    for query in queries[:10]:  # warm up
        await run(query)
    samples = []
    for query in queries:
        start = time.perf_counter()
        await run(query)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(label: str, ours: list[float], limit: list[float], page: list[float] | None = None, note: str = "") -> None:
    p50, p95 = percentiles(ours)
    l50, l95 = percentiles(limit)
    page50 = f"{percentiles(page)[0]:8.2f}" if page else f"{'-':>8}"
    ratio = p50 / l50 if l50 else float("inf")
    print(f"  {label:<32} {p50:8.2f} {p95:8.2f}   {page50}   {l50:8.3f} {l95:8.3f}   {ratio:7.0f}x  {note}")


async def measure(engine_name: str, url: str, groups: int, count: int, raw_url: str) -> None:
    from lending import db, schema
    from lending.catalog import search
    from lending.catalog import services as catalog

    started = time.perf_counter()
    categories, group_rows, item_rows = fake_catalogue(groups)
    schema.configure(url)
    await db.start()
    try:
        await db.migrate()
        if engine_name == "sqlite":
            load_sqlite(raw_url, categories, group_rows, item_rows)
        else:
            await load_postgres(raw_url, categories, group_rows, item_rows)
        loaded = time.perf_counter()
        indexed = await search.rebuild_index()
        built = time.perf_counter()
        if engine_name == "postgres":
            await db.engine().run_ddl("ANALYZE")
        vocabulary = {row["word"] for row in await db.engine().run_ddl("SELECT word FROM search_word")}
        variants = (await db.engine().run_ddl("SELECT count(*) AS n FROM search_word_variant"))[0]["n"]
        print(
            f"\n{engine_name}: {groups:,} item groups, {len(item_rows):,} items loaded in "
            f"{loaded - started:.1f} s; index of {indexed:,} groups built in {built - loaded:.1f} s "
            f"({len(vocabulary):,} words, {variants:,} spelling variants)"
        )
        sets = query_sets(group_rows, count, vocabulary)
        reference = await raw_reference(engine_name, raw_url)
        print(
            f"  {'ms, ' + str(count) + ' queries each':<32} {'p50':>8} {'p95':>8}   {'raw page':>8}   "
            f"{'limit50':>8} {'limit95':>8}   {'ratio':>8}"
        )
        try:
            found: dict[str, bool] = {}

            async def service(query: str) -> None:
                items, _ = await catalog.list_items(query=query, limit=50)
                found[query] = bool(items)

            def expressions(queries: list[str]) -> list[str]:
                return [search.match_expression([search.fold(t) for t in search.query_terms(q)]) for q in queries]

            for kind, pairs in sets.items():
                ours = await timed([typed for typed, _ in pairs], service)
                misses = sum(not found[typed] for typed, _ in pairs)
                meant = expressions([m for _, m in pairs])
                report(
                    f"list_items: {kind}",
                    ours,
                    await timed(meant, reference.run),
                    await timed(meant, reference.page),
                    f"({misses} of {len(pairs)} found nothing)" if misses else "",
                )
            one_word = expressions([typed for typed, _ in sets["one word"]])
            limit = await timed(one_word, reference.run)
            category = next(c[0] for c in categories if c[2] is not None)

            async def filtered(query: str) -> None:
                await catalog.list_items(query=query, limit=50, available=True, category_id=category)

            report(
                "list_items: one word, filtered",
                await timed([t for t, _ in sets["one word"]], filtered),
                limit,
                note="(available now, in one category)",
            )
            report(
                "list_items: no query (browse)",
                await timed([""] * count, service),
                limit,
                note="(ratio to the one-word limit)",
            )
            report(
                "list_items: browse, filtered",
                await timed([""] * count, filtered),
                limit,
                note="(available now, in one category; ratio to the one-word limit)",
            )
            report(
                "search.correction (typo)",
                await timed([t for t, _ in sets["typo"]], search.correction),
                limit,
                note="(ratio to the one-word limit)",
            )
        finally:
            await reference.close()
    finally:
        await db.stop()


class RawReference:
    def __init__(
        self,
        run: Callable[[str], Awaitable[object]],
        page: Callable[[str], Awaitable[object]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.run, self.page, self.close = run, page, close


async def raw_reference(engine_name: str, raw_url: str) -> RawReference:
    """On one open connection: the database's own full-text query (the limit), and the page
    the service builds (matching items not retired, in name order, 51 rows) in bare SQL."""
    page = (
        "SELECT i.id, i.code, g.name FROM item i JOIN item_group g ON g.id = i.item_group "
        "WHERE i.status != 'retired' AND {} ORDER BY g.name, i.id LIMIT 51"
    )
    if engine_name == "sqlite":
        connection = sqlite3.connect(raw_url)
        limit_sql = "SELECT rowid FROM item_group_search WHERE item_group_search MATCH ? LIMIT 50"
        page_sql = page.format("i.item_group IN (SELECT rowid FROM item_group_search WHERE item_group_search MATCH ?)")

        async def run_sqlite(expression: str) -> None:
            connection.execute(limit_sql, (expression,)).fetchall()

        async def page_sqlite(expression: str) -> None:
            connection.execute(page_sql, (expression,)).fetchall()

        async def close_sqlite() -> None:
            connection.close()

        return RawReference(run_sqlite, page_sqlite, close_sqlite)
    import asyncpg

    pg = await asyncpg.connect(raw_url)
    limit_statement = await pg.prepare(
        "SELECT item_group FROM item_group_search WHERE document @@ $1::tsquery LIMIT 50"
    )
    page_statement = await pg.prepare(
        page.format("i.item_group = ANY(ARRAY(SELECT item_group FROM item_group_search WHERE document @@ $1::tsquery))")
    )

    async def run_postgres(expression: str) -> None:
        await limit_statement.fetch(expression)

    async def page_postgres(expression: str) -> None:
        await page_statement.fetch(expression)

    return RawReference(run_postgres, page_postgres, pg.close)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL; a scratch database is made there")
    parser.add_argument("--timeout", type=int, default=1500, help="stop the whole run after this many seconds")
    args = parser.parse_args()

    def out_of_time(*_: object) -> None:
        raise SystemExit(f"bench/search.py: stopped after {args.timeout} s (--timeout)")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.timeout)
    os.environ.setdefault("PICCOLO_CONF", "lending.piccolo_conf")
    with tempfile.TemporaryDirectory(prefix="lending-search-bench-") as folder:
        path = str(Path(folder) / "bench.db")
        await measure("sqlite", f"sqlite:///{path}", args.groups, args.queries, path)
    if args.postgres:
        import asyncpg

        name = f"lending_bench_{uuid.uuid4().hex[:10]}"
        server = await asyncpg.connect(args.postgres)
        try:
            await server.execute(f'CREATE DATABASE "{name}"')
        finally:
            await server.close()
        url = f"{args.postgres.rsplit('/', 1)[0]}/{name}"
        try:
            await measure("postgres", url, args.groups, args.queries, url)
        finally:
            from lending import schema

            schema.configure(f"sqlite:///{tempfile.gettempdir()}/lending-search-bench-unused.db")
            server = await asyncpg.connect(args.postgres)
            try:
                await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await server.close()


if __name__ == "__main__":
    asyncio.run(main())
