"""The database: an engine chosen from DATABASE_URL, one transaction helper, migrations.

Piccolo binds every table to an engine. ``configure`` builds the engine from a URL and binds
the tables it is given to it (``lending.schema.configure`` gives every table of the app), so
the server, the CLI and the tests can each pick their database explicitly instead of through
import-time globals. This module is infrastructure: it imports no domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.table import Table

from lending import sqlite_engine
from lending.settings import sqlite_path

os.environ.setdefault("PICCOLO_CONF", "lending.piccolo_conf")

SQLITE_BUSY_TIMEOUT_SECONDS = 30

_engine: Engine | None = None
_engine_key: str | None = None
_started = False


def normalise_postgres_url(url: str) -> str:
    """asyncpg accepts only postgresql:// (or postgres://); SQLAlchemy-style
    ``postgresql+asyncpg://`` URLs are common in deployment files, so accept them too."""
    scheme, rest = url.split("://", 1)
    if scheme.startswith("postgresql+") or scheme == "postgres":
        scheme = "postgresql"
    return f"{scheme}://{rest}"


def make_engine(database_url: str) -> Engine:
    """SQLite on long-lived connections (``sqlite_engine``) unless LENDING_SQLITE_ENGINE=per-query
    asks for Piccolo's own engine; PostgreSQL through asyncpg."""
    if database_url.startswith("sqlite://"):
        path = str(sqlite_path(database_url))
        if sqlite_engine.engine_kind() == "per-query":
            return sqlite_engine.ShieldedSQLiteEngine(path=path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
        return sqlite_engine.PooledSQLiteEngine(
            path=path, readers=sqlite_engine.reader_count(), timeout=SQLITE_BUSY_TIMEOUT_SECONDS
        )
    return PostgresEngine(config={"dsn": normalise_postgres_url(database_url)})


def configure(database_url: str, *, tables: Iterable[type[Table]]) -> Engine:
    """Bind ``tables`` to an engine for this URL; calling it again with the same URL keeps the
    engine (and its pool). ``lending.schema.configure`` passes every table of the app."""
    global _engine, _engine_key, _started
    key = f"{database_url} {sqlite_engine.engine_kind()}"
    if _engine is not None and _engine_key == key:
        return _engine
    if database_url.startswith("sqlite://"):
        sqlite_path(database_url).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url)
    if isinstance(_engine, sqlite_engine.PooledSQLiteEngine):
        _engine.close_now()  # the engine being replaced lets its connections go
    for table in tables:
        table._meta.db = engine
    _engine, _engine_key, _started = engine, key, False
    return engine


def engine() -> Engine:
    if _engine is None:
        raise RuntimeError("lending.schema.configure() has not been called")
    return _engine


def is_postgres() -> bool:
    return isinstance(engine(), PostgresEngine)


async def start() -> None:
    """Once per process: WAL on SQLite (it persists in the file), a pool on PostgreSQL."""
    global _started
    if _started:
        return
    _started = True
    current = engine()
    if isinstance(current, SQLiteEngine):
        await current.run_ddl("PRAGMA journal_mode=WAL")
    elif isinstance(current, PostgresEngine):
        await current.start_connection_pool(min_size=1, max_size=10)


async def stop() -> None:
    global _started
    current = _engine
    if not _started:
        return
    _started = False
    if isinstance(current, sqlite_engine.ShieldedSQLiteEngine):
        await current.close()
    elif isinstance(current, PostgresEngine):
        await current.close_connection_pool()


class Statement:
    """Parameterised SQL written once, beside what it reads, for a hot path: named places
    (``{member}``) become the engine's positional ones, and a list fills one place per item
    (``code IN ({codes})``). Piccolo would otherwise compile its query again on every call,
    which costs more CPU than the database takes to answer."""

    _PLACE = re.compile(r"\{(\w+)\}")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._pieces = self._PLACE.split(sql)  # text, name, text, name, ..., text

    def bind(self, **values: object) -> tuple[str, list[object]]:
        """The SQL with Piccolo's ``{}`` places, and its arguments in order."""
        text, args = [self._pieces[0]], []
        for index in range(1, len(self._pieces), 2):
            value = values[self._pieces[index]]
            if isinstance(value, (list, tuple)):
                text.append(", ".join(["{}"] * len(value)))
                args.extend(value)
            else:
                text.append("{}")
                args.append(value)
            text.append(self._pieces[index + 1])
        return "".join(text), args

    async def rows(self, table: type[Table], **values: object) -> list[dict]:
        """Run it (through ``table``'s engine) and return the rows."""
        sql, args = self.bind(**values)
        return await table.raw(sql, *args).run()


@dataclass
class _Open:
    """What the outermost open transaction carries for infrastructure: marks (``mark``) and
    work to do once it has committed (``after_commit``)."""

    marks: set[str] = field(default_factory=set)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


