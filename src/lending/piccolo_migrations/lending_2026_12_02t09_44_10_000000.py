"""One text per kind of message and language: a coordinator's own words for a message
replace the built-in ones, so two for the same kind and language would be ambiguous."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T09:44:10:000000"
VERSION = "1.38.0"
DESCRIPTION = "one email template per kind and language"

INDEXES = {
    "email_template_one": "CREATE UNIQUE INDEX IF NOT EXISTS email_template_one ON email_template (kind, language)",
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
