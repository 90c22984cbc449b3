"""The benchmark suite in one command: reference limits first, then every scenario, on SQLite
and (with --postgres) on PostgreSQL, each figure printed beside its limit measured on this
machine in this run, with the ratio. See docs/performance.md.

    .venv/bin/python bench/run.py [--postgres postgresql://postgres@127.0.0.1:5432/test] [--quick]
                                  [--only NAME[,NAME...]] [--out bench/results-YYYY-MM-DD.md]
                                  [--mixed-seconds 300]

Steps, in order (each a script in bench/ run as its own process with a timeout):

  limits     bench/limits.py        L1 hello-world, L4/L4a/L4p point selects, L5 bare pair, L6 QR
  catalogue  bench/http_catalogue.py  S1 catalogue pages, S2 item page by code
  loans      bench/http_loans.py    S3 check-out/check-in pairs, 50 clients, double-loan monitor
  search     bench/http_search.py   S4 search: word, two words, prefix, typo
  labels     bench/http_labels.py   S5 1,000-label PDF with a /health probe
  import     bench/csv_import.py    S6 CSV import through `lending items import`
  mixed      bench/mixed.py         S7 mixed load: errors, latency drift, memory growth
  engine     bench/engine.py        the SQLite engine against its limit

Not part of the test run. Loopback only. Exit status: 0 when every step passed, 3 when a
monitor saw a double loan, 1 when a step failed or ran out of time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

PYTHON = sys.executable
STEPS = ["limits", "catalogue", "loans", "search", "labels", "import", "mixed", "engine"]
NEEDS_LIMITS = {"catalogue", "loans", "search", "labels", "mixed"}


@dataclass
class Sizes:
    seconds: float
    repeat: int
    items: int
    pages: int
    search_groups: int
    queries: int
    loans_seconds: float
    cold: int
    labels: int
    labels_repeat: int
    import_rows: int
    mixed_seconds: float
    calibrate: float
    pairs: int
    engine_seconds: float


FULL = Sizes(
    seconds=10,
    repeat=3,
    items=50_000,
    pages=100,
    search_groups=100_000,
    queries=200,
    loans_seconds=30,
    cold=1000,
    labels=1000,
    labels_repeat=3,
    import_rows=10_000,
    mixed_seconds=300,
    calibrate=15,
    pairs=2000,
    engine_seconds=3,
)
QUICK = Sizes(
    seconds=3,
    repeat=1,
    items=2000,
    pages=40,
    search_groups=2000,
    queries=50,
    loans_seconds=10,
    cold=200,
    labels=1000,
    labels_repeat=1,
    import_rows=2000,
    mixed_seconds=20,
    calibrate=5,
    pairs=300,
    engine_seconds=1,
)


@dataclass
class Step:
    name: str
    engine: str  # sqlite, postgres, or "-" (both or none)
    command: list[str]
    timeout: float


@dataclass
class Outcome:
    step: Step
    status: str  # ok, failed (N), timed out
    seconds: float
    load_before: str
    load_after: str
    output: list[str] = field(default_factory=list)


def plan(args: argparse.Namespace, sizes: Sizes, results: str) -> list[Step]:
    engines = ["sqlite"] + (["postgres"] if args.postgres else [])
    wrk_time = (sizes.seconds + 1) * sizes.repeat  # one wrk figure, warm-up included
    scale = args.timeout_scale

    def script(name: str, engine: str, extra: list[str]) -> list[str]:
        command = [
            PYTHON,
            str(common.HERE / name),
            "--engine",
            engine,
            "--results",
            results,
            "--workers",
            str(args.workers),
            "--seconds",
            str(sizes.seconds),
            "--repeat",
            str(sizes.repeat),
            "--connections",
            str(args.connections),
        ]
        if args.postgres:
            command += ["--postgres", args.postgres]
        return command + extra

    def bounded(budget: float) -> float:
        return 120 + budget * scale

    steps: list[Step] = []
    for name in args.steps:
        if name == "limits":
            budget = 60 + 2 * wrk_time + 3 * sizes.seconds + sizes.pairs / 20 + 60
            command = script("limits.py", "sqlite", ["--pairs", str(sizes.pairs), "--labels", str(sizes.labels)])
            steps.append(Step(name, "-", command, bounded(budget * 2)))
        elif name == "engine":
            steps.append(
                Step(
                    name,
                    "-",
                    [PYTHON, str(common.HERE / "engine.py"), "--seconds", str(sizes.engine_seconds)],
                    bounded(300 + 40 * sizes.engine_seconds),
                )
            )
        else:
            for engine in engines:
                if name == "catalogue":
                    budget = 60 + sizes.items / 500 + 3 * wrk_time + sizes.pages
                    extra = ["--items", str(sizes.items), "--pages", str(sizes.pages)]
                    steps.append(Step(name, engine, script("http_catalogue.py", engine, extra), bounded(budget * 2)))
                elif name == "loans":
                    budget = 90 + sizes.cold / 500 + sizes.loans_seconds
                    command = script("http_loans.py", engine, ["--cold", str(sizes.cold)])
                    command[command.index("--seconds") + 1] = str(sizes.loans_seconds)
                    steps.append(Step(name, engine, command, bounded(budget * 2)))
                elif name == "search":
                    budget = 60 + sizes.search_groups / 200 + 8 * wrk_time
                    extra = ["--groups", str(sizes.search_groups), "--queries", str(sizes.queries)]
                    steps.append(Step(name, engine, script("http_search.py", engine, extra), bounded(budget * 2)))
                elif name == "labels":
                    budget = 90 + sizes.labels / 500 + sizes.labels_repeat * 30
                    command = script("http_labels.py", engine, ["--labels", str(sizes.labels)])
                    command[command.index("--repeat") + 1] = str(sizes.labels_repeat)
                    steps.append(Step(name, engine, command, bounded(budget * 2)))
                elif name == "import":
                    budget = 60 + sizes.import_rows / 100
                    steps.append(
                        Step(
                            name,
                            engine,
                            script("csv_import.py", engine, ["--rows", str(sizes.import_rows)]),
                            bounded(budget * 2),
                        )
                    )
                elif name == "mixed":
                    budget = 90 + sizes.items / 500 + sizes.calibrate + sizes.mixed_seconds
                    extra = [
                        "--items",
                        str(sizes.items),
                        "--mixed-seconds",
                        str(sizes.mixed_seconds),
                        "--calibrate-seconds",
                        str(sizes.calibrate),
                    ]
                    steps.append(Step(name, engine, script("mixed.py", engine, extra), bounded(budget * 1.5)))
    for step in steps:
        if "--timeout" not in step.command and step.name != "engine":
            # The step stops itself a little before run.py would have to.
            step.command += ["--timeout", str(int(step.timeout - 30))]
    return steps


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def run_step(step: Step, registry: Path) -> Outcome:
    label = step.name + (f" ({step.engine})" if step.engine != "-" else "")
    common.say(f"\n=== {label}: {' '.join(Path(c).name if c.startswith('/') else c for c in step.command[1:])}")
    before, began = load_average(), time.monotonic()
    env = {**os.environ, common.REGISTRY: str(registry)}
    process = subprocess.Popen(
        step.command,
        cwd=common.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    common.register("pgid", process.pid)
    lines: list[str] = []

    def relay() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            print(line, end="", flush=True)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=step.timeout)
        status = "ok" if code == 0 else f"failed ({code})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {step.timeout:.0f} s"
        common.say(f"--- {label}: {status}; stopping it")
        common.stop_group(process, label, grace=45)  # the step cleans up on SIGTERM
    reader.join(timeout=10)
    return Outcome(step, status, time.monotonic() - began, before, load_average(), lines)


def clean_up(registry: Path, postgres: str) -> None:
    """End what a step started and left behind (a step killed on its timeout): only the process
    groups and databases it registered, each by its id or name."""
    if not registry.exists():
        return
    entries = [line.split(" ", 1) for line in registry.read_text().splitlines() if " " in line]
    for kind, value in entries:
        if kind != "pgid":
            continue
        pid = int(value)
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone
        if "lending" in command or "granian" in command or "bench/" in command:
            common.say(f"(cleaning up process group {pid}: {command[:80]})")
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, sig)
                time.sleep(2)
    databases = [value.strip() for kind, value in entries if kind == "db"]
    if databases and postgres:
        import asyncio

        for name in databases:
            if name.startswith("lending_bench_"):
                with contextlib.suppress(Exception):
                    asyncio.run(common.postgres_execute(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    registry.write_text("")


# --- the summary --------------------------------------------------------------------------------


@dataclass
class Line:
    scenario: str
    engine: str
    figure: str
    value: str
    limit: str
    ratio: str
    detail: str
    failed: bool = False


def summarise(rows: list[dict]) -> tuple[list[Line], list[Line]]:
    limits = {(r["key"], r["engine"]): r for r in rows if r["kind"] == "limit"}
    limit_lines = [
        Line(
            "limits", r["engine"], f"{r['key']}: {r['figure']}", common.fmt(r["value"], r["unit"]), "", "", r["detail"]
        )
        for r in rows
        if r["kind"] == "limit"
    ]
    lines = []
    for r in rows:
        if r["kind"] != "figure":
            continue
        limit_value, label = r["limit_value"], r["limit_label"]
        unit = r["limit_unit"] or r["unit"]
        if r["key"]:
            found = limits.get((r["key"], r["engine"])) or limits.get((r["key"], "-"))
            if found is None:
                limit_value, label = None, f"{r['key']} (not measured in this run)"
            else:
                limit_value = found["value"] + (r["limit_extra"] or 0)
                label = r["limit_label"] or f"{r['key']} {found['figure']}"
                if not r["limit_label"]:
                    label = f"{r['key']} {found['figure']}"
                unit = found["unit"] if not r["limit_extra"] else unit
        if limit_value is None:
            limit = label or "-"
        elif r["better"] == "max":
            limit = f"at most {common.fmt(limit_value, unit)}"
        else:
            limit = (
                f"{common.fmt(limit_value, unit)} ({label})"
                if label and label not in ("0",)
                else common.fmt(limit_value, unit)
            )
        ratio = common.ratio_of(r["value"], limit_value, r["better"])
        failed = r["gate"] == "fail" and r["value"] != 0  # only a gate fails the run (double loans)
        if ratio is not None:
            ratio_text = common.fmt_ratio(ratio)
        elif failed:
            ratio_text = "FAIL"
        elif r["better"] == "zero" and limit_value is not None:
            ratio_text = "ok" if r["value"] == 0 else "not 0"
        elif r["better"] == "max" and limit_value is not None:
            ratio_text = "ok" if r["value"] <= limit_value else "over"
        else:
            ratio_text = ""
        lines.append(
            Line(
                r["scenario"],
                r["engine"],
                r["figure"],
                common.fmt(r["value"], r["unit"]),
                limit,
                ratio_text,
                r["detail"],
                failed,
            )
        )
    return limit_lines, lines


def text_table(lines: list[Line], limits: list[Line]) -> str:
    head = ("scenario", "engine", "figure", "value", "limit", "ratio", "detail")
    body = [
        (row.scenario, row.engine, row.figure, row.value, row.limit, row.ratio, row.detail) for row in limits + lines
    ]
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(6)]
    out = []
    for row in [head, *body]:
        out.append("  ".join(str(cell).ljust(widths[i]) if i < 6 else str(cell) for i, cell in enumerate(row)).rstrip())
        if row is head:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(head: tuple[str, ...], rows: list[tuple]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def versions(postgres: str) -> str:
    from importlib import metadata

    parts = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    for name in ("litestar", "granian", "piccolo", "aiosqlite", "asyncpg", "qrcode", "fpdf2"):
        with contextlib.suppress(Exception):
            parts.append(f"{name} {metadata.version(name)}")
    wrk = shutil.which("wrk")
    if wrk:
        with contextlib.suppress(Exception):
            first = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
            parts.append(f"wrk {first[1] if len(first) > 1 else '?'}")
    if postgres:
        import asyncio

        async def server_version() -> str:
            import asyncpg

            connection = await asyncpg.connect(postgres)
            try:
                return await connection.fetchval("SHOW server_version")
            finally:
                await connection.close()

        with contextlib.suppress(Exception):
            parts.append(f"PostgreSQL {asyncio.run(server_version())}")
    return ", ".join(parts)


def sqlite_engine_kind() -> str:
    """Which SQLite engine the app will use (LENDING_SQLITE_ENGINE), asked of the app when it can say."""
    chosen = os.environ.get("LENDING_SQLITE_ENGINE", "")
    with contextlib.suppress(Exception):
        from lending import sqlite_engine

        return f"{sqlite_engine.engine_kind()} (LENDING_SQLITE_ENGINE={chosen or 'unset'})"
    return f"LENDING_SQLITE_ENGINE={chosen}" if chosen else "the app's default"


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    return f"{os.cpu_count()} CPUs ({model}), {memory} RAM, {platform.system()} {platform.release()}"


def revision() -> str:
    with contextlib.suppress(Exception):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=common.ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + (" with uncommitted changes" if dirty else "")
    return "?"


def markdown(
    args: argparse.Namespace,
    sizes: Sizes,
    outcomes: list[Outcome],
    limits: list[Line],
    lines: list[Line],
    started: dt.datetime,
    header: dict[str, str],
) -> str:
    notes = [line for o in outcomes for line in o.output if line.startswith(("NOTE:", "FAIL:"))]
    engine_output = next((o.output for o in outcomes if o.step.name == "engine" and o.output), [])
    mode = "--quick" if args.quick else "full"
    parts = [
        f"# Benchmark results, {started:%Y-%m-%d %H:%M}",
        "",
        f"`{' '.join(['bench/run.py', *sys.argv[1:]])}` ({mode} sizes). Produced by bench/run.py; how to read it: "
        "docs/performance.md.",
        "",
        *(f"- {key}: {value}" for key, value in header.items()),
        "",
        "## Limits (measured first, in this run)",
        "",
        md_table(
            ("engine", "limit", "value", "detail"), [(row.engine, row.figure, row.value, row.detail) for row in limits]
        ),
        "",
        "## Figures",
        "",
        "Ratio: the share of the limit reached (value / limit for rates, limit / value for times); "
        "1.00 would be as fast as the limit.",
        "",
        md_table(
            ("scenario", "engine", "figure", "value", "limit", "ratio", "detail"),
            [(row.scenario, row.engine, row.figure, row.value, row.limit, row.ratio, row.detail) for row in lines],
        ),
        "",
        "## Steps",
        "",
        md_table(
            ("step", "engine", "status", "seconds", "load average before / after"),
            [
                (o.step.name, o.step.engine, o.status, f"{o.seconds:.0f}", f"{o.load_before} / {o.load_after}")
                for o in outcomes
            ],
        ),
        "",
    ]
    if notes:
        parts += ["## Notes", "", *(f"- {md_escape(n)}" for n in notes), ""]
    if engine_output:
        parts += ["## bench/engine.py", "", "```", *engine_output, "```", ""]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument(
        "--postgres",
        default="",
        metavar="SERVER_URL",
        help="also measure on PostgreSQL: a server on this machine; scratch databases are made and dropped there",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for a smoke run (2,000 items, 3 s per figure, 20 s mixed load)",
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="NAME[,NAME]",
        help=f"run only these steps ({', '.join(STEPS)}); limits are added when a step needs them",
    )
    parser.add_argument("--no-limits", action="store_true", help="with --only: do not add the limits step")
    parser.add_argument("--out", default="", metavar="FILE.md", help="also write the summary as Markdown here")
    parser.add_argument("--mixed-seconds", type=float, help="length of the mixed load (default 300; --quick 20)")
    parser.add_argument("--seconds", type=float, help="length of each wrk measurement (default 10; --quick 3)")
    parser.add_argument("--repeat", type=int, help="wrk runs per figure, median kept (default 3; --quick 1)")
    parser.add_argument("--items", type=int, help="catalogue size for S1, S2 and S7 (default 50,000; --quick 2,000)")
    parser.add_argument("--search-items", type=int, help="item groups for S4 (default 100,000; --quick 2,000)")
    parser.add_argument("--workers", type=int, default=1, help="granian workers, for the app and the hello-world")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (-t1)")
    parser.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every step's time limit")
    parser.add_argument("--keep-results", default="", metavar="FILE.jsonl", help="keep the raw result rows here")
    parser.add_argument("--dry-run", action="store_true", help="print the steps and their time limits, run nothing")
    args = parser.parse_args()

    if args.postgres:
        common.require_loopback(args.postgres)
    common.require_wrk()
    sizes = QUICK if args.quick else FULL
    overrides = {
        "mixed_seconds": args.mixed_seconds,
        "seconds": args.seconds,
        "repeat": args.repeat,
        "items": args.items,
        "search_groups": args.search_items,
    }
    sizes = Sizes(**{**sizes.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in STEPS]
        if unknown:
            parser.error(f"unknown step {', '.join(unknown)}: choose from {', '.join(STEPS)}")
        if not args.no_limits and NEEDS_LIMITS & set(wanted) and "limits" not in wanted:
            wanted.insert(0, "limits")
        args.steps = [name for name in STEPS if name in wanted]
    else:
        args.steps = list(STEPS)

    started = dt.datetime.now()
    header = {
        "machine": machine(),
        "versions": versions(args.postgres),
        "revision": revision(),
        "SQLite engine": sqlite_engine_kind(),
        "sizes": ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:g}" for k, v in sizes.__dict__.items()),
        "server": f"granian, {args.workers} worker(s); wrk -t1 -c{args.connections}",
        "load average at the start": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="lending-bench-run-") as folder:
        results = Path(args.keep_results) if args.keep_results else Path(folder) / "results.jsonl"
        results.write_text("")
        registry = Path(folder) / "registry"
        registry.write_text("")
        os.environ[common.REGISTRY] = str(Path(folder) / "run-registry")  # run.py's own (its steps)
        steps = plan(args, sizes, str(results))
        outcomes = []
        budget = sum(step.timeout for step in steps)
        common.say(
            f"{len(steps)} steps, each with a time limit (at most {budget / 60:.0f} min in all); "
            f"{'quick' if args.quick else 'full'} sizes"
        )
        if args.dry_run:
            for step in steps:
                shown = " ".join(Path(c).name if c.startswith("/") else c for c in step.command[1:])
                common.say(f"  {step.name:<10} {step.engine:<9} limit {step.timeout:5.0f} s  {shown}")
            return 0
        try:
            for step in steps:
                outcomes.append(run_step(step, registry))
                clean_up(registry, args.postgres)
        except KeyboardInterrupt:
            common.say("\ninterrupted: cleaning up")
            clean_up(registry, args.postgres)
            clean_up(Path(os.environ[common.REGISTRY]), args.postgres)
            raise
        rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]

    header["load average at the end"] = load_average()
    limits, lines = summarise(rows)
    common.say("\n" + "=" * 100)
    common.say(
        f"Summary ({'quick' if args.quick else 'full'} sizes; ratio = share of the limit reached, "
        "1.00 = as fast as the limit)\n"
    )
    common.say(text_table(lines, limits))
    common.say("")
    for outcome in outcomes:
        common.say(f"  {outcome.step.name:<10} {outcome.step.engine:<9} {outcome.status:<28} {outcome.seconds:6.0f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(markdown(args, sizes, outcomes, limits, lines, started, header))
        common.say(f"\nwrote {args.out}")
    doubles = any(line.failed and "double" in line.figure for line in lines)
    # bench/engine.py exits 1 when its own bar is not met: shown in the steps, not a failed suite.
    failed = [
        o
        for o in outcomes
        if not (
            o.status == "ok"
            or o.status.startswith("skipped")
            or (o.step.name == "engine" and o.status.startswith("failed"))
        )
    ]
    if doubles:
        common.say("FAIL: double loans were seen")
        return 3
    if failed:
        common.say("FAIL: " + ", ".join(f"{o.step.name} ({o.step.engine}) {o.status}" for o in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
