"""Messages already waiting in the outbox take their language from their account and their
sender's name from the venue, as the sender used to look them up."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-07T02:41:08:000000"
VERSION = "1.38.0"
DESCRIPTION = "waiting emails keep their language and sender name"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lending", description=DESCRIPTION)

    async def fill_waiting_messages():
        engine = engine_finder()
        await engine.run_ddl("UPDATE email SET language = COALESCE((SELECT account.language FROM account "
                             "WHERE account.id = email.account), 'en') WHERE sent_at IS NULL")
        await engine.run_ddl("UPDATE email SET sender_name = COALESCE((SELECT venue.name FROM venue "
                             "ORDER BY venue.id LIMIT 1), '') WHERE sent_at IS NULL")

    manager.add_raw(fill_waiting_messages)
    return manager
