"""Counting the SQL statements the app sends: every query Piccolo runs on the engine
(``run_querystring``) and every raw statement (``run_ddl``), in or out of a transaction.
Transaction control (BEGIN, COMMIT) is not counted: it is the same for every request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from lending import db


@contextlib.contextmanager
def counted() -> Iterator[list[str]]:
    """``with counted() as statements:`` collects the SQL of each statement sent meanwhile."""
    engine_class = type(db.engine())  # engines have __slots__: count on the class, for this one engine
    statements: list[str] = []
    run_querystring, run_ddl = engine_class.run_querystring, engine_class.run_ddl

    async def counting_querystring(self, querystring, *args, **kwargs):
        statements.append(str(querystring))
        return await run_querystring(self, querystring, *args, **kwargs)

    async def counting_ddl(self, ddl, *args, **kwargs):
        statements.append(str(ddl))
        return await run_ddl(self, ddl, *args, **kwargs)

    with (
        mock.patch.object(engine_class, "run_querystring", counting_querystring),
        mock.patch.object(engine_class, "run_ddl", counting_ddl),
    ):
        yield statements
