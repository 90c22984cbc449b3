"""Setup-file and backup benchmark: the venue setup file with its catalogue
(``workflows.setup_file.export_text(include_catalogue=True)``, ``check_text``, ``import_text``, in
process) and ``lending backup FILE`` (the CLI, as a subprocess), each beside a reference limit
measured in the same run on the same data, so the ratio survives a noisy machine.

    .venv/bin/python bench/setup_file.py [--things 10000] [--repeat 3] [--timeout 900]
    .venv/bin/python bench/setup_file.py --postgres postgresql://postgres@127.0.0.1:5432/test

A venue is set up through the services (details, weekly hours, three sites, one with hours of
its own, three membership tiers, the category tree of bench/search.py with two loan periods),
then ``--things`` item groups (bench/search.py's deterministic fake catalogue: names,
descriptions, parts, one copy each and a tenth with two; here also some safety notes and loan
periods) go in with raw SQL, and the search index is built with ``search.rebuild_index()``.
This runs on a scratch SQLite file and, with ``--postgres``, on a scratch database created on
that server (loopback only) and dropped afterwards. Then:

* export: ``export_text(include_catalogue=True)``; limit: a bare SELECT of the item_group
  columns the file holds, and ``json.dumps`` of those rows (same options as the file), on one
  persistent connection.
* check only: ``check_text`` of the exported text; limit: ``json.loads`` of the same text.
* import: ``import_text`` into a second, freshly migrated scratch database; limit: a bare
  executemany INSERT of the same item_group rows (as the import writes them) in one
  transaction on one persistent connection, into a third freshly migrated database holding
  the same categories. One run each (an import needs an empty database).
* round trip: the second database exported again; the bytes must be identical (OK/DIFFERENT;
  DIFFERENT makes the exit status 1).
* backup: ``.venv/bin/lending backup FILE`` of the first database; limit: Python's sqlite3
  ``Connection.backup()`` of the same file alone (SQLite) or a bare ``pg_dump
  --format=custom`` of the same database (PostgreSQL). ``lending --help`` is timed too: the
  part of a CLI run that is only starting Python and importing the app.

Times are medians of ``--repeat`` runs (except import). The ratio is the limit's time divided
by ours (ours as a share of the limit's speed; 1.00 would be as fast as the limit). The whole
run stops after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.common import app_database as started  # noqa: E402
from bench.search import fake_catalogue, load_postgres, load_sqlite  # noqa: E402

LENDING_CLI = ROOT / ".venv" / "bin" / "lending"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The columns of item_group the setup file holds, for the limits.
FILE_COLUMNS = ("name", "description", "category", "safety_notes", "parts", "loan_days", "wanted")
INSERT_COLUMNS = (*FILE_COLUMNS, "created_at", "updated_at")
SAFETY_NOTES = [
    "Wear eye protection and gloves. Unplug before changing the blade.",
    "Two people to lift. Check the cable for damage before use.",
    "Gwisgwch fenig. Not for children under 14.",
]


@dataclass(frozen=True)
class Scratch:
    url: str  # for lending.db and the CLI
    raw: str  # a file path (SQLite) or an asyncpg URL (PostgreSQL)


@dataclass
class Figure:
    label: str
    seconds: float
    limit_label: str
    limit_seconds: float
    count: int | None = None  # things per second shown when given
    note: str = ""


def median_time(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


async def median_time_async(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


# --- the venue ----------------------------------------------------------------------------------


async def set_up_venue(categories: list[tuple]) -> dict[int, int]:
    """A venue set up through the services; {fake category id: its id in the database}."""
    from lending.catalog import services as catalog
    from lending.memberships import tiers
    from lending.memberships.tiers import TierInput
    from lending.venues import rules
    from lending.venues import services as venues

    await venues.save_details(
        details=rules.VenueDetails(
            name="Llyfrgell Pethau Aberystwyth",
            timezone="Europe/London",
            currency="gbp",
            email="helo@pethau.example",
            phone="01970 612345",
            address="Canolfan y Dref, Stryd y Bont, Aberystwyth",
            website="https://pethau.example",
            languages=("cy", "en"),
            label_template="L7160",
        )
    )
    await venues.set_hours(hours={1: "10:00-13:00, 14:00-17:00", 3: "16:00-19:00", 5: "10:00-14:00"})
    for name, address, hours in (
        ("Canolfan y Dref", "Stryd y Bont", None),
        ("Sied yr ardd gymunedol", "Parc Natur Penglais", {5: "10:00-12:00"}),
        ("Caffi Trwsio", "Neuadd yr Eglwys", None),
    ):
        site = await catalog.create_site(name=name, address=address)
        if hours:
            await venues.set_hours(hours=hours, site_id=site.id)
    for position, tier in enumerate(
        (
            TierInput(
                name="Talu beth allwch chi / Pay what you can",
                description="A year of borrowing.",
                suggested=[0, 500, 1000, 2000],
                min_pence=0,
                max_pence=10000,
                allow_free=True,
                interval="one_off",
                loan_limit=3,
                loan_days=7,
            ),
            TierInput(
                name="Supporter",
                description="Helps keep the library open.",
                suggested=[300, 500],
                min_pence=300,
                max_pence=5000,
                interval="month",
                gift_aid=True,
                loan_limit=5,
                loan_days=14,
            ),
            TierInput(
                name="Community group",
                suggested=[2500],
                min_pence=2500,
                max_pence=25000,
                interval="year",
                offer_pay_forward=False,
                loan_limit=10,
                loan_days=14,
                public=False,
            ),
        )
    ):
        await tiers.save_tier(values=replace(tier, position=position))
    ids: dict[int, int] = {}
    for fake_id, name, parent, *_ in categories:
        ids[fake_id] = (await catalog.create_category(name=name, parent_id=ids.get(parent))).id
    by_name = {name: ids[fake_id] for fake_id, name, *_ in categories}
    await catalog.set_category_loan_days(periods={by_name["Events"]: 3, by_name["Drills"]: 2})
    return ids


def realistic(groups: list[tuple], category_ids: dict[int, int]) -> list[tuple]:
    """bench/search.py's rows with the real category ids, some safety notes and loan periods."""
    out = []
    for row in groups:
        group_id, name, description, category, _, parts, _, created, updated = row
        notes = SAFETY_NOTES[group_id % 3] if group_id % 7 == 0 else ""
        loan_days = 14 if group_id % 13 == 0 else None
        out.append((group_id, name, description, category_ids[category], notes, parts, loan_days, created, updated))
    return out


