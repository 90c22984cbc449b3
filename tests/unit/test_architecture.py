"""The shape of the code. The domains stand in one order and work across them sits above
(import-linter's contracts in pyproject.toml, docs/architecture.md); no import of ours hides
inside a function to get round that order; nothing below the controllers imports Litestar,
so every entry point shares the same rules and services."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "lending"
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
# The command line imports each command's work when that command runs, so `lending --help` and
# a mistyped flag answer at once; it is the top of the order, so nothing is got round.
LAZY_IMPORTS_ALLOWED = {PACKAGE / "cli.py"}


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin"}
    if pythonpath is not None:
        environment["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


def test_the_domains_keep_their_order():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("added", "reported"),
    [
        ("from lending.loans import tables as _loans", "lending.catalog.rules -> lending.loans.tables"),
        ("import litestar as _litestar", "lending.catalog is not allowed to import litestar"),
    ],
)
def test_the_contracts_see_a_broken_rule(tmp_path, added, reported):
    """A copy of the package where the catalogue reaches up into lending, or into the web
    framework, fails its contract and names the import, so the test above cannot pass by
    checking nothing."""
    shutil.copytree(PACKAGE, tmp_path / "lending", ignore=shutil.ignore_patterns("__pycache__", "locale"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    rules = tmp_path / "lending" / "catalog" / "rules.py"
    rules.write_text(rules.read_text() + f"\n{added}  # noqa: E402\n")
    result = lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode != 0
    assert reported in result.stdout


def function_imports(path: Path) -> list[str]:
    """Imports of our own modules made inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                names = (
                    [alias.name for alias in inner.names]
                    if isinstance(inner, ast.Import)
                    else [inner.module or ""]
                    if isinstance(inner, ast.ImportFrom)
                    else []
                )
                found += [
                    f"{path.name}:{inner.lineno} {name}" for name in names if name.split(".")[0] in {"lending", "admin"}
                ]
    return found


def test_no_import_of_ours_hides_inside_a_function():
    paths = [*PACKAGE.rglob("*.py"), *(ROOT / "admin").rglob("*.py")]
    hidden = [found for path in paths if path not in LAZY_IMPORTS_ALLOWED for found in function_imports(path)]
    assert hidden == []


def test_the_hidden_import_check_sees_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("async def f():\n    from lending.loans import holds\n    return holds\n")
    assert function_imports(sample) == ["sample.py:2 lending.loans"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_rules_do_no_io_and_read_no_clock():
    for path in PACKAGE.rglob("rules.py"):
        names = imported_modules(path)
        forbidden = {
            n
            for n in names
            if n.split(".")[0] in {"piccolo", "asyncpg", "aiosqlite", "stripe", "litestar"}
            or n in {"lending.clock", "lending.db"}
        }
        assert forbidden == set(), path
        assert "datetime.now" not in path.read_text()


def test_only_the_clock_reads_the_time():
    readers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "clock.py" and any(call in path.read_text() for call in ("datetime.now(", "datetime.utcnow("))
    ]
    assert readers == []
