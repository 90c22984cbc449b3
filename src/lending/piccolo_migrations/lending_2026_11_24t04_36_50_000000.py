"""Rules the tables cannot express: a member supports a suggestion at most once, held by the
database on SQLite and PostgreSQL alike, so two clicks at the same moment count once."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-24T04:36:50:000000"
VERSION = "1.38.0"
DESCRIPTION = "one support per member and suggestion"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lending", description=DESCRIPTION)

    async def unique_support():
        await engine_finder().run_ddl(
            "CREATE UNIQUE INDEX IF NOT EXISTS suggestion_support_once "
            "ON suggestion_support (suggestion, account)"
        )

    async def drop_unique_support():
        await engine_finder().run_ddl("DROP INDEX IF EXISTS suggestion_support_once")

    manager.add_raw(unique_support)
    manager.add_raw_backwards(drop_unique_support)
    return manager
