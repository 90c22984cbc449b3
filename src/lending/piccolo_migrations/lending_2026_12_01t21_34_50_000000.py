"""Rules the lending tables cannot express, held by the database on SQLite and PostgreSQL
alike: one open loan per item (so two check-outs of the same copy at the same moment cannot
both succeed), one active hold per member and thing, one ready hold per copy."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-01T21:34:50:000000"
VERSION = "1.38.0"
DESCRIPTION = "one open loan per item; one active hold per member and thing"

INDEXES = {
    "loan_one_open": "CREATE UNIQUE INDEX IF NOT EXISTS loan_one_open ON loan (item) WHERE returned_at IS NULL",
    "hold_one_active": "CREATE UNIQUE INDEX IF NOT EXISTS hold_one_active ON hold (member, item_group) "
                       "WHERE status IN ('waiting', 'ready')",
    "hold_one_ready_copy": "CREATE UNIQUE INDEX IF NOT EXISTS hold_one_ready_copy ON hold (item) "
                           "WHERE status = 'ready'",
}


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lending", description=DESCRIPTION)

    async def create_indexes():
        for sql in INDEXES.values():
            await engine_finder().run_ddl(sql)

    async def drop_indexes():
        for name in INDEXES:
            await engine_finder().run_ddl(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