# --- the limits ---------------------------------------------------------------------------------


class Raw:
    """One persistent connection for the bare SQL of the limits."""

    def __init__(self, engine_name: str, raw: str) -> None:
        self.engine_name, self.raw = engine_name, raw
        self.sqlite: sqlite3.Connection | None = None
        self.pg = None

    async def __aenter__(self) -> Raw:
        if self.engine_name == "sqlite":
            self.sqlite = sqlite3.connect(self.raw, isolation_level=None)
        else:
            import asyncpg

            self.pg = await asyncpg.connect(self.raw)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        if self.pg is not None:
            await self.pg.close()

    async def fetch(self, sql: str) -> list[dict]:
        if self.sqlite is not None:
            cursor = self.sqlite.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]
        return [dict(row) for row in await self.pg.fetch(sql)]

    async def insert_many(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        """All the rows in one transaction."""
        names = ", ".join(columns)
        if self.sqlite is not None:
            self.sqlite.execute("BEGIN IMMEDIATE")
            self.sqlite.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)
            self.sqlite.execute("COMMIT")
            return
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        async with self.pg.transaction():
            await self.pg.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


async def export_limit(raw: Raw) -> str:
    rows = await raw.fetch(f"SELECT {', '.join(FILE_COLUMNS)} FROM item_group")
    return json.dumps(rows, ensure_ascii=False, indent=2)


def import_rows(document: dict, category_ids: dict[tuple[str, ...], int]) -> list[tuple]:
    """The item_group rows the import writes for the file's catalogue."""
    now = datetime.now(UTC)
    return [
        (
            thing["name"],
            thing["description"],
            category_ids[tuple(thing["category"])] if thing["category"] else None,
            thing["safety_notes"],
            json.dumps(thing["parts"]),
            thing["loan_days"],
            thing["copies"],
            now,
            now,
        )
        for thing in document["catalogue"]
    ]


# --- backup -------------------------------------------------------------------------------------


