"""Lint and format are part of the tests: ruff (rules and line length in pyproject.toml) over
the code, the tests and the benchmarks, and djlint over the templates. Run `.venv/bin/ruff format .`
to put the formatting right."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_formatted():
    result = run("ruff", "format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_templates_lint_clean():
    result = run("djlint", "templates", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
