"""The embedded database engine: Piccolo's SQLite engine on long-lived connections.

Piccolo's ``SQLiteEngine`` opens a new aiosqlite connection, with its own thread, for every
query outside a transaction and for every transaction. Opening one costs more than the query:
it held every database route near 1,000 requests/s where one persistent connection serves
5,000-7,000 point selects/s (bench/engine.py, docs/performance.md). ``PooledSQLiteEngine``
keeps the connections open instead, without any change to the services:

* **one writer**: statements that change something (anything but a ``SELECT``) outside a
  transaction and every ``BEGIN IMMEDIATE``/``EXCLUSIVE`` transaction (``db.transaction(
  write=True)``) run on one connection, taken in turn inside the process. The write lock of
  SQLite is one per database, so a second writer connection could only wait for it; waiting
  in the process costs nothing and keeps the order fair. Other processes still meet SQLite's
  own lock (busy timeout), as before;
* **a few readers**: ``SELECT``s outside a transaction and deferred transactions take one of a
  small pool (``LENDING_SQLITE_READERS``, 4). In WAL mode readers never wait for the writer and
  see every committed write when their statement starts;
* WAL (set once, it persists in the file), ``synchronous=NORMAL`` (in WAL mode a commit
  survives the process being killed; only a power cut or OS crash can lose the last commits,
  never corrupt the file) and foreign keys on, set once per connection rather than per query.

Each query or transaction end runs shielded from cancellation (a request whose client went
away must not hand back a connection still in a transaction), and ``close()`` ends every
connection so the process can exit. Connections belong to one event loop; a query from
another loop (a test's portal thread, ``run_sync``) falls back to a connection of its own.

``LENDING_SQLITE_ENGINE=per-query`` is the escape hatch: Piccolo's own engine, as before.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory

ENGINE_SETTING = "LENDING_SQLITE_ENGINE"
READERS_SETTING = "LENDING_SQLITE_READERS"
DEFAULT_READERS = 4
ENGINE_KINDS = ("pooled", "per-query")

Release = Callable[[aiosqlite.Connection], Awaitable[None]]


def engine_kind(environ: dict[str, str] | None = None) -> str:
    value = (os.environ if environ is None else environ).get(ENGINE_SETTING, "").strip().lower() or "pooled"
    if value not in ENGINE_KINDS:
        raise ValueError(f"{ENGINE_SETTING} must be one of {', '.join(ENGINE_KINDS)}, not {value!r}")
    return value


def reader_count(environ: dict[str, str] | None = None) -> int:
    value = (os.environ if environ is None else environ).get(READERS_SETTING, "").strip()
    if not value:
        return DEFAULT_READERS
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise ValueError(f"{READERS_SETTING} must be a whole number from 1 to 64, not {value!r}")
    return int(value)


def is_read(sql: str) -> bool:
    """Whether a statement only reads, so a reader connection may run it. Anything unsure (a
    ``WITH`` that may end in an INSERT, a PRAGMA) goes to the writer: correct, only slower."""
    return sql.lstrip()[:6].upper() == "SELECT"


class ShieldedSQLiteEngine(SQLiteEngine):
    """Piccolo's SQLite engine opens a connection, with its own (non-daemon) thread, for each
    query outside a transaction. A query still running when the server stops, or abandoned when
    a request is cancelled because its client went away, would leave that thread waiting for
    ever, and the process could then not exit on SIGTERM. So each query runs shielded from
    cancellation, and ``close()`` lets the ones still running finish."""

    __slots__ = ("_running",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._running: set[asyncio.Task] = set()

    def _shielded(self, work: Awaitable[Any]) -> Awaitable[Any]:
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return asyncio.shield(task)

    async def _run_in_new_connection(self, *args, **kwargs):
        return await self._shielded(super()._run_in_new_connection(*args, **kwargs))

    async def finish_running_queries(self, timeout: float = 10.0) -> None:
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)

    async def close(self) -> None:
        await self.finish_running_queries()


class _Pool:
    """The connections of one event loop: one writer, taken in turn, and up to ``size`` readers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.writer: aiosqlite.Connection | None = None
        self.writer_turn = asyncio.Lock()
        self.idle_readers: list[aiosqlite.Connection] = []
        self.reader_slots = asyncio.Semaphore(size)
        self.open: set[aiosqlite.Connection] = set()
        self.closed = False

    def stop_now(self) -> None:
        """End every connection's thread without waiting (the loop may be gone)."""
        self.closed = True
        for connection in list(self.open):
            connection.stop()
        self.open.clear()
        self.idle_readers.clear()
        self.writer = None