def run_cli(args: list[str], database_url: str, cwd: str) -> None:
    # SECRET_KEY set so the CLI writes no local secret file beside the database or in ./var.
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "bench-" + "x" * 40}
    done = subprocess.run(
        [str(LENDING_CLI), *args], env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise SystemExit(f"lending {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")


def pg_dump(url: str, target: Path) -> None:
    parts = urlsplit(url)
    env = {**os.environ}
    if parts.password:
        env["PGPASSWORD"] = parts.password
    dsn = url.replace(f":{parts.password}@", "@") if parts.password else url
    done = subprocess.run(
        ["pg_dump", "--format=custom", "--no-password", f"--file={target}", f"--dbname={dsn}"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise SystemExit(f"pg_dump failed ({done.returncode}): {done.stderr.strip()}")


def sqlite_copy(source: str, target: Path) -> None:
    live = sqlite3.connect(source)
    try:
        copy = sqlite3.connect(target)
        try:
            live.backup(copy)
        finally:
            copy.close()
    finally:
        live.close()


def measure_backup(engine_name: str, source: Scratch, folder: Path, repeat: int) -> tuple[list[Figure], str]:
    counter = iter(range(10_000))

    def ours() -> Path:
        target = folder / f"lending-{next(counter)}.backup"
        run_cli(["backup", str(target)], source.url, str(folder))
        return target

    def limit() -> Path:
        target = folder / f"limit-{next(counter)}.backup"
        if engine_name == "sqlite":
            sqlite_copy(source.raw, target)
        else:
            pg_dump(source.raw, target)
        return target

    seconds, ours_file = median_time(repeat, ours)
    limit_seconds, limit_file = median_time(repeat, limit)
    startup, _ = median_time(repeat, lambda: run_cli(["--help"], source.url, str(folder)))
    limit_label = "Connection.backup()" if engine_name == "sqlite" else "pg_dump --format=custom"
    size, limit_size = ours_file.stat().st_size, limit_file.stat().st_size
    figures = [
        Figure(
            "lending backup (CLI)",
            seconds,
            limit_label,
            limit_seconds,
            note=f"{size / 1e6:.1f} MB; limit's {limit_size / 1e6:.1f} MB",
        ),
        Figure("  of which starting the CLI", startup, "", 0.0, note="(lending --help)"),
    ]
    return figures, f"database file {Path(source.raw).stat().st_size / 1e6:.1f} MB" if engine_name == "sqlite" else ""


# --- the run ------------------------------------------------------------------------------------


async def measure(
    engine_name: str, source: Scratch, target: Scratch, reference: Scratch, things: int, repeat: int, folder: Path
) -> bool:
    from lending import db
    from lending.catalog import search
    from lending.catalog import services as catalog
    from lending.workflows import setup_file

    began = time.perf_counter()
    categories, groups, items = fake_catalogue(things)
    async with started(source.url):
        category_ids = await set_up_venue(categories)
        rows = realistic(groups, category_ids)
        if engine_name == "sqlite":
            load_sqlite(source.raw, [], rows, items)
        else:
            await load_postgres(source.raw, [], rows, items)
        indexed = await search.rebuild_index()
        if engine_name == "postgres":
            await db.engine().run_ddl("ANALYZE")
        loaded = time.perf_counter() - began
        paths: dict[int, tuple[str, ...]] = {}
        for node in await catalog.category_tree():
            paths[node.id] = (*paths[node.parent_id], node.name) if node.parent_id else (node.name,)
        export_seconds, text = await median_time_async(repeat, lambda: setup_file.export_text(include_catalogue=True))
        check_seconds, checked = median_time(repeat, lambda: setup_file.check_text(text))
        parse_seconds, document = median_time(repeat, lambda: json.loads(text))
        async with Raw(engine_name, source.raw) as raw:
            limit_seconds, _ = await median_time_async(repeat, lambda: export_limit(raw))
            category_rows = [
                tuple(r.values())
                for r in await raw.fetch(
                    "SELECT id, name, parent, position, loan_days, created_at FROM category ORDER BY id"
                )
            ]
    assert checked.counts["catalogue"] == things, checked.counts
    print(
        f"\n{engine_name}: {things:,} things ({len(items):,} items, {len(categories)} categories, 3 sites, "
        f"3 tiers) set up and loaded in {loaded:.1f} s (search index of {indexed:,} groups built); "
        f"setup file {len(text.encode()) / 1e6:.1f} MB"
    )

    async with started(target.url):
        start = time.perf_counter()
        result = await setup_file.import_text(text)
        import_seconds = time.perf_counter() - start
        assert result.counts["catalogue"] == things, result.counts
        again = await setup_file.export_text(include_catalogue=True)
        searchable = (await db.engine().run_ddl("SELECT count(*) AS n FROM item_group_search"))[0]["n"]
    identical = again.encode() == text.encode()

    async with started(reference.url):
        async with Raw(engine_name, reference.raw) as raw:
            await raw.insert_many(
                "category", ("id", "name", "parent", "position", "loan_days", "created_at"), category_rows
            )
            limit_rows = import_rows(document, {path: category_id for category_id, path in paths.items()})
            start = time.perf_counter()
            await raw.insert_many("item_group", INSERT_COLUMNS, limit_rows)
            insert_seconds = time.perf_counter() - start

    figures = [
        Figure("export_text (with catalogue)", export_seconds, "SELECT + json.dumps", limit_seconds, things),
        Figure("check_text (check only)", check_seconds, "json.loads", parse_seconds, things),
        Figure(
            "import_text (empty database)",
            import_seconds,
            "executemany INSERT",
            insert_seconds,
            things,
            note="(one run)",
        ),
    ]
    backup_figures, size_note = measure_backup(engine_name, source, folder, repeat)
    report([*figures, *backup_figures])
    print(
        f"  round trip (export, import, export): {'OK' if identical else 'DIFFERENT'}"
        f"{' (' + first_difference(text, again) + ')' if not identical else ''}"
    )
    print(
        f"  search index after import: {searchable:,} of {things:,} imported groups"
        f"{'; ' + size_note if size_note else ''}"
    )
    return identical


def first_difference(a: str, b: str) -> str:
    for number, (left, right) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False), 1):
        if left != right:
            return f"line {number}: {left.strip()[:60]!r} then {right.strip()[:60]!r}"
    return f"{len(a.splitlines())} lines then {len(b.splitlines())}"


def report(figures: list[Figure]) -> None:
    print(f"  {'':<32} {'seconds':>8} {'things/s':>10}   {'limit':<24} {'seconds':>8} {'things/s':>10}  {'ratio':>6}")
    for f in figures:
        rate = f"{f.count / f.seconds:10,.0f}" if f.count else f"{'':>10}"
        if not f.limit_label:  # a part of the figure above, with no limit of its own
            print(f"  {f.label:<32} {f.seconds:8.3f} {rate}   {'':<24} {'':>8} {'':>10}  {'':>6}  {f.note}")
            continue
        limit_rate = f"{f.count / f.limit_seconds:10,.0f}" if f.count else f"{'':>10}"
        ratio = f.limit_seconds / f.seconds if f.seconds else float("inf")
        print(
            f"  {f.label:<32} {f.seconds:8.3f} {rate}   {f.limit_label:<24} {f.limit_seconds:8.3f} "
            f"{limit_rate}  {ratio:6.2f}  {f.note}"
        )


async def postgres_database(server_url: str, action: str, name: str) -> None:
    import asyncpg

    server = await asyncpg.connect(server_url)
    try:
        await server.execute(
            f'CREATE DATABASE "{name}"' if action == "create" else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )
    finally:
        await server.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--things", type=int, default=10_000, help="item groups in the catalogue")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median), except import")
    parser.add_argument(
        "--postgres",
        default="",
        help="a PostgreSQL server URL on this machine; scratch databases are made there and dropped",
    )
    parser.add_argument("--timeout", type=int, default=900, help="stop the whole run after this many seconds")
    args = parser.parse_args()
    if args.postgres and urlsplit(args.postgres).hostname not in LOOPBACK:
        parser.error("--postgres must name a server on this machine (127.0.0.1, localhost or ::1)")
    if not LENDING_CLI.exists():
        parser.error(f"{LENDING_CLI} is missing: install the project into .venv first")

    def out_of_time(*_: object) -> None:
        raise SystemExit(f"bench/setup_file.py: stopped after {args.timeout} s (--timeout)")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.timeout)
    os.environ.setdefault("PICCOLO_CONF", "lending.piccolo_conf")
    ok = True
    with tempfile.TemporaryDirectory(prefix="lending-setup-bench-") as folder:
        base = Path(folder)
        source, target, reference = (
            Scratch(f"sqlite:///{base / name}", str(base / name)) for name in ("source.db", "target.db", "reference.db")
        )
        ok &= await measure("sqlite", source, target, reference, args.things, args.repeat, base)
    if args.postgres:
        names = [f"lending_bench_{uuid.uuid4().hex[:10]}" for _ in range(3)]
        try:
            for name in names:
                await postgres_database(args.postgres, "create", name)
            urls = [f"{args.postgres.rsplit('/', 1)[0]}/{name}" for name in names]
            with tempfile.TemporaryDirectory(prefix="lending-setup-bench-") as folder:
                ok &= await measure(
                    "postgres", *(Scratch(url, url) for url in urls), args.things, args.repeat, Path(folder)
                )
        finally:
            from lending import schema

            schema.configure(f"sqlite:///{tempfile.gettempdir()}/lending-setup-bench-unused.db")
            for name in names:
                await postgres_database(args.postgres, "drop", name)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
