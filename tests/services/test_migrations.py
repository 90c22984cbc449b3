"""The committed migrations and the table classes describe the same schema, and the
migrations run forwards on an empty SQLite file and an empty PostgreSQL database."""

from __future__ import annotations

import pytest

from lending import db, schema
from lending.piccolo_app import APP_CONFIG
from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database, skip_or_fail


async def test_migrations_hold_every_change_to_the_tables():
    from piccolo.apps.migrations.commands.new import AutoMigrationManager

    statements = await AutoMigrationManager().get_alter_statements(app_config=APP_CONFIG)
    pending = [s for group in statements for s in group.statements]
    assert pending == [], (
        "The tables changed without a migration; run "
        "'piccolo migrations new lending --auto' (PICCOLO_CONF=lending.piccolo_conf) and commit it:\n"
        + "\n".join(pending)
    )


def expected_columns() -> dict[str, dict[str, bool]]:
    """{table: {column: nullable}} from the table classes."""
    return {
        table._meta.tablename: {c._meta.db_column_name: bool(c._meta.null) for c in table._meta.columns}
        for table in APP_CONFIG.table_classes
    }


async def actual_columns() -> dict[str, dict[str, bool]]:
    found: dict[str, dict[str, bool]] = {}
    engine = db.engine()
    for table in APP_CONFIG.table_classes:
        name = table._meta.tablename
        if db.is_postgres():
            rows = await engine.run_ddl(
                "SELECT column_name, is_nullable FROM information_schema.columns "
                f"WHERE table_schema = 'public' AND table_name = '{name}'"
            )
            found[name] = {r["column_name"]: r["is_nullable"] == "YES" for r in rows}
        else:
            rows = await engine.run_ddl(f"PRAGMA table_info('{name}')")
            found[name] = {r["name"]: not r["notnull"] and not r["pk"] for r in rows}
    return found


async def unique_columns() -> set[tuple[str, str]]:
    engine = db.engine()
    found = set()
    for table in APP_CONFIG.table_classes:
        name = table._meta.tablename
        if db.is_postgres():
            rows = await engine.run_ddl(
                "SELECT a.attname AS column FROM pg_index i "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                f"WHERE i.indrelid = '{name}'::regclass AND i.indisunique AND NOT i.indisprimary "
                "AND array_length(i.indkey, 1) = 1"
            )
            found |= {(name, r["column"]) for r in rows}
        else:
            for index in await engine.run_ddl(f"PRAGMA index_list('{name}')"):
                if index["unique"] and index["origin"] != "pk":
                    columns = await engine.run_ddl(f"PRAGMA index_info('{index['name']}')")
                    if len(columns) == 1:
                        found.add((name, columns[0]["name"]))
    return found


async def check_schema_matches_tables() -> None:
    assert await actual_columns() == expected_columns()
    wanted_unique = {
        (table._meta.tablename, c._meta.db_column_name)
        for table in APP_CONFIG.table_classes
        for c in table._meta.columns
        if c._meta.unique
    }
    assert wanted_unique <= await unique_columns()


async def test_migrations_run_forwards_on_an_empty_sqlite_file(tmp_path):
    schema.configure(f"sqlite:///{tmp_path / 'empty.db'}")
    await db.start()
    try:
        await db.migrate()
        await check_schema_matches_tables()
        await db.migrate()  # running again changes nothing
        rows = await db.engine().run_ddl("PRAGMA journal_mode")
        assert rows[0]["journal_mode"] == "wal"
    finally:
        await db.stop()


@pytest.mark.postgres
async def test_migrations_run_forwards_on_an_empty_postgres_database(tmp_path):
    if not POSTGRES_URL:
        skip_or_fail("LENDING_TEST_POSTGRES_URL is not set")
    url, name = await create_postgres_database(POSTGRES_URL)
    schema.configure(url)
    await db.start()
    try:
        await db.migrate()
        await check_schema_matches_tables()
        await db.migrate()
    finally:
        await db.stop()
        schema.configure(f"sqlite:///{tmp_path / 'unused.db'}")
        await drop_postgres_database(POSTGRES_URL, name)


async def test_write_transaction_rolls_back_everything_on_error(database):
    from lending.members.tables import Organisation

    with pytest.raises(RuntimeError):
        async with db.transaction(write=True):
            await Organisation.insert(Organisation(name="Half written")).run()
            raise RuntimeError("boom")
    assert await Organisation.count().run() == 0
