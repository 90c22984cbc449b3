"""What each process keeps in memory of the venue's configuration (its settings and hours, the
category tree, the loan policy, the coordinator's words for messages), and the one number that
says when any of it changed, in any process.

Every page and every due date reads the configuration and it changes rarely, so each process
keeps a copy. A change bumps ``config_version.version`` in its own transaction (``changed``);
each request reads that number once (``refresh``, from the request middleware) and forgets
every kept copy when it moved. So a coordinator's change shows on the next request of every
process, and a request costs one small read instead of reloading the configuration.

Infrastructure: the domains register what they keep (``keep``); this imports none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from piccolo.columns import BigInt
from piccolo.table import Table

from lending import db

T = TypeVar("T")


class ConfigVersion(Table, tablename="config_version"):
    """One row (id 1): how many times the configuration has changed."""

    version = BigInt(default=0)


_CHANGED = "configuration changed"
_forget: list[Callable[[], None]] = []
_seen: int | None = None

# Both engines take this form of upsert; a database emptied by hand (the tests do) has no row.
_BUMP = (
    "INSERT INTO config_version (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = config_version.version + 1"
)


def keep(forget: Callable[[], None]) -> None:
    """Register what forgets one kept copy; it is called whenever the configuration changed."""
    _forget.append(forget)


def forget_all() -> None:
    for forget in _forget:
        forget()


async def refresh() -> None:
    """At the start of a request: forget every kept copy if the configuration changed since
    this process last looked (one statement)."""
    global _seen
    rows = await ConfigVersion.raw("SELECT version FROM config_version WHERE id = 1").run()
    version = rows[0]["version"] if rows else 0
    if version != _seen:
        forget_all()
        _seen = version


async def changed() -> None:
    """Inside the transaction that changes the configuration: every process forgets its copy,
    this one at once and again when the change has committed (a copy another request loaded
    meanwhile held the old configuration); until then this transaction keeps nothing it reads."""
    await ConfigVersion.raw(_BUMP).run()
    db.mark(_CHANGED)
    forget_all()
    db.after_commit(forget_all)


class Kept(Generic[T]):
    """One piece of configuration a process keeps: loaded on first use (requests that arrive
    together while it loads share one read), forgotten whenever the configuration changes.
    Read inside a transaction, it is loaded there and kept, unless that transaction changed the
    configuration; ``fresh`` loads again (a writer reading its own change)."""

    def __init__(self, load: Callable[[], Awaitable[T]]) -> None:
        self._load = load
        self._value: T | None = None
        self._loading: asyncio.Future | None = None
        self._generation = 0
        keep(self.forget)

    def forget(self) -> None:
        self._value, self._loading = None, None
        self._generation += 1

    async def get(self, *, fresh: bool = False) -> T:
        if fresh or db.marked(_CHANGED):
            return await self._load()
        if self._value is not None:
            return self._value
        if db.in_transaction():  # on this transaction's connection, so not shared with other requests
            return await self._load_and_keep()
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._load_and_keep())
        return await asyncio.shield(self._loading)

    async def _load_and_keep(self) -> T:
        generation = self._generation
        value = await self._load()
        if generation == self._generation:  # not forgotten while it loaded
            self._value = value
        return value
