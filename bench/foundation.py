"""Foundation benchmark: request rates of the app's shell beside Litestar's hello-world on the
same server (granian, one worker) and the same load generator (wrk), so the ratios survive a
noisy machine. Loopback only; every run is bounded.

    python bench/foundation.py [--seconds 5] [--database-url postgresql://...]

Needs `wrk` (apt-get install -y wrk). Prints one line per route: requests/s, p50 and p99
latency, and the ratio to the hello-world limit measured in the same run.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="lending-bench-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "SECRET_KEY": "bench-" + "x" * 40,
               "DATABASE_URL": args.database_url or f"sqlite:///{folder / 'bench.db'}"}

        hello = serve([GRANIAN, "--interface", "asgi", "--host", "127.0.0.1", "--port", "8931", "--workers", "1",
                       "--no-ws", "--log-level", "warning", "hello_app:app"], {**env, "PYTHONPATH": str(HERE)}, HERE)
        try:
            wait_until_up("http://127.0.0.1:8931/json")
            limit, p50, p99 = wrk("http://127.0.0.1:8931/json", args.seconds)
        finally:
            stop(hello)
        print(f"{'Litestar hello-world /json (limit)':<44} {limit:>9,.0f} req/s  p50 {p50:>8}  p99 {p99:>8}  1.00")

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
            routes = [
                ("GET /health (one SELECT 1)", "/health", None),
                ("GET /login (template, no database)", "/login", None),
                ("GET /api/v1/me (bearer token lookup)", "/api/v1/me", {"Authorization": f"Bearer {token}"}),
            ]
            for label, path, headers in routes:
                rate, p50, p99 = wrk(f"http://127.0.0.1:8932{path}", args.seconds, headers)
                print(f"{label + ' ' + engine:<44} {rate:>9,.0f} req/s  p50 {p50:>8}  p99 {p99:>8}  {rate / limit:.2f}")
        finally:
            stop(app)


if __name__ == "__main__":
    main()
