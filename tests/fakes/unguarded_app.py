"""The app with its double-loan guard taken out: FOR THE NEGATIVE CONTROL OF
tests/http/test_loan_races.py ONLY. Never serve this.

The race tests claim that 50 simultaneous check-outs of one item give exactly one loan. A test
like that passes just as well when its requests never overlap, or when it cannot see a second
loan; so the same load is also run against a server that has no guard, and there the test
must find more than one loan. The control's database has the partial unique index
``loan_one_open`` dropped (tests/fakes/loan_race_data.py ``--drop-guard-index``), and this
factory, started by granian instead of ``lending run``, patches the rest of the guard out of
``lending.loans.checkout`` before building the app. App code is not changed.

``LENDING_UNGUARDED`` picks what is removed:

``no_guard`` (the default)
    The whole guard: ``load_basket`` reports every copy as on the shelf and not on loan,
    ``raise_for`` ignores ``item_unavailable``, and ``lock_copies`` takes no ``FOR UPDATE``
    lock (a no-op on SQLite, where ``BEGIN IMMEDIATE`` still serialises the writers). Every
    check-out is then allowed, so the test must see every double loan the database accepts.
``no_lock`` (meant for PostgreSQL)
    Only the row lock goes. The availability check stays, so a second loan can only appear
    when two transactions really run at the same time and both see the item free: it shows
    that the test's requests overlap, not just that it counts loans. Each check-out then
    waits RACE_WINDOW_SECONDS between the check and its insert, as a slow request might:
    without that, the first transaction sometimes commits before any other has read the
    item (the rest queue for the pool's ten connections behind their sign-in queries), and
    the control would pass or fail by luck.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

from lending.loans import checkout

MODES = ("no_guard", "no_lock")
RACE_WINDOW_SECONDS = 0.2


def _unguard_check() -> None:
    load_basket, raise_for = checkout.load_basket, checkout.raise_for

    async def basket_always_free(codes, **kwargs):
        copies = await load_basket(codes, **kwargs)
        return {code: dataclasses.replace(copy, status="available", on_loan=False) for code, copy in copies.items()}

    def raise_for_ignoring_unavailable(assessment):
        lines = tuple(
            dataclasses.replace(line, reasons=tuple(r for r in line.reasons if r.code != "item_unavailable"))
            for line in assessment.lines
        )
        return raise_for(dataclasses.replace(assessment, lines=lines))

    checkout.load_basket = basket_always_free
    checkout.raise_for = raise_for_ignoring_unavailable


def _unguard_lock() -> None:
    async def never_locked(codes):
        return None

    checkout.lock_copies = never_locked


def _widen_race_window() -> None:
    load_basket = checkout.load_basket

    async def basket_then_wait(codes, **kwargs):
        copies = await load_basket(codes, **kwargs)
        await asyncio.sleep(RACE_WINDOW_SECONDS)
        return copies

    checkout.load_basket = basket_then_wait


def create_app():
    from lending.app import create_app_from_env

    mode = os.environ.get("LENDING_UNGUARDED", "no_guard")
    if mode not in MODES:
        raise SystemExit(f"LENDING_UNGUARDED must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "no_guard":
        _unguard_check()
    else:
        _widen_race_window()
    _unguard_lock()
    return create_app_from_env()
