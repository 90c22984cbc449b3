"""Rules the membership tables cannot express, held by the database on SQLite and PostgreSQL
alike: a member has at most one open (pending, active or past-due) membership, so two
sign-ups or renewals at the same moment cannot make two."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-01T19:32:50:000000"
VERSION = "1.38.0"
DESCRIPTION = "one open membership per member"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lending", description=DESCRIPTION)

    async def one_open_membership():
        await engine_finder().run_ddl(
            "CREATE UNIQUE INDEX IF NOT EXISTS membership_one_open ON membership (member) "
            "WHERE status IN ('pending', 'active', 'past_due')"
        )

    async def drop_one_open_membership():
        await engine_finder().run_ddl("DROP INDEX IF EXISTS membership_one_open")

    manager.add_raw(one_open_membership)
    manager.add_raw_backwards(drop_one_open_membership)
    return manager
