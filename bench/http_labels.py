"""Scenario S5 over HTTP against a real ``lending run`` server: a label sheet of ``--labels``
items as one PDF (``POST /api/v1/labels {"codes": [...], "template": "L7160"}`` with a
volunteer's token), while a probe on its own connection asks ``GET /health`` every
``--probe-ms`` milliseconds, to see how long the app stops answering others.

Figures: the PDF's wall time (median of --repeat), beside L6 (raw qrcode matrices for as many
URLs) and L6b (those plus a bare fpdf2 drawing); the probe's p99 and worst latency while the PDF
is made, beside the same probe's p99 and worst with the server idle, measured just before; and
the server's resident memory (all its processes) before and at its peak.

    .venv/bin/python bench/http_labels.py [--engine sqlite|postgres --postgres URL] [--labels 1000]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


async def seed(database: common.Database, labels: int) -> list[str]:
    async with common.app_database(database.url):
        catalogue = await common.load_catalogue(database, labels)
    return catalogue.codes[:labels]


class Probe:
    def __init__(self, server: common.Server, interval: float) -> None:
        self.server, self.interval = server, interval
        self.samples: list[tuple[float, float]] = []  # (when it was sent, latency s)
        self.failures = 0
        self.rss: list[tuple[float, int]] = []
        self.running = True

    async def run(self) -> None:
        http = common.Http(self.server.base)
        try:
            while self.running:
                sent = time.perf_counter()
                try:
                    reply = await http.get("/health", timeout=60)
                    if reply.status != 200:
                        self.failures += 1
                except (TimeoutError, OSError):
                    self.failures += 1
                self.samples.append((sent, time.perf_counter() - sent))
                await asyncio.sleep(self.interval)
        finally:
            await http.close()

    async def memory(self) -> None:
        while self.running:
            self.rss.append((time.perf_counter(), self.server.rss_kib()))
            await asyncio.sleep(0.25)

    def between(self, start: float, end: float) -> list[float]:
        return [latency * 1000 for sent, latency in self.samples if start <= sent <= end]


async def measure(
    server: common.Server, token: str, codes: list[str], repeat: int, interval: float, idle_seconds: float
) -> dict:
    probe = Probe(server, interval)
    tasks = [asyncio.create_task(probe.run()), asyncio.create_task(probe.memory())]
    http = common.Http(server.base, headers={"Authorization": f"Bearer {token}"})
    try:
        await asyncio.sleep(0.5)  # the probe's connection is open and warm
        idle_start = time.perf_counter()
        await asyncio.sleep(idle_seconds)
        idle = probe.between(idle_start, time.perf_counter())
        rss_before = server.rss_kib()
        times, sizes, during = [], [], []
        for _ in range(repeat):
            start = time.perf_counter()
            reply = await http.post("/api/v1/labels", json_body={"codes": codes, "template": "L7160"}, timeout=600)
            end = time.perf_counter()
            if reply.status != 200 or not reply.body.startswith(b"%PDF"):
                raise SystemExit(f"POST /api/v1/labels: {reply.status} {reply.body[:300]!r}")
            times.append(end - start)
            sizes.append(len(reply.body))
            during += probe.between(start, end)
            await asyncio.sleep(0.5)
        peak = max((kib for when, kib in probe.rss), default=rss_before)
    finally:
        probe.running = False
        await asyncio.gather(*tasks)
        await http.close()
    return {
        "idle": idle,
        "during": during,
        "times": times,
        "sizes": sizes,
        "rss_before": rss_before,
        "rss_peak": peak,
        "failures": probe.failures,
    }


def main() -> None:
    parser = common.step_parser(__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--probe-ms", type=float, default=5)
    parser.add_argument("--idle-seconds", type=float, default=3)
    args = parser.parse_args()
    common.start_step(args)
    results = common.Results(args.results)

    with (
        common.work_folder("labels") as folder,
        common.scratch_database(args.engine, folder, args.postgres) as database,
    ):
        engine = database.label
        codes = asyncio.run(seed(database, args.labels))
        token = common.volunteer_token(database, folder)
        with common.app_server(database, folder, args.workers) as server:
            found = asyncio.run(measure(server, token, codes, args.repeat, args.probe_ms / 1000, args.idle_seconds))

    scenario = f"S5 {len(codes):,} labels"
    seconds = common.median(found["times"])
    detail = f"{common.median(found['sizes']) / 1024:,.0f} KiB" + (
        f"; runs {' / '.join(f'{t:.2f}' for t in found['times'])} s" if len(found["times"]) > 1 else ""
    )
    figure = f"{len(codes):,}-label PDF, POST /api/v1/labels"
    results.figure(scenario, engine, figure, seconds, "s", better="lower", key="L6", detail=detail)
    results.figure(scenario, engine, figure, seconds, "s", better="lower", key="L6b", detail="vs QR + bare PDF")
    idle, during = found["idle"], found["during"]
    results.figure(
        scenario,
        engine,
        "/health probe p99 during the PDF",
        common.percentile(during, 0.99),
        "ms",
        better="lower",
        limit_label="the same probe's p99, server idle",
        limit_value=common.percentile(idle, 0.99),
        detail=f"p50 {common.median(during):.1f} ms, {len(during):,} probes; idle p50 "
        f"{common.median(idle):.2f} ms; {found['failures']} failed",
    )
    results.figure(
        scenario,
        engine,
        "/health probe worst latency during the PDF",
        max(during, default=0),
        "ms",
        better="lower",
        limit_label="the same probe's worst, server idle",
        limit_value=max(idle, default=0),
    )
    results.figure(
        scenario,
        engine,
        "server memory (RSS, all processes): peak during the PDF",
        found["rss_peak"] / 1024,
        "MiB",
        better="info",
        detail=f"{found['rss_before'] / 1024:,.1f} MiB before",
    )


if __name__ == "__main__":
    main()
