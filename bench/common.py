"""What the benchmarks share: scratch databases, real server processes (``lending run`` and the
Litestar hello-world limit, both under granian), wrk, a bare keep-alive HTTP client for load
generators written in Python, the resident memory of a process tree, percentiles, and the
result rows that ``bench/run.py`` collects into one table.

Loopback only: servers listen on 127.0.0.1, and a PostgreSQL server must be on this machine.
Everything a benchmark starts (server process groups, scratch PostgreSQL databases) is also
written to the file named by ``LENDING_BENCH_REGISTRY`` when it is set, so ``run.py`` can clean
up after a step it had to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "bench"
# The app's source first, then the repository (for ``bench.*``): a script run from bench/ has
# bench/ on its path, where bench/lending.py would otherwise shadow the ``lending`` package.
for _path in (str(ROOT), str(ROOT / "src")):
    while _path in sys.path:
        sys.path.remove(_path)
    sys.path.insert(0, _path)
os.environ.setdefault("PICCOLO_CONF", "lending.piccolo_conf")

BIN = Path(sys.executable).parent
LENDING = str(BIN / "lending")
GRANIAN = str(BIN / "granian")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SECRET_KEY = "bench-" + "x" * 40
PASSWORD = "bench password"
WRK_SCRIPT = HERE / "wrk_paths.lua"
STARTUP_TIMEOUT = 60.0
# Settings a developer's shell might carry that must not reach a benchmark's server.
FOREIGN_SETTINGS = (
    "SECRET_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "SMTP_URL",
    "LENDING_DEBUG",
    "LENDING_DEMO",
    "DATABASE_URL",
    "BASE_URL",
    "TRUSTED_PROXIES",
)
REGISTRY = "LENDING_BENCH_REGISTRY"


# --- small helpers ------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which ``share`` of the values lie (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def require_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"{url}: benchmarks only use servers on this machine (127.0.0.1, localhost or ::1)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def register(kind: str, value: object) -> None:
    """Note something this run started (``pgid N``, ``db NAME``) for run.py's clean-up."""
    path = os.environ.get(REGISTRY)
    if path:
        with open(path, "a") as handle:
            handle.write(f"{kind} {value}\n")


def say(text: str = "") -> None:
    print(text, flush=True)


# --- scratch databases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    engine: str  # "sqlite" or "postgres"
    url: str  # DATABASE_URL for the app, the CLI and lending.db
    raw: str  # the file (SQLite) or an asyncpg URL (PostgreSQL), for bare SQL

    @property
    def label(self) -> str:
        return "SQLite" if self.engine == "sqlite" else "PostgreSQL"


