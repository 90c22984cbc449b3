"""Rules the tables cannot express: category names unique within their parent (ignoring
case), on SQLite and PostgreSQL alike."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-24T04:21:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "category names unique within their parent"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lending", description=DESCRIPTION)

    async def unique_category_names():
        await engine_finder().run_ddl(
            "CREATE UNIQUE INDEX IF NOT EXISTS category_parent_name "
            "ON category (COALESCE(parent, 0), lower(name))"
        )

    async def drop_unique_category_names():
        await engine_finder().run_ddl("DROP INDEX IF EXISTS category_parent_name")

    manager.add_raw(unique_category_names)
    manager.add_raw_backwards(drop_unique_category_names)
    return manager
