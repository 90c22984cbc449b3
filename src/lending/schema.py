"""Every table of every domain, bound to one engine. The server, the CLI, the tests and the
benchmarks call ``configure(url)`` to choose their database; it sits above the domains because
it names all of their tables (through ``piccolo_app``), which ``lending.db`` below them cannot."""

from __future__ import annotations

from piccolo.apps.migrations.tables import Migration
from piccolo.engine.base import Engine
from piccolo.table import Table

from lending import db, piccolo_conf
from lending.piccolo_app import APP_CONFIG


def all_tables() -> list[type[Table]]:
    """Ours and Piccolo's migration table."""
    return [*APP_CONFIG.table_classes, Migration]


def configure(database_url: str) -> Engine:
    """Bind every table to an engine for this URL (the same URL again keeps the engine and its
    pool); Piccolo's own tools (``piccolo migrations``) use it too."""
    engine = db.configure(database_url, tables=all_tables())
    piccolo_conf.DB = engine
    return engine
