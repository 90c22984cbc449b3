"""The configuration's version: one number every process reads per request, to know when to
forget what it keeps of the venue's settings, categories, loan policy and message words."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import BigInt
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-07T03:05:54:347950"
VERSION = "1.38.0"
DESCRIPTION = "config version"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="lending", description=DESCRIPTION
    )

    manager.add_table(
        class_name="ConfigVersion",
        tablename="config_version",
        schema=None,
        columns=None,
    )

    manager.add_column(
        table_class_name="ConfigVersion",
        tablename="config_version",
        column_name="version",
        db_column_name="version",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": 0,
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