class PooledSQLiteEngine(ShieldedSQLiteEngine):
    __slots__ = ("readers", "_pool", "connections_opened")

    def __init__(self, *, path: str, readers: int = DEFAULT_READERS, **kwargs) -> None:
        super().__init__(path=path, **kwargs)
        self.readers = readers
        self._pool: _Pool | None = None
        self.connections_opened = 0  # for tests and benchmarks: proves connections are reused

    # --- connections -----------------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        connection = aiosqlite.connect(**self.connection_kwargs)
        # A daemon thread: a process that never called close() can still exit (SQLite is safe
        # against that; the file is as after a crash, which WAL recovers on next open).
        connection._thread.daemon = True
        await connection
        connection.row_factory = dict_factory
        await connection.executescript("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
        self.connections_opened += 1
        return connection

    def _current_pool(self) -> _Pool | None:
        """This loop's pool, made on first use; None when another loop owns the connections."""
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is not None and pool.loop is not loop:
            if not pool.loop.is_closed() and pool.loop.is_running():
                return None
            pool.stop_now()  # its loop has ended: nobody can be using them
            pool = None
        if pool is None or pool.closed:
            pool = self._pool = _Pool(loop, self.readers)
        return pool

    async def _acquire(self, *, write: bool) -> tuple[aiosqlite.Connection, Release]:
        pool = self._current_pool()
        if pool is None:
            connection = await self._connect()

            async def close_own(used: aiosqlite.Connection) -> None:
                await used.close()

            return connection, close_own
        if write:
            try:
                await asyncio.wait_for(pool.writer_turn.acquire(), timeout=self._busy_timeout())
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked") from None
            try:
                if pool.writer is None:
                    pool.writer = await self._connect()
                    pool.open.add(pool.writer)
            except BaseException:
                pool.writer_turn.release()
                raise

            async def release_writer(used: aiosqlite.Connection) -> None:
                try:
                    await self._reset(pool, used)
                finally:
                    pool.writer_turn.release()

            return pool.writer, release_writer
        await pool.reader_slots.acquire()
        try:
            connection = pool.idle_readers.pop() if pool.idle_readers else await self._connect()
            pool.open.add(connection)
        except BaseException:
            pool.reader_slots.release()
            raise

        async def release_reader(used: aiosqlite.Connection) -> None:
            try:
                if await self._reset(pool, used):
                    pool.idle_readers.append(used)
            finally:
                pool.reader_slots.release()

        return connection, release_reader

    async def _reset(self, pool: _Pool, connection: aiosqlite.Connection) -> bool:
        """Make a connection fit for the next user; False (and closed) if it is not."""
        if not pool.closed:
            try:
                if connection.in_transaction:
                    await connection.rollback()
                return True
            except Exception:
                pass
        pool.open.discard(connection)
        if pool.writer is connection:
            pool.writer = None
        await connection.close()
        return False

    def _busy_timeout(self) -> float:
        return float(self.connection_kwargs.get("timeout", 5.0))

    # --- queries -----------------------------------------------------------------------------

    async def _run_in_new_connection(
        self, query: str, args: list[Any] | None = None, query_type: str = "generic", table=None
    ):
        # Not shielded: a statement outside a transaction is one autocommit step. If its caller
        # is cancelled, the connection goes back at once and the statement still finishes first
        # (each connection's thread runs what it is given in order), so the next user waits
        # behind it, as it would for the lock.
        connection, release = await self._acquire(write=not is_read(query))
        try:
            return await connection.execute_fetchall(query, args or [])
        finally:
            await release(connection)

    async def _run_in_existing_connection(
        self, connection, query: str, args: list[Any] | None = None, query_type: str = "generic", table=None
    ):
        # Foreign keys and the row factory were set when the connection was opened.
        return await connection.execute_fetchall(query, args or [])

    def transaction(
        self, transaction_type: TransactionType = TransactionType.deferred, allow_nested: bool = True
    ) -> PooledTransaction:
        return PooledTransaction(engine=self, transaction_type=transaction_type, allow_nested=allow_nested)

    async def close(self, timeout: float = 10.0) -> None:
        """Let the requests still running finish with their connections (up to ``timeout``),
        then end every connection."""
        await self.finish_running_queries(timeout)
        pool = self._pool
        if pool is None:
            return
        if pool.loop is asyncio.get_running_loop():
            try:  # every connection back: the writer's turn and every reader's slot
                async with asyncio.timeout(timeout):
                    await pool.writer_turn.acquire()
                    for _ in range(self.readers):
                        await pool.reader_slots.acquire()
            except TimeoutError:
                pass
        if self._pool is pool:
            self._pool = None
        pool.closed = True
        for connection in list(pool.idle_readers) + ([pool.writer] if pool.writer else []):
            pool.open.discard(connection)
            await connection.close()
        pool.stop_now()  # any still lent out (an open transaction) end when handed back

    def close_now(self) -> None:
        """End every connection without awaiting: for an engine being replaced."""
        if self._pool is not None:
            self._pool.stop_now()
            self._pool = None


class PooledTransaction(SQLiteTransaction):
    __slots__ = ("_release",)

    async def __aenter__(self) -> SQLiteTransaction:
        if self._parent is not None:
            return self._parent
        write = self.transaction_type is not TransactionType.deferred
        self.connection, self._release = await self.engine._acquire(write=write)
        try:
            await self.begin()
        except BaseException:
            await self.engine._shielded(self._release(self.connection))
            raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def __aexit__(self, exception_type, exception, traceback) -> bool:
        if self._parent:
            return exception is None
        try:
            # Shielded: a cancelled request still ends its transaction before the connection
            # goes back to the pool.
            await self.engine._shielded(self._finish(failed=exception is not None))
        finally:
            self.engine.current_transaction.reset(self.context)
        return exception is None

    async def _finish(self, *, failed: bool) -> None:
        try:
            if failed:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                await self.commit()
        finally:
            await self._release(self.connection)
