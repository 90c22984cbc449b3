"""Foundation benchmark: request rates of the app's shell beside Litestar's hello-world on the
same server (granian, one worker) and the same load generator (wrk), so the ratios survive a
noisy machine. Loopback only; every run is bounded.

    python bench/foundation.py [--seconds 5] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Needs `wrk` (apt-get install -y wrk). Prints one line per route: requests/s, p50 and p99
latency, and the ratio to the hello-world limit measured in the same run. The servers,
scratch databases and wrk come from bench/common.py, which bench/run.py's suite uses too.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import sys
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

EMAIL = "b@example.org"


def session_cookie(base: str, email: str = EMAIL, password: str = common.PASSWORD) -> str:
    """Sign in through the form, as a browser does, and return the Cookie header."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/login")
    csrf = next(c.value for c in jar if c.name == "lending_csrf")
    form = urllib.parse.urlencode({"email": email, "password": password, "_csrf_token": csrf})
    opener.open(f"{base}/login", data=form.encode())
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def line(label: str, load: common.Load, limit: float) -> None:
    print(
        f"{label:<48} {load.rps:>9,.0f} req/s  p50 {load.p50:>6.2f} ms  p99 {load.p99:>7.2f} ms  "
        f"{load.rps / limit:.2f}",
        flush=True,
    )
    if load.errors or load.socket_errors:
        raise SystemExit(f"{label}: {load.errors} error responses, {load.socket_errors} socket errors")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument(
        "--postgres",
        default="",
        metavar="SERVER_URL",
        help="measure on PostgreSQL: a server URL; a scratch database is made and dropped there",
    )
    args = parser.parse_args()
    common.require_wrk()
    connections = 32  # as this script always measured: wrk -t1 -c32

    with (
        common.work_folder("foundation") as folder,
        common.scratch_database("postgres" if args.postgres else "sqlite", folder, args.postgres) as database,
    ):
        with common.hello_server(folder) as hello:
            limit = common.wrk(hello.base, ["/json"], args.seconds, connections, warmup=0)
        line("Litestar hello-world /json (limit)", limit, limit.rps)

        env = common.server_env(database)
        common.cli(["migrate"], env, folder)
        common.cli(
            [
                "user",
                "create",
                "--email",
                EMAIL,
                "--name",
                "Bench",
                "--role",
                "volunteer",
                "--password",
                common.PASSWORD,
            ],
            env,
            folder,
        )
        token = common.cli(["token", "create", "--email", EMAIL], env, folder).strip()
        with common.app_server(database, folder) as app:
            cookie = session_cookie(app.base)
            routes = [
                ("GET /health (one SELECT 1)", "/health", None),
                ("GET /login (template, no database)", "/login", None),
                ("GET /api/v1/me (bearer token lookup)", "/api/v1/me", {"Authorization": f"Bearer {token}"}),
                ("GET /desk (signed-in page, session)", "/desk", {"Cookie": cookie}),
            ]
            for label, path, headers in routes:
                load = common.wrk(app.base, [path], args.seconds, connections, headers, warmup=0)
                line(f"{label} {database.label}", load, limit.rps)


if __name__ == "__main__":
    main()
