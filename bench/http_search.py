"""Scenario S4 over HTTP against a real ``lending run`` server: catalogue search
(``GET /items?q=``, the page people use) at ``--groups`` item groups (bench/search.py's fake
catalogue and its queries: one word, two words, a 3-letter prefix, a word with a typo).

For each kind of query:
  * one client at a time (wrk -c1): p50 and p95 latency, beside the least a request can cost:
    L1c (hello-world p50 with one client) plus the database's own bare full-text query on the
    same data on one connection (bench/search.py's ``raw_reference``: FTS5 ``MATCH ... LIMIT
    50`` or ``tsvector @@ tsquery ... LIMIT 50``; for typos, the query for the word that was
    meant), measured in this run before the server starts;
  * ``--connections`` clients: requests/s beside L1 (hello-world).

bench/search.py measures the same queries in process (``catalog.list_items``), with the raw
page as a second reference.

    .venv/bin/python bench/http_search.py [--engine sqlite|postgres --postgres URL] [--groups 100000]
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


async def seed(database: common.Database, groups: int, queries: int) -> tuple[common.Catalogue, dict, dict]:
    """The catalogue and its search index; the queries per kind and the raw reference's
    latency (ms samples) per kind."""
    from bench.search import query_sets, raw_reference, timed
    from lending import db
    from lending.catalog import search

    async with common.app_database(database.url):
        began = time.perf_counter()
        catalogue = await common.load_catalogue(database, groups, index=True)
        vocabulary = {row["word"] for row in await db.engine().run_ddl("SELECT word FROM search_word")}
        common.say(
            f"{database.label}: {len(catalogue.groups):,} groups, {len(catalogue.items):,} items, index of "
            f"{len(vocabulary):,} words, in {time.perf_counter() - began:.1f} s"
        )
        sets = query_sets(catalogue.groups, queries, vocabulary)
    reference = await raw_reference(database.engine, database.raw)
    limits = {}
    try:
        for kind, pairs in sets.items():
            meant = [search.match_expression([search.fold(t) for t in search.query_terms(m)]) for _, m in pairs]
            limits[kind] = await timed(meant, reference.run)
    finally:
        await reference.close()
    return catalogue, sets, limits


def main() -> None:
    parser = common.step_parser(__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="queries per kind")
    args = parser.parse_args()
    common.start_step(args)
    results = common.Results(args.results)
    if args.groups < 4 * args.queries:
        args.queries = max(10, args.groups // 4)

    with (
        common.work_folder("search") as folder,
        common.scratch_database(args.engine, folder, args.postgres) as database,
    ):
        engine = database.label
        catalogue, sets, limits = asyncio.run(seed(database, args.groups, args.queries))
        with common.app_server(database, folder, args.workers) as server:
            for kind, pairs in sets.items():
                paths = [f"/items?q={urllib.parse.quote_plus(typed)}" for typed, _ in pairs]
                figure = f"search /items?q=, {kind}, {len(catalogue.items):,} items"
                single = common.wrk(server.base, paths, args.seconds, 1, repeat=args.repeat)
                loaded = common.wrk(server.base, paths, args.seconds, args.connections, repeat=args.repeat)
                for load in (single, loaded):
                    if load.errors or load.socket_errors:
                        raise SystemExit(f"{figure}: {load.errors} error responses, {load.socket_errors} socket errors")
                bare = common.median(limits[kind])
                results.figure(
                    "S4 search",
                    engine,
                    f"{figure}: p50, one client",
                    single.p50,
                    "ms",
                    better="lower",
                    key="L1c",
                    limit_extra=bare,
                    limit_label="hello-world p50 (one client) + bare full-text query p50",
                    detail=f"p95 {single.p95:.1f} ms; bare query p50 {bare:.3f} ms, p95 "
                    f"{common.percentile(limits[kind], 0.95):.3f} ms",
                )
                results.figure(
                    "S4 search",
                    engine,
                    f"{figure}: {args.connections} clients",
                    loaded.rps,
                    "req/s",
                    key="L1",
                    detail=loaded.detail(),
                )


if __name__ == "__main__":
    main()
