"""Each queued email keeps its language and the name it is sent under, so the outbox no longer
looks up the account or the venue when it sends (the next migration fills them in for messages
already waiting)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-07T02:41:07:522815"
VERSION = "1.38.0"
DESCRIPTION = "email language and sender name"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="lending", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Email",
        tablename="email",
        column_name="language",
        db_column_name="language",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 8,
            "default": "en",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="Email",
        tablename="email",
        column_name="sender_name",
        db_column_name="sender_name",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 200,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
