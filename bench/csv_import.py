"""Scenario S6: a CSV import of ``--rows`` things (docs/catalogue-csv.md) with the command a
coordinator runs, ``lending items import FILE --create-categories``, into a freshly migrated
database, beside a bare bulk load of the same rows (categories, item groups and items) into
another freshly migrated database on one persistent connection (bench/search.py's
``load_sqlite``: executemany in one transaction; ``load_postgres``: COPY).

The file is bench/search.py's deterministic fake catalogue: name, description, a category
path (``Tools > Drills``), parts (``a | b``) and ``copies`` (a tenth of the rows make two
items). Rows/s counts file rows; the time includes starting the CLI, which ``lending --help``
measures on its own.

    .venv/bin/python bench/csv_import.py [--engine sqlite|postgres --postgres URL] [--rows 10000]
"""

from __future__ import annotations

import asyncio
import collections
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


def write_csv(path: Path, rows: int) -> tuple[int, list, list, list]:
    """The file; (items it makes, and the catalogue's categories, groups and items)."""
    from bench.search import fake_catalogue

    categories, groups, items = fake_catalogue(rows)
    names = {row[0]: row[1] for row in categories}
    parents = {row[0]: row[2] for row in categories}
    copies = collections.Counter(row[0] for row in items)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["name", "description", "category", "parts", "copies"])
        for group_id, name, description, category, _notes, parts, *_ in groups:
            path_text = f"{names[parents[category]]} > {names[category]}" if parents[category] else names[category]
            out.writerow([name, description, path_text, " | ".join(json.loads(parts)), copies[group_id]])
    return len(items), categories, groups, items


async def bare_load(database: common.Database, categories: list, groups: list, items: list) -> float:
    from bench.search import load_postgres, load_sqlite

    start = time.perf_counter()
    if database.engine == "sqlite":
        load_sqlite(database.raw, categories, groups, items)
    else:
        await load_postgres(database.raw, categories, groups, items)
    return time.perf_counter() - start


def timed_cli(args: list[str], env: dict[str, str], folder: Path, timeout: float) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [common.LENDING, *args],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"lending {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return elapsed, done.stdout


def main() -> None:
    parser = common.step_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    common.start_step(args)
    results = common.Results(args.results)

    with common.work_folder("import") as folder:
        csv_file = folder / "things.csv"
        item_count, categories, groups, items = write_csv(csv_file, args.rows)
        common.say(f"{csv_file.stat().st_size / 1e6:.1f} MB CSV: {args.rows:,} rows, {item_count:,} items")
        with common.scratch_database(args.engine, folder, args.postgres, name="import") as database:
            engine = database.label
            env = common.server_env(database)
            common.cli(["migrate"], env, folder)
            seconds, output = timed_cli(
                ["items", "import", str(csv_file), "--create-categories"], env, folder, timeout=args.timeout
            )
            common.say(f"  {output.strip()[:160]}")
            startup = common.median([timed_cli(["--help"], env, folder, 120)[0] for _ in range(3)])
        with common.scratch_database(args.engine, folder, args.postgres, name="bare") as database:
            common.cli(["migrate"], common.server_env(database), folder)
            bare = asyncio.run(bare_load(database, categories, groups, items))

    results.figure(
        "S6 CSV import",
        engine,
        f"lending items import, {args.rows:,} rows",
        args.rows / seconds,
        "rows/s",
        limit_label="bare bulk insert of the same rows",
        limit_value=args.rows / bare,
        detail=f"{seconds:.2f} s for {item_count:,} items, of which starting the CLI {startup:.2f} s; "
        f"bare load {bare:.3f} s",
    )


if __name__ == "__main__":
    main()