_open: contextvars.ContextVar[_Open | None] = contextvars.ContextVar("lending_transaction", default=None)


@contextlib.asynccontextmanager
async def transaction(*, write: bool = False) -> AsyncIterator[object]:
    """One transaction on either engine. ``write=True`` takes SQLite's write lock at the
    start (BEGIN IMMEDIATE), so a read-then-write cannot interleave with another writer;
    on PostgreSQL, services lock the rows they change. Inside another one it is part of it."""
    current = engine()
    if isinstance(current, SQLiteEngine):
        kind = TransactionType.immediate if write else TransactionType.deferred
        context = current.transaction(transaction_type=kind)
    else:
        context = current.transaction()
    if _open.get() is not None:
        async with context as txn:
            yield txn
        return
    state = _Open()
    token = _open.set(state)
    try:
        async with context as txn:
            yield txn
    finally:
        _open.reset(token)
    for work in state.after_commit:
        work()


def mark(name: str) -> None:
    """Note something about the open transaction (``marked`` reads it until it ends)."""
    if (state := _open.get()) is not None:
        state.marks.add(name)


def marked(name: str) -> bool:
    state = _open.get()
    return state is not None and name in state.marks


def after_commit(work: Callable[[], None]) -> None:
    """Run ``work`` once the open transaction has committed (at once outside one)."""
    if (state := _open.get()) is not None:
        state.after_commit.append(work)
    else:
        work()


# PostgreSQL's data exceptions for a value it was given (22000 is also asyncpg's own, for an
# argument it cannot encode, such as an integer beyond the column's 32 or 64 bits): string too
# long for its column, number out of range, NUL or another character UTF-8 text cannot hold.
_REFUSED_VALUE_STATES = {"22000", "22001", "22003", "22021", "22P05"}


def refuses_value(exc: BaseException) -> bool:
    """Whether ``exc`` is the database refusing a value a query was given: an integer beyond
    what the column holds, text with a NUL character or too long for its column. Such values
    come from what a client sent, so they are bad input, not a fault of the app."""
    if isinstance(exc, OverflowError):
        return "SQLite INTEGER" in str(exc)  # sqlite3 binding an integer beyond 64 bits
    import asyncpg

    return isinstance(exc, asyncpg.exceptions.DataError) and exc.sqlstate in _REFUSED_VALUE_STATES


def in_transaction() -> bool:
    """Whether this task is inside a transaction (a nested ``transaction()`` joins it, so a
    failed statement there spoils the whole outer one)."""
    return engine().current_transaction.get() is not None


def contains(column, text: str):
    """Case-insensitive 'column contains text' on either engine (SQLite's LIKE already
    ignores case for ASCII; PostgreSQL needs ILIKE)."""
    pattern = f"%{text}%"
    return column.ilike(pattern) if is_postgres() else column.like(pattern)


def is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE constraint failed" in str(exc)
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    return isinstance(exc, asyncpg.exceptions.UniqueViolationError)


@contextlib.contextmanager
def unique_violation_as(conflict: Callable[[], Exception]) -> Iterator[None]:
    """The database's unique constraints have the last word on a race (two people adding the
    same name at once); this turns their error into the domain error a person understands."""
    try:
        yield
    except Exception as exc:
        if is_unique_violation(exc):
            raise conflict() from exc
        raise


async def ping(timeout: float = 2.0) -> bool:
    try:
        await asyncio.wait_for(engine().run_ddl("SELECT 1"), timeout=timeout)
    except Exception:
        return False
    return True


MIGRATION_LOCK_KEY = 0x6C656E64696E67  # "lending": the PostgreSQL advisory lock migrations hold


@contextlib.asynccontextmanager
async def _one_migrator() -> AsyncIterator[None]:
    """One process at a time applies migrations. Every command migrates first, so app processes
    (and a cron job) starting together after an upgrade would otherwise each create the same
    tables, and all but one would fail. PostgreSQL: an advisory lock on a connection of its own
    (closing it lets go, even if this process dies). SQLite, one machine: a lock file beside
    the database."""
    current = engine()
    if isinstance(current, PostgresEngine):
        import asyncpg

        connection = await asyncpg.connect(current.config["dsn"])
        try:
            await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            yield
        finally:
            await connection.close()
        return
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock, as before
        yield
        return
    database = Path(current.path)
    with open(database.with_name(database.name + ".migrate-lock"), "a") as lock:
        await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


async def migrate(*, quiet: bool = True) -> None:
    """Apply pending migrations of our one Piccolo app; raise if one fails."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    stream = io.StringIO() if quiet else None
    async with _one_migrator():
        with contextlib.redirect_stdout(stream) if stream else contextlib.nullcontext():
            result = await run_forwards(app_name="lending")
    if not result.success:
        raise RuntimeError(f"migration failed: {result.message}")


def migrations_folder() -> Path:
    return Path(__file__).parent / "piccolo_migrations"
