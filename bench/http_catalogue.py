"""Scenarios S1 and S2 over HTTP against a real ``lending run`` server: catalogue pages and item
pages by code, at ``--items`` items (bench/search.py's fake catalogue, bulk-loaded with raw SQL).

  * S1 catalogue pages: ``GET /items`` and the "Next page" links after it (keyset cursors, as
    the app provides them; the first ``--pages`` pages), and the same through the JSON API
    (``GET /api/v1/items?cursor=``), under wrk: requests/s and p50/p95, beside L1 (hello-world);
  * S2 item page by QR code: ``GET /i/{code}`` (the address on every label) for
    1,000 random codes, under wrk: requests/s and p50/p95 beside L1, and beside the database's
    own point-select rate (L4a on SQLite, L4p on PostgreSQL).

    .venv/bin/python bench/http_catalogue.py [--engine sqlite|postgres --postgres URL] [--items 50000]
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


async def seed(database: common.Database, items: int) -> common.Catalogue:
    async with common.app_database(database.url):
        return await common.load_catalogue(database, common.groups_for(items))


def main() -> None:
    parser = common.step_parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--pages", type=int, default=100, help="catalogue pages to cycle through (50 items each)")
    args = parser.parse_args()
    common.start_step(args)
    results = common.Results(args.results)

    with (
        common.work_folder("catalogue") as folder,
        common.scratch_database(args.engine, folder, args.postgres) as database,
    ):
        engine = database.label
        began = time.perf_counter()
        catalogue = asyncio.run(seed(database, args.items))
        common.say(
            f"{engine}: {len(catalogue.items):,} items in {len(catalogue.groups):,} groups loaded in "
            f"{time.perf_counter() - began:.1f} s"
        )
        with common.app_server(database, folder, args.workers) as server:
            pages = asyncio.run(common.catalogue_pages(server.base, args.pages))
            api = asyncio.run(common.api_pages(server.base, args.pages))
            common.say(f"  cycling through {len(pages)} catalogue pages and {len(api)} API pages")
            run = dict(seconds=args.seconds, connections=args.connections, repeat=args.repeat)
            for figure, paths in (
                (f"catalogue page /items, {len(catalogue.items):,} items", pages),
                (f"catalogue page /api/v1/items, {len(catalogue.items):,} items", api),
            ):
                load = common.wrk(server.base, paths, **run)
                check(load, figure)
                results.figure("S1 catalogue", engine, figure, load.rps, "req/s", key="L1", detail=load.detail())

            rng = random.Random(2)
            codes = rng.sample(catalogue.codes, min(1000, len(catalogue.codes)))
            load = common.wrk(server.base, [f"/i/{code}" for code in codes], **run)
            figure = "item page /i/{code}"
            check(load, figure)
            results.figure("S2 item page", engine, figure, load.rps, "req/s", key="L1", detail=load.detail())
            results.figure(
                "S2 item page",
                engine,
                figure + " vs one-connection point selects",
                load.rps,
                "req/s",
                key="L4a" if database.engine == "sqlite" else "L4p",
                detail="DB-bound ceiling",
            )


def check(load: common.Load, figure: str) -> None:
    if load.errors or load.socket_errors:
        raise SystemExit(f"{figure}: {load.errors} error responses, {load.socket_errors} socket errors")


if __name__ == "__main__":
    main()
