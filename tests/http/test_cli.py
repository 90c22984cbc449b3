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
    return subprocess.run(
        [LENDING, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def accounts(cwd: Path) -> list[tuple]:
    with sqlite3.connect(cwd / "var" / "lending.db") as connection:
        return connection.execute("SELECT email, role FROM account ORDER BY id").fetchall()


def test_user_and_token_commands(tmp_path):
    assert run("migrate", cwd=tmp_path).returncode == 0
    created = run(
        "user",
        "create",
        "--email",
        "Co@Example.org",
        "--name",
        "Co Ordinator",
        "--role",
        "coordinator",
        "--password",
        "a long password",
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    assert "Created coordinator Co Ordinator <co@example.org>" in created.stdout
    link = run(
        "user",
        "create",
        "--email",
        "lw@example.org",
        "--name",
        "Link",
        "--role",
        "link_worker",
        "--password",
        "a long password",
        "--organisation",
        "Canton Surgery",
        cwd=tmp_path,
    )
    assert link.returncode == 0 and "Created the referring organisation Canton Surgery" in link.stdout
    token = run("token", "create", "--email", "co@example.org", cwd=tmp_path)
    assert token.returncode == 0 and token.stdout.strip().startswith("lnd_")
    revoked = run("token", "revoke", "--email", "co@example.org", cwd=tmp_path)
    assert revoked.returncode == 0 and "Revoked 1 API token" in revoked.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["user", "create", "--email", "a@example.org", "--name", "A", "--role", "wizard", "--password", "x" * 12],
            "Choose a role",
        ),
        (
            ["user", "create", "--email", "a@example.org", "--name", "A", "--role", "volunteer", "--password", "short"],
            "at least 10 characters",
        ),
        (
            [
                "user",
                "create",
                "--email",
                "a@example.org",
                "--name",
                "A",
                "--role",
                "link_worker",
                "--password",
                "x" * 12,
            ],
            "referring organisation",
        ),
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
    for email in (
        "coordinator@demo.example",
        "volunteer@demo.example",
        "linkworker@demo.example",
        "linkworker2@demo.example",
        "member@demo.example",
        "member2@demo.example",
        "member3@demo.example",
    ):
        assert email in first.stdout
    assert "Added the membership Pay what you can." in first.stdout
    second = run("demo", cwd=tmp_path)
    assert second.returncode == 0 and "Added" not in second.stdout and "Membership for" not in second.stdout
    assert len(accounts(tmp_path)) == 9  # the seven sign-ins and two referred members
    assert {role for _, role in accounts(tmp_path)} == {"coordinator", "volunteer", "link_worker", "member"}


def test_demo_refuses_a_database_with_real_accounts(tmp_path):
    assert (
        run(
            "user", "create", "--email", "real@example.org", "--name", "Real", "--role", "member", cwd=tmp_path
        ).returncode
        == 0
    )
    refused = run("demo", cwd=tmp_path)
    assert refused.returncode == 2 and "real accounts" in refused.stderr
    assert accounts(tmp_path) == [("real@example.org", "member")]


# --- lending items import / export ---------------------------------------------------------------


def items(cwd: Path) -> list[tuple]:
    with sqlite3.connect(cwd / "var" / "lending.db") as connection:
        return connection.execute(
            "SELECT item.code, item_group.name FROM item JOIN item_group ON item.item_group = item_group.id "
            "ORDER BY item.id"
        ).fetchall()


GOOD_CSV = (
    "Name,Category,Copies,Replacement value,Parts\r\n"
    "Cordless drill,Tools > Drills,2,89.99,Drill|Charger\r\n"
    "Hedge trimmer,Garden,,45,\r\n"
    "Tent,,,,\r\n"
)


def test_items_import_dry_run_import_and_export(tmp_path):
    (tmp_path / "things.csv").write_text(GOOD_CSV, encoding="utf-8-sig")
    assert run("migrate", cwd=tmp_path).returncode == 0
    dry = run("items", "import", "things.csv", "--dry-run", "--create-categories", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(
        "3 rows would be imported (4 items); categories to create: Tools, Tools > Drills, Garden."
    )
    assert items(tmp_path) == []
    without = run("items", "import", "things.csv", cwd=tmp_path)
    assert without.returncode == 2 and 'line 2: category: there is no category "Tools > Drills"' in without.stderr
    done = run("items", "import", "things.csv", "--create-categories", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Imported 3 rows (4 items); categories created: Tools, Tools > Drills, Garden."
    assert [name for _, name in items(tmp_path)] == ["Cordless drill", "Cordless drill", "Hedge trimmer", "Tent"]

    exported = run("items", "export", "catalogue.csv", cwd=tmp_path)
    assert exported.returncode == 0 and exported.stdout.strip() == "Exported 4 items to catalogue.csv."
    data = (tmp_path / "catalogue.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfcode,name,description,category,")  # a BOM, so Excel reads it as UTF-8
    lines = data.decode("utf-8-sig").splitlines()
    assert len(lines) == 5 and lines[1].split(",")[:4] == [
        items(tmp_path)[0][0],
        "Cordless drill",
        "",
        "Tools > Drills",
    ]
    to_stdout = run("items", "export", "-", cwd=tmp_path)
    assert to_stdout.returncode == 0 and to_stdout.stdout.splitlines() == lines
    assert to_stdout.stderr.strip() == "Exported 4 items."
    # The export is itself an import file: its codes are now taken, so importing it again is refused.
    again = run("items", "import", "catalogue.csv", "--keep-codes", cwd=tmp_path)
    assert again.returncode == 2 and "is already the code of" in again.stderr
    assert len(items(tmp_path)) == 4


def test_items_import_of_a_bad_file_lists_every_problem_and_writes_nothing(tmp_path):
    rows = ["name,category,loan_days,replacement_value"] + [f"Thing {n},,7," for n in range(10)]
    rows[3] = "Thing 2,,two weeks,"
    rows[7] = ",,7,lots"
    rows.append("Last thing,,7,12,50")  # a stray comma: one value too many
    (tmp_path / "bad.csv").write_text("\n".join(rows) + "\n")
    result = run("items", "import", "bad.csv", cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [
        "lending: error: The file has 4 problems; nothing was imported.",
        'line 4: loan_days: "two weeks" is not a whole number of days.',
        "line 8: name: every item needs a name.",
        'line 8: replacement_value: "lots" is not an amount in pounds, like 45 or 12.50.',
        "line 12: This row has 5 values but the header has 4 columns.",
    ]
    assert result.stdout == "" and items(tmp_path) == []
    dry = run("items", "import", "bad.csv", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 2 and dry.stderr == result.stderr


def test_items_import_caps_the_problems_it_prints(tmp_path):
    (tmp_path / "bad.csv").write_text("name,copies\n" + "".join(f"Thing {n},many\n" for n in range(60)))
    result = run("items", "import", "bad.csv", cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and lines[0] == "lending: error: The file has 60 problems; nothing was imported."
    assert lines[1].startswith("line 2: copies:") and lines[50].startswith("line 51: copies:")
    assert lines[51:] == ["... and 10 more"]


def test_items_import_shows_progress_on_large_files(tmp_path):
    (tmp_path / "big.csv").write_text("name\n" + "".join(f"Thing {n}\n" for n in range(1200)))
    result = run("items", "import", "big.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Checking 1200 rows...",
        "Imported 500/1200 rows",
        "Imported 1000/1200 rows",
        "Imported 1200/1200 rows",
    ]
    assert result.stdout.strip() == "Imported 1200 rows (1200 items)." and len(items(tmp_path)) == 1200
    small = run("items", "import", "-", cwd=tmp_path)  # stdin is empty here
    assert small.returncode == 2 and "The file is empty" in small.stderr


def test_items_import_reads_stdin_and_refuses_unreadable_files(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "LENDING_DEMO"}}
    piped = subprocess.run(
        [LENDING, "items", "import", "-"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        input=b"name\nLadder\n",
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0 and piped.stdout.decode().strip() == "Imported 1 row (1 item)."
    (tmp_path / "latin1.csv").write_bytes("name\nLadder\nCaf\xe9 urn\n".encode("cp1252"))
    for args, message in (
        (["missing.csv"], "Cannot read missing.csv"),
        (["latin1.csv"], 'Line 3 is not UTF-8 text. Save the file as "CSV UTF-8"'),
    ):
        result = run("items", "import", *args, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert [name for _, name in items(tmp_path)] == ["Ladder"]
