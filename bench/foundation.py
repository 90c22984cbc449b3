"""Foundation benchmark: request rates of the app's shell beside Litestar's hello-world on the
same server (granian, one worker) and the same load generator (wrk), so the ratios survive a
noisy machine. Loopback only; every run is bounded.

    python bench/foundation.py [--seconds 5] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Needs `wrk` (apt-get install -y wrk). Prints one line per route: requests/s, p50 and p99
latency, and the ratio to the hello-world limit measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
LENDING = str(Path(sys.executable).parent / "lending")
GRANIAN = str(Path(sys.executable).parent / "granian")


def wait_until_up(url: str, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def wrk(url: str, seconds: int, headers: dict[str, str] | None = None) -> tuple[float, str, str]:
    args = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url]
    for key, value in (headers or {}).items():
        args[1:1] = ["-H", f"{key}: {value}"]
    output = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses\n{output}")
    return rate, p50, p99


def session_cookie(base: str) -> str:
    """Sign in through the form, as a browser does, and return the Cookie header."""
    import http.cookiejar
    import urllib.parse

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/login")
    csrf = next(c.value for c in jar if c.name == "lending_csrf")
    form = urllib.parse.urlencode({"email": "b@example.org", "password": "bench password", "_csrf_token": csrf})
    opener.open(f"{base}/login", data=form.encode())
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def serve(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        print(f"(server {process.pid} ignored SIGTERM for 30 s; killed)", file=sys.stderr)
        os.killpg(process.pid, 9)
        process.wait(timeout=10)


@contextlib.contextmanager
def scratch_database(server_url: str):
    """A fresh PostgreSQL database on the server for this run ('' when measuring SQLite)."""
    if not server_url:
        yield ""
        return
    import asyncio

    import asyncpg

    name = f"lending_bench_{os.getpid()}"

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(server_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--postgres", default="", metavar="SERVER_URL",
                        help="measure on PostgreSQL: a server URL; a scratch database is made and dropped there")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="lending-bench-") as tmp, scratch_database(args.postgres) as url:
        folder = Path(tmp)
        env = {**os.environ, "SECRET_KEY": "bench-" + "x" * 40,
               "DATABASE_URL": url or f"sqlite:///{folder / 'bench.db'}"}

        hello = serve([GRANIAN, "--interface", "asgi", "--host", "127.0.0.1", "--port", "8931", "--workers", "1",
                       "--no-ws", "--log-level", "warning", "hello_app:app"], {**env, "PYTHONPATH": str(HERE)}, HERE)
        try:
            wait_until_up("http://127.0.0.1:8931/json")
            limit, p50, p99 = wrk("http://127.0.0.1:8931/json", args.seconds)
        finally:
            stop(hello)
        print(f"{'Litestar hello-world /json (limit)':<48} {limit:>9,.0f} req/s  p50 {p50:>8}  p99 {p99:>8}  1.00")

        subprocess.run([LENDING, "migrate"], env=env, cwd=folder, check=True, capture_output=True)
        subprocess.run([LENDING, "user", "create", "--email", "b@example.org", "--name", "Bench", "--role",
                        "volunteer", "--password", "bench password"], env=env, cwd=folder, check=True,
                       capture_output=True)
        token = subprocess.run([LENDING, "token", "create", "--email", "b@example.org"], env=env, cwd=folder,
                               check=True, capture_output=True, text=True).stdout.strip()
        app = serve([LENDING, "run", "--port", "8932", "--workers", "1"], env, folder)
        try:
            wait_until_up("http://127.0.0.1:8932/health")
            engine = "PostgreSQL" if "postgres" in env["DATABASE_URL"] else "SQLite"
            cookie = session_cookie("http://127.0.0.1:8932")
            routes = [
                ("GET /health (one SELECT 1)", "/health", None),
                ("GET /login (template, no database)", "/login", None),
                ("GET /api/v1/me (bearer token lookup)", "/api/v1/me", {"Authorization": f"Bearer {token}"}),
                ("GET /desk (signed-in page, session)", "/desk", {"Cookie": cookie}),
            ]
            for label, path, headers in routes:
                rate, p50, p99 = wrk(f"http://127.0.0.1:8932{path}", args.seconds, headers)
                print(f"{label + ' ' + engine:<48} {rate:>9,.0f} req/s  p50 {p50:>8}  p99 {p99:>8}  {rate / limit:.2f}")
        finally:
            stop(app)


if __name__ == "__main__":
    main()