async def postgres_execute(server_url: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(engine: str, folder: Path | str, server_url: str = "", name: str = "bench") -> Iterator[Database]:
    """A new, empty database: a file in ``folder`` (SQLite), or a database created on the
    PostgreSQL server at ``server_url`` and dropped afterwards. Call outside an event loop."""
    if engine == "sqlite":
        path = Path(folder) / f"{name}.db"
        yield Database("sqlite", f"sqlite:///{path}", str(path))
        return
    if not server_url:
        raise SystemExit("PostgreSQL needs --postgres URL")
    require_loopback(server_url)
    database = f"lending_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(postgres_execute(server_url, f'CREATE DATABASE "{database}"'))
    register("db", database)
    url = f"{server_url.rsplit('/', 1)[0]}/{database}"
    try:
        yield Database("postgres", url, url)
    finally:
        asyncio.run(postgres_execute(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def app_database(url: str):
    """lending.db on this database, migrated, for seeding in process; stopped afterwards."""
    from lending import config_cache, db, schema

    schema.configure(url)
    await db.start()
    config_cache.forget_all()
    try:
        await db.migrate()
        yield
    finally:
        await db.stop()
        config_cache.forget_all()


# --- processes ----------------------------------------------------------------------------------


def server_env(database: Database | None = None, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_SETTINGS}
    env["SECRET_KEY"] = SECRET_KEY
    if database is not None:
        env["DATABASE_URL"] = database.url
    env.update(settings)
    return env


def cli(args: list[str], env: dict[str, str], cwd: Path | str, timeout: float = 900) -> str:
    """Run ``lending ARGS``; its standard output, or SystemExit with its error."""
    done = subprocess.run(
        [LENDING, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise SystemExit(f"lending {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def volunteer_token(database: Database, folder: Path, email: str = "volunteer@bench.example") -> str:
    """A volunteer account (password ``PASSWORD``) and a new API token for it, through the CLI."""
    env = server_env(database)
    cli(
        [
            "user",
            "create",
            "--email",
            email,
            "--name",
            "Bench Volunteer",
            "--role",
            "volunteer",
            "--password",
            PASSWORD,
        ],
        env,
        folder,
    )
    return cli(["token", "create", "--email", email, "--label", "bench"], env, folder).strip().splitlines()[-1]


@dataclass
class Server:
    base: str
    port: int
    process: subprocess.Popen
    log: Path

    def rss_kib(self) -> int:
        return tree_rss_kib(self.process.pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _wait_until_up(server: Server, path: str) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.base + path, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server did not answer {path} within {STARTUP_TIMEOUT:.0f} s:\n{server.log_tail()}")


STOP_GRACE = 15.0  # seconds a server gets to exit after SIGTERM before it is killed


def stop_group(process: subprocess.Popen, name: str = "server", grace: float = STOP_GRACE) -> float:
    """SIGTERM to the process group we started (granian's workers too), then SIGKILL after
    ``grace`` seconds; returns how long it took. A slow exit is reported (run.py collects
    these lines into its notes)."""
    began = time.monotonic()
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            say(f"NOTE: {name} {process.pid} did not exit within {grace:.0f} s of SIGTERM; killed")
    # Workers can outlive the main process: end whatever is left of the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    elapsed = time.monotonic() - began
    if 5 < elapsed < grace:
        say(f"NOTE: {name} {process.pid} took {elapsed:.1f} s to exit after SIGTERM")
    return elapsed


@contextlib.contextmanager
def serve(
    command: Callable[[int], list[str]], env: dict[str, str], cwd: Path, health: str, name: str
) -> Iterator[Server]:
    port = free_port()
    log = Path(cwd) / f"{name}-{port}.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            command(port),
            env={**env, "BASE_URL": env.get("BASE_URL") or f"http://127.0.0.1:{port}"},
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    register("pgid", process.pid)
    server = Server(f"http://127.0.0.1:{port}", port, process, log)
    try:
        _wait_until_up(server, health)
        yield server
    finally:
        stop_group(process, f"{name} server")


def app_server(
    database: Database, folder: Path, workers: int = 1, **settings: str
) -> contextlib.AbstractContextManager[Server]:
    """``lending run`` on a free loopback port, as in production (migrations applied first)."""
    return serve(
        lambda port: [LENDING, "run", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        server_env(database, **settings),
        folder,
        "/health",
        "lending",
    )


def hello_server(folder: Path, workers: int = 1) -> contextlib.AbstractContextManager[Server]:
    """The reference limit: Litestar's hello-world JSON route (bench/hello_app.py) on granian,
    with the worker count the app gets."""
    return serve(
        lambda port: [
            GRANIAN,
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-ws",
            "--log-level",
            "warning",
            "hello_app:app",
        ],
        {**server_env(), "PYTHONPATH": str(HERE)},
        folder,
        "/json",
        "hello",
    )


def tree_rss_kib(pid: int) -> int:
    """Resident memory (VmRSS) of a process and all its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class Load:
    """One wrk run: requests per second and latency percentiles (ms)."""

    rps: float
    p50: float
    p95: float
    p99: float
    max: float
    requests: int
    errors: int  # HTTP status >= 400
    socket_errors: int
    runs: list[float] = field(default_factory=list)  # rps of every repeat

    def detail(self) -> str:
        text = f"p50 {self.p50:.1f} ms, p95 {self.p95:.1f} ms"
        if len(self.runs) > 1:
            text += "; runs " + " / ".join(f"{r:,.0f}" for r in self.runs)
        return text


def require_wrk() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")


def wrk(
    base: str,
    paths: Sequence[str],
    seconds: float,
    connections: int = 16,
    headers: dict[str, str] | None = None,
    warmup: float = 1.0,
    repeat: int = 1,
) -> Load:
    """wrk (one thread, ``connections`` keep-alive connections) cycling through ``paths``; the
    median of ``repeat`` runs by requests/s, after a warm-up run."""
    require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as handle:
        handle.write("\n".join(paths) + "\n")
        paths_file = handle.name
    try:

        def once(duration: float) -> Load:
            args = [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "30s",
                "-s",
                str(WRK_SCRIPT),
            ]
            for key, value in (headers or {}).items():
                args += ["-H", f"{key}: {value}"]
            args += [base, "--", paths_file]
            done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
            found = re.search(r"^WRK_JSON (\{.*\})$", done.stdout, re.M)
            if not found:
                raise SystemExit(f"wrk failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr[-1000:]}")
            data = json.loads(found.group(1))
            rate = data["requests"] / (data["duration_us"] / 1e6) if data["duration_us"] else 0.0
            return Load(
                rps=rate,
                p50=data["p50"] / 1000,
                p95=data["p95"] / 1000,
                p99=data["p99"] / 1000,
                max=data["max"] / 1000,
                requests=int(data["requests"]),
                errors=int(data["status_errors"]),
                socket_errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
            )

        if warmup > 0:
            once(warmup)
        runs = [once(seconds) for _ in range(max(1, repeat))]
    finally:
        os.unlink(paths_file)
    chosen = sorted(runs, key=lambda load: load.rps)[len(runs) // 2]
    chosen.runs = [load.rps for load in runs]
    chosen.errors = sum(load.errors for load in runs)
    chosen.socket_errors = sum(load.socket_errors for load in runs)
    return chosen


# --- a bare HTTP/1.1 client -----------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    def json(self) -> object:
        return json.loads(self.body)


class Http:
    """One keep-alive connection to a loopback server. Much less work per request than a
    general-purpose client, so a load generator takes less of the CPU it shares with the
    server. Keeps cookies (a browser's session) when ``cookies`` is on."""

    def __init__(self, base: str, *, cookies: bool = False, headers: dict[str, str] | None = None) -> None:
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = dict(headers or {})
        self.jar: dict[str, str] | None = {} if cookies else None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: object = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Reply:
        extra = {**self.headers, **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            extra.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            extra.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.jar:
            extra["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(data)
                await self.writer.drain()
                reply = await asyncio.wait_for(self._read(method), timeout)
                break
            except _Closed:
                await self.close()  # the server closed an idle keep-alive connection: once more
                if attempt:
                    raise ConnectionError("the server closed the connection") from None
            except BaseException:
                await self.close()
                raise
        if self.jar is not None:
            for key, value in reply.headers:
                if key == "set-cookie":
                    name, _, rest = value.partition("=")
                    cookie = rest.split(";", 1)[0]
                    if cookie in ("", '""') or "max-age=0" in value.lower():
                        self.jar.pop(name.strip(), None)
                    else:
                        self.jar[name.strip()] = cookie
        if (reply.header("connection") or "").lower() == "close":
            await self.close()
        return reply

    async def _read(self, method: str) -> Reply:
        assert self.reader is not None
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Closed() from None
            raise
        except ConnectionResetError:
            raise _Closed() from None
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = []
        for line in header_lines:
            if line:
                key, _, value = line.partition(":")
                headers.append((key.strip().lower(), value.strip()))
        reply = Reply(status, headers, b"")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return reply
        if (reply.header("transfer-encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers expected
                    break
                chunks.append(await self.reader.readexactly(size + 2))
            reply.body = b"".join(chunk[:-2] for chunk in chunks)
        elif (length := reply.header("content-length")) is not None:
            reply.body = await self.reader.readexactly(int(length))
        else:
            reply.body = await self.reader.read()
            await self.close()
        return reply

    async def get(self, path: str, **kwargs) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs) -> Reply:
        return await self.request("POST", path, **kwargs)


class _Closed(Exception):
    pass


NEXT_PAGE = re.compile(r'href="(/items\?[^"]*cursor=[^"&]+)"')


async def follow_pages(base: str, first: str, pages: int, next_path) -> list[str]:
    """``first`` and the pages after it, each found by ``next_path(reply)`` (None at the end),
    followed as a visitor does, up to ``pages`` addresses."""
    client = Http(base)
    found, path = [first], first
    try:
        while len(found) < pages:
            reply = await client.get(path)
            if reply.status != 200:
                raise SystemExit(f"GET {path}: {reply.status}")
            path = next_path(reply)
            if not path:
                break
            found.append(path)
    finally:
        await client.close()
    return found


async def catalogue_pages(base: str, pages: int) -> list[str]:
    """The first catalogue page and its "Next page" links (keyset cursors, as the app gives them)."""
    import html

    def next_link(reply) -> str | None:
        link = NEXT_PAGE.search(reply.body.decode())
        return html.unescape(link.group(1)) if link else None

    return await follow_pages(base, "/items", pages, next_link)


async def api_pages(base: str, pages: int) -> list[str]:
    """The same through the JSON API's ``next_cursor``."""

    def next_cursor(reply) -> str | None:
        cursor = reply.json().get("next_cursor")
        return f"/api/v1/items?cursor={urllib.parse.quote(cursor)}" if cursor else None

    return await follow_pages(base, "/api/v1/items", pages, next_cursor)


# --- seeding --------------------------------------------------------------------------------------


@dataclass
class Catalogue:
    categories: list[tuple]
    groups: list[tuple]
    items: list[tuple]

    @property
    def codes(self) -> list[str]:
        return [row[1] for row in self.items]


def groups_for(items: int) -> int:
    """bench/search.py's fake catalogue gives about 1.1 items per group."""
    return max(1, round(items / 1.1))


async def load_catalogue(database: Database, groups: int, *, index: bool = False) -> Catalogue:
    """bench/search.py's deterministic fake catalogue, bulk-loaded with raw SQL into a migrated,
    empty database (inside ``app_database``); the search index built in bulk when asked."""
    from bench.search import fake_catalogue, load_postgres, load_sqlite
    from lending import db

    categories, group_rows, item_rows = fake_catalogue(groups)
    if database.engine == "sqlite":
        load_sqlite(database.raw, categories, group_rows, item_rows)
    else:
        await load_postgres(database.raw, categories, group_rows, item_rows)
    if index:
        from lending.catalog import search

        await search.rebuild_index()
    if database.engine == "postgres":
        await db.engine().run_ddl("ANALYZE")
    return Catalogue(categories, group_rows, item_rows)


def available_codes(catalogue: Catalogue) -> list[str]:
    return [row[1] for row in catalogue.items if row[2] == "available"]


# --- results --------------------------------------------------------------------------------------


@dataclass
class Row:
    """A figure, or a reference limit (``kind="limit"``, named by ``key``). A figure names its
    limit by key (measured by bench/limits.py in the same run) or carries ``limit_value``
    measured beside it. ``better`` says which way is good: for "higher" the ratio is
    value/limit, for "lower" (times) it is limit/value, so 1.00 means as good as the limit
    and 0.10 means a tenth of it, either way."""

    scenario: str
    engine: str  # SQLite, PostgreSQL, or "-" when no database is involved
    figure: str
    value: float
    unit: str
    better: str = "higher"
    kind: str = "figure"
    key: str = ""  # a limit's key, or the key of the limit a figure is compared with
    limit_label: str = ""
    limit_value: float | None = None
    limit_unit: str = ""
    limit_extra: float | None = None  # with a key: the limit is the key's value plus this
    detail: str = ""
    gate: str = ""  # "fail" when this figure must make the run fail (double loans)


class Results:
    def __init__(self, path: str | None) -> None:
        self.path = path

    def add(self, row: Row) -> Row:
        if self.path:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(asdict(row)) + "\n")
        limit = ""
        if row.limit_value is not None:
            limit = f"   limit {fmt(row.limit_value, row.limit_unit or row.unit)} ({row.limit_label})"
            ratio = ratio_of(row.value, row.limit_value, row.better)
            if ratio is not None:
                limit += f"   ratio {fmt_ratio(ratio)}"
        elif row.key and row.kind == "figure":
            limit = f"   limit: {row.key}" + (f" + {fmt(row.limit_extra, row.unit)}" if row.limit_extra else "")
        prefix = "LIMIT " if row.kind == "limit" else ""
        say(
            f"  {prefix}{row.figure} [{row.engine}]: {fmt(row.value, row.unit)}"
            f"{'  (' + row.detail + ')' if row.detail else ''}{limit}"
        )
        return row

    def limit(
        self, key: str, engine: str, figure: str, value: float, unit: str, better: str = "higher", detail: str = ""
    ) -> Row:
        return self.add(
            Row(
                scenario="limits",
                engine=engine,
                figure=figure,
                value=value,
                unit=unit,
                better=better,
                kind="limit",
                key=key,
                detail=detail,
            )
        )

    def figure(
        self,
        scenario: str,
        engine: str,
        figure: str,
        value: float,
        unit: str,
        *,
        better: str = "higher",
        key: str = "",
        limit_label: str = "",
        limit_value: float | None = None,
        limit_unit: str = "",
        limit_extra: float | None = None,
        detail: str = "",
        gate: str = "",
    ) -> Row:
        return self.add(
            Row(
                scenario=scenario,
                engine=engine,
                figure=figure,
                value=value,
                unit=unit,
                better=better,
                key=key,
                limit_label=limit_label,
                limit_value=limit_value,
                limit_unit=limit_unit,
                limit_extra=limit_extra,
                detail=detail,
                gate=gate,
            )
        )


def ratio_of(value: float, limit: float | None, better: str) -> float | None:
    if limit is None or better not in ("higher", "lower"):
        return None
    if better == "higher":
        return value / limit if limit else None
    return limit / value if value else None


def fmt_ratio(ratio: float) -> str:
    if ratio >= 0.095:
        return f"{ratio:.2f}"
    if ratio >= 0.0095:
        return f"{ratio:.3f}"
    return f"{ratio:.4f}"


def fmt(value: float, unit: str) -> str:
    if unit in ("s",):
        return f"{value:,.3f} s"
    if unit == "ms":
        return f"{value:,.1f} ms" if value >= 10 else f"{value:,.2f} ms" if value >= 1 else f"{value:.3f} ms"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if isinstance(value, float) and not value.is_integer() and abs(value) < 100:
        return f"{value:,.2f} {unit}".rstrip()
    return f"{value:,.0f} {unit}".rstrip()


# --- a step's command line --------------------------------------------------------------------------


def step_parser(description: str) -> argparse.ArgumentParser:
    """The options every step of run.py takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--postgres",
        default="",
        metavar="SERVER_URL",
        help="a PostgreSQL server on this machine; scratch databases are made and dropped there",
    )
    parser.add_argument("--results", default="", help="append result rows (JSON lines) to this file")
    parser.add_argument("--workers", type=int, default=1, help="granian workers for the app and the hello-world")
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk measurement")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per figure (the median is kept)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--timeout", type=int, default=1800, help="stop this step after this many seconds")
    return parser


def start_step(args: argparse.Namespace) -> None:
    """Bounded and interruptible: SIGALRM after --timeout and SIGTERM both end the step through
    SystemExit, so servers and scratch databases are cleaned up on the way out."""
    if args.engine == "postgres":
        if not args.postgres:
            raise SystemExit("--engine postgres needs --postgres SERVER_URL")
        require_loopback(args.postgres)

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(
            f"{Path(sys.argv[0]).name}: stopped by {signal.Signals(signum).name}"
            f"{' (--timeout ' + str(args.timeout) + ' s)' if signum == signal.SIGALRM else ''}"
        )

    signal.signal(signal.SIGALRM, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.alarm(args.timeout)
    random.seed(20261202)


@contextlib.contextmanager
def work_folder(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"lending-bench-{prefix}-") as folder:
        yield Path(folder)
