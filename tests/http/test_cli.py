"""The ``lending`` command, run as a person would: one clear line and a non-zero exit on
bad input, and nothing half-written."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

LENDING = str(Path(sys.executable).parent / "lending")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "LENDING_DEMO"}}
    environment.update(env or {})
    return subprocess.run([LENDING, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def accounts(cwd: Path) -> list[tuple]:
    with sqlite3.connect(cwd / "var" / "lending.db") as connection:
        return connection.execute("SELECT email, role FROM account ORDER BY id").fetchall()


def test_user_and_token_commands(tmp_path):
    assert run("migrate", cwd=tmp_path).returncode == 0
    created = run("user", "create", "--email", "Co@Example.org", "--name", "Co Ordinator", "--role", "coordinator",
                  "--password", "a long password", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert "Created coordinator Co Ordinator <co@example.org>" in created.stdout
    link = run("user", "create", "--email", "lw@example.org", "--name", "Link", "--role", "link_worker",
               "--password", "a long password", "--organisation", "Canton Surgery", cwd=tmp_path)
    assert link.returncode == 0 and "Created the referring organisation Canton Surgery" in link.stdout
    token = run("token", "create", "--email", "co@example.org", cwd=tmp_path)
    assert token.returncode == 0 and token.stdout.strip().startswith("lnd_")
    revoked = run("token", "revoke", "--email", "co@example.org", cwd=tmp_path)
    assert revoked.returncode == 0 and "Revoked 1 API token" in revoked.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["user", "create", "--email", "a@example.org", "--name", "A", "--role", "wizard", "--password", "x" * 12],
         "Choose a role"),
        (["user", "create", "--email", "a@example.org", "--name", "A", "--role", "volunteer", "--password", "short"],
         "at least 10 characters"),
        (["user", "create", "--email", "a@example.org", "--name", "A", "--role", "link_worker", "--password",
          "x" * 12], "referring organisation"),
        (["user", "create", "--email", "bad", "--name", "A", "--role", "member"], "email address like"),
        (["user", "create", "--name", "A", "--role", "member"], "--email"),
        (["token", "create", "--email", "nobody@example.org"], "no account with the email"),
        (["run", "--workers", "0"], "--workers"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run(*args, cwd=tmp_path, env={"LENDING_DEMO": "1"})
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # argparse adds a usage line; ours are one line
    assert "Traceback" not in result.stderr
    if (tmp_path / "var" / "lending.db").exists():
        assert accounts(tmp_path) == []


def test_duplicate_email_is_refused_and_the_first_account_kept(tmp_path):
    args = ["user", "create", "--email", "v@example.org", "--name", "V", "--role", "volunteer", "--password", "x" * 12]
    assert run(*args, cwd=tmp_path).returncode == 0
    again = run(*args, cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert accounts(tmp_path) == [("v@example.org", "volunteer")]


def test_run_without_secret_key_explains_in_one_line(tmp_path):
    result = run("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("lending: configuration error: SECRET_KEY is not set")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_database_is_one_line(tmp_path):
    result = run("migrate", cwd=tmp_path, env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 1
    assert result.stderr.startswith("lending: error:") and "Traceback" not in result.stderr


def test_demo_is_safe_to_run_twice_and_prints_sign_ins(tmp_path):
    first = run("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    for email in ("coordinator@demo.example", "volunteer@demo.example", "linkworker@demo.example",
                  "member@demo.example", "member2@demo.example"):
        assert email in first.stdout
    second = run("demo", cwd=tmp_path)
    assert second.returncode == 0 and "Added" not in second.stdout
    assert len(accounts(tmp_path)) == 5
    assert {role for _, role in accounts(tmp_path)} == {"coordinator", "volunteer", "link_worker", "member"}


def test_demo_refuses_a_database_with_real_accounts(tmp_path):
    assert run("user", "create", "--email", "real@example.org", "--name", "Real", "--role", "member",
               cwd=tmp_path).returncode == 0
    refused = run("demo", cwd=tmp_path)
    assert refused.returncode == 2 and "real accounts" in refused.stderr
    assert accounts(tmp_path) == [("real@example.org", "member")]
