"""The venue's time zone, opening hours and closures: what due dates, holds and bookings are
measured against."""

from __future__ import annotations

import asyncio
import time as monotonic
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from lending import clock, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.venues import rules
from lending.venues.tables import Closure, OpeningSession, Venue

# Every process reads the calendar often (each due date) and it changes rarely: a short cache
# keeps it cheap while a change made through another process shows within seconds.
CACHE_SECONDS = 10.0
_cache: tuple[float, rules.Calendar] | None = None
_loading: asyncio.Future | None = None


def forget_cache() -> None:
    global _cache, _loading
    _cache, _loading = None, None


async def _venue_row(*, create: bool = False) -> dict:
    """The venue's row; until a coordinator saves settings, the defaults (written only when
    ``create``, inside the caller's write transaction)."""
    row = await Venue.select().order_by(Venue.id).first().run()
    if row is None and create:
        await Venue.insert(Venue(name="", timezone=rules.DEFAULT_TIMEZONE, updated_at=clock.now())).run()
        row = await Venue.select().order_by(Venue.id).first().run()
    return row or {"id": None, "name": "", "timezone": rules.DEFAULT_TIMEZONE}


def _clock_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


async def calendar(*, fresh: bool = False) -> rules.Calendar:
    """The venue's zone, weekly sessions and closures (those that ended over a year ago left out).
    Requests arriving together while the cache is stale share one read."""
    global _loading
    if not fresh and _cache is not None and monotonic.monotonic() - _cache[0] < CACHE_SECONDS:
        return _cache[1]
    if fresh or db.in_transaction():
        return await _load_calendar()  # a writer sees its own transaction's hours
    if _loading is None or _loading.done():
        _loading = asyncio.ensure_future(_load_calendar())
    return await asyncio.shield(_loading)


async def _load_calendar() -> rules.Calendar:
    global _cache
    venue = await _venue_row()
    sessions = tuple(
        rules.Session(weekday=row["weekday"], opens=_clock_time(row["opens"]), closes=_clock_time(row["closes"]))
        for row in await OpeningSession.select().order_by(OpeningSession.weekday).order_by(OpeningSession.opens).run()
    )
    closures = tuple(
        rules.Closure(starts_on=row["starts_on"], ends_on=row["ends_on"], reason=row["reason"])
        for row in await Closure.select().where(Closure.ends_on >= clock.now().date() - timedelta(days=400))
        .order_by(Closure.starts_on).run()
    )
    result = rules.Calendar(timezone=venue["timezone"], sessions=sessions, closures=closures)
    _cache = (monotonic.monotonic(), result)
    return result


async def timezone() -> str:
    return (await calendar()).timezone


@dataclass(frozen=True)
class ClosureView:
    id: int
    starts_on: date
    ends_on: date
    reason: str


async def list_closures(*, from_day: date | None = None) -> list[ClosureView]:
    query = Closure.select().order_by(Closure.starts_on)
    if from_day is not None:
        query = query.where(Closure.ends_on >= from_day)
    return [ClosureView(id=row["id"], starts_on=row["starts_on"], ends_on=row["ends_on"], reason=row["reason"])
            for row in await query.run()]


async def set_hours(*, timezone_name: str, hours: dict[int, str], actor_id: int | None = None) -> rules.Calendar:
    """Replace the weekly hours (what a coordinator typed per weekday) and the time zone, all or
    nothing."""
    problems: dict[str, str] = {}
    if problem := rules.timezone_problem(timezone_name.strip()):
        problems["timezone"] = problem
    sessions: list[rules.Session] = []
    for weekday in range(7):
        try:
            sessions.extend(rules.parse_sessions(hours.get(weekday, "") or "", weekday))
        except ValueError as exc:
            problems[f"day_{weekday}"] = str(exc.args[0]) if exc.args else str(_l("Enter times like 10:00-13:00."))
    for weekday, problem in rules.sessions_problems(tuple(sessions)).items():
        problems.setdefault(f"day_{weekday}", problem)
    if problems:
        raise errors.InvalidInput(_l("Some opening hours need correcting."), code="invalid_hours", errors=problems)
    async with db.transaction(write=True):
        venue = await _venue_row(create=True)
        await Venue.update({Venue.timezone: timezone_name.strip(), Venue.updated_at: clock.now()}).where(
            Venue.id == venue["id"]).run()
        await OpeningSession.delete(force=True).run()
        if sessions:
            await OpeningSession.insert(*[
                OpeningSession(weekday=s.weekday, opens=s.opens.strftime("%H:%M"), closes=s.closes.strftime("%H:%M"))
                for s in sessions]).run()
        await audit.record(action="venue.hours", actor_id=actor_id, subject="venue",
                           detail=f"{timezone_name.strip()}; {len(sessions)} session(s)")
    forget_cache()
    return await calendar(fresh=True)


async def add_closure(*, starts_on: str | date, ends_on: str | date | None = None, reason: str = "",
                      actor_id: int | None = None) -> ClosureView:
    problems: dict[str, str] = {}
    start = end = None
    try:
        start = starts_on if isinstance(starts_on, date) else rules.parse_date(starts_on)
    except ValueError as exc:
        problems["starts_on"] = str(exc.args[0])
    try:
        end = (ends_on if isinstance(ends_on, date) else rules.parse_date(ends_on)) if ends_on else start
    except ValueError as exc:
        problems["ends_on"] = str(exc.args[0])
    if start and end and (problem := rules.closure_problem(rules.Closure(starts_on=start, ends_on=end,
                                                                         reason=reason.strip()))):
        problems["ends_on" if end < start else "reason"] = problem
    if problems:
        raise errors.InvalidInput(_l("The closure needs correcting."), code="invalid_closure", errors=problems)
    async with db.transaction(write=True):
        rows = await Closure.insert(Closure(starts_on=start, ends_on=end, reason=reason.strip(),
                                            created_at=clock.now())).returning(Closure.id).run()
        await audit.record(action="venue.closure", actor_id=actor_id, subject=f"closure:{rows[0]['id']}",
                           detail=f"{start.isoformat()}..{end.isoformat()}")
    forget_cache()
    return ClosureView(id=rows[0]["id"], starts_on=start, ends_on=end, reason=reason.strip())


async def remove_closure(*, closure_id: int, actor_id: int | None = None) -> None:
    async with db.transaction(write=True):
        deleted = await Closure.delete().where(Closure.id == closure_id).returning(Closure.id).run()
        if not deleted:
            raise errors.NotFound(_l("There is no such closure."), code="closure_not_found")
        await audit.record(action="venue.closure_removed", actor_id=actor_id, subject=f"closure:{closure_id}")
    forget_cache()


def today(cal: rules.Calendar, now: datetime | None = None) -> date:
    """The venue's date now."""
    return rules.local_date(now or clock.now(), cal.timezone)
