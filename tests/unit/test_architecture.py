"""Nothing below the controllers imports Litestar: rules, services, tables, the CLI's
domain work and adapters stay framework-free, so every entry point shares them."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "lending"
# The web layer: controllers, the web package, and the file that wires the app.
WEB_LAYER = {"app.py"}


def is_web_layer(path: Path) -> bool:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] in {"web", "api"} or relative.name == "controllers.py" or str(relative) in WEB_LAYER


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_web_layer_imports_litestar():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if is_web_layer(path):
            continue
        if any(name == "litestar" or name.startswith("litestar.") for name in imported_modules(path)):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_the_check_sees_a_litestar_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from litestar import get\n")
    assert "litestar" in imported_modules(sample)


def test_rules_do_no_io_and_read_no_clock():
    for path in PACKAGE.rglob("rules.py"):
        names = imported_modules(path)
        forbidden = {n for n in names if n.split(".")[0] in {"piccolo", "asyncpg", "aiosqlite", "stripe", "litestar"}
                     or n in {"lending.clock", "lending.db"}}
        assert forbidden == set(), path
        assert "datetime.now" not in path.read_text()


def test_only_the_clock_reads_the_time():
    readers = [
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
        if path.name != "clock.py" and any(call in path.read_text() for call in ("datetime.now(", "datetime.utcnow("))
    ]
    assert readers == []
