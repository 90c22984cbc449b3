"""The venue's time zone, opening hours and closures: what due dates, holds and bookings are
measured against."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from lending import clock, config_cache, db, errors, i18n
from lending.adapters import labels, photos
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.venues import rules
from lending.venues.tables import Closure, OpeningSession, Site, Venue


@dataclass(frozen=True)
class VenueSettings:
    """The venue as its pages and messages show it."""

    name: str
    timezone: str
    currency: str
    email: str
    phone: str
    address: str
    website: str
    colour: str
    languages: tuple[str, ...]
    label_template: str
    has_logo: bool
    version: str  # changes whenever the settings do (for the theme's and logo's addresses)

    @property
    def default_language(self) -> str:
        return self.languages[0]

    @property
    def set_up(self) -> bool:
        return bool(self.name)


DEFAULT_SETTINGS = VenueSettings(
    name="",
    timezone=rules.DEFAULT_TIMEZONE,
    currency="gbp",
    email="",
    phone="",
    address="",
    website="",
    colour=rules.DEFAULT_COLOUR,
    languages=("en", "cy"),
    label_template="L7160",
    has_logo=False,
    version="0",
)


@dataclass(frozen=True)
class Snapshot:
    settings: VenueSettings
    sessions: dict[int | None, tuple[rules.Session, ...]]  # by site; None: the venue's own
    closures: dict[int | None, tuple[rules.Closure, ...]]  # by site; None: the whole venue

    def calendar(self, site_id: int | None = None) -> rules.Calendar:
        sessions = self.sessions.get(site_id) if site_id is not None else None
        closures = self.closures.get(None, ())
        if site_id is not None:
            closures = tuple(sorted(closures + self.closures.get(site_id, ()), key=lambda c: c.starts_on))
        return rules.Calendar(
            timezone=self.settings.timezone, sessions=sessions or self.sessions.get(None, ()), closures=closures
        )


def forget_cache() -> None:
    _kept.forget()


_SETTINGS_COLUMNS = (
    Venue.id,
    Venue.name,
    Venue.timezone,
    Venue.currency,
    Venue.email,
    Venue.phone,
    Venue.address,
    Venue.website,
    Venue.colour,
    Venue.languages,
    Venue.label_template,
    Venue.updated_at,
)


async def _venue_row(*, create: bool = False) -> dict | None:
    """The venue's row; until a coordinator saves settings, None (or, when ``create``, a row
    of defaults written inside the caller's write transaction)."""
    row = await _select_venue()
    if row is None and create:
        await Venue.insert(
            Venue(name="", timezone=rules.DEFAULT_TIMEZONE, colour=rules.DEFAULT_COLOUR, updated_at=clock.now())
        ).run()
        row = await _select_venue()
    return row


async def _select_venue() -> dict | None:
    row = await Venue.select(*_SETTINGS_COLUMNS).order_by(Venue.id).first().run()
    if row is not None:
        logo = await Venue.raw("SELECT logo IS NOT NULL AS has_logo FROM venue WHERE id = {}", row["id"]).run()
        row["has_logo"] = bool(logo[0]["has_logo"])
    return row


def _settings_of(row: dict | None) -> VenueSettings:
    if row is None:
        return DEFAULT_SETTINGS
    languages = tuple(code for code in row["languages"].split(",") if code in i18n.LANGUAGES) or ("en",)
    return VenueSettings(
        name=row["name"],
        timezone=row["timezone"],
        currency=row["currency"],
        email=row["email"],
        phone=row["phone"],
        address=row["address"],
        website=row["website"],
        colour=row["colour"],
        languages=languages,
        label_template=row["label_template"],
        has_logo=row["has_logo"],
        version=str(int(row["updated_at"].timestamp())) if row["updated_at"] else "0",
    )


def _clock_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


async def snapshot(*, fresh: bool = False) -> Snapshot:
    """The venue's settings, weekly sessions and closures (those that ended over a year ago left
    out). Every page and every due date reads them, so each process keeps them until the
    configuration changes anywhere (``config_cache.Kept``); ``fresh`` reads the tables again."""
    return await _kept.get(fresh=fresh)


async def _load() -> Snapshot:
    settings = _settings_of(await _select_venue())
    sessions: dict[int | None, list[rules.Session]] = {}
    for row in await OpeningSession.select().order_by(OpeningSession.weekday).order_by(OpeningSession.opens).run():
        sessions.setdefault(row["site"], []).append(
            rules.Session(weekday=row["weekday"], opens=_clock_time(row["opens"]), closes=_clock_time(row["closes"]))
        )
    closures: dict[int | None, list[rules.Closure]] = {}
    for row in (
        await Closure.select()
        .where(Closure.ends_on >= clock.now().date() - timedelta(days=400))
        .order_by(Closure.starts_on)
        .run()
    ):
        closures.setdefault(row["site"], []).append(
            rules.Closure(starts_on=row["starts_on"], ends_on=row["ends_on"], reason=row["reason"])
        )
    return Snapshot(
        settings=settings,
        sessions={k: tuple(v) for k, v in sessions.items()},
        closures={k: tuple(v) for k, v in closures.items()},
    )


_kept: config_cache.Kept[Snapshot] = config_cache.Kept(_load)


async def calendar(*, fresh: bool = False, site_id: int | None = None) -> rules.Calendar:
    """The calendar due dates are measured against: a site's own hours when it has them, else
    the venue's; the venue's closures and the site's."""
    return (await snapshot(fresh=fresh)).calendar(site_id)


async def settings(*, fresh: bool = False) -> VenueSettings:
    return (await snapshot(fresh=fresh)).settings


async def timezone() -> str:
    return (await settings()).timezone


async def currency() -> str:
    return (await settings()).currency


async def save_details(
    *, details: rules.VenueDetails, currencies_taken: Collection[str] = (), actor_id: int | None = None
) -> VenueSettings:
    """Save the venue's name, contact details, look, currency, languages and label layout, all
    or nothing. The currency cannot change once money has been taken in another one
    (``currencies_taken``: what payments were made in; ``workflows.venue_details`` reads them)."""
    details = rules.VenueDetails(
        **{key: value.strip() if isinstance(value, str) else value for key, value in details.__dict__.items()}
    )
    problems = rules.details_problems(details, label_templates=tuple(labels.TEMPLATES))
    async with db.transaction(write=True):
        row = await _venue_row(create=True)
        if (
            not problems.get("currency")
            and details.currency != row["currency"]
            and any(currency != details.currency for currency in currencies_taken)
        ):
            problems["currency"] = str(
                _l("Payments have been taken in %(currency)s, so the currency stays.", currency=row["currency"].upper())
            )
        if problems:
            raise errors.InvalidInput(
                _l("Some of the venue's details need correcting."), code="invalid_venue", errors=problems
            )
        await (
            Venue.update(
                {
                    Venue.name: details.name,
                    Venue.timezone: details.timezone,
                    Venue.currency: details.currency,
                    Venue.email: details.email,
                    Venue.phone: details.phone,
                    Venue.address: details.address,
                    Venue.website: details.website,
                    Venue.colour: details.colour.lower(),
                    Venue.languages: ",".join(details.languages),
                    Venue.label_template: details.label_template,
                    Venue.updated_at: clock.now(),
                }
            )
            .where(Venue.id == row["id"])
            .run()
        )
        await audit.record(action="venue.settings", actor_id=actor_id, subject="venue", detail=details.name[:200])
        await config_cache.changed()
    return await settings(fresh=True)


async def set_logo(*, data: bytes | None, actor_id: int | None = None) -> None:
    """A new logo (any photo or PNG, made a small PNG), or none."""
    logo = photos.logo_png(data) if data else None
    async with db.transaction(write=True):
        row = await _venue_row(create=True)
        await Venue.update({Venue.logo: logo, Venue.updated_at: clock.now()}).where(Venue.id == row["id"]).run()
        await audit.record(
            action="venue.logo",
            actor_id=actor_id,
            subject="venue",
            detail="removed" if logo is None else f"{len(logo)} bytes",
        )
        await config_cache.changed()


async def logo() -> bytes | None:
    row = await Venue.select(Venue.logo).order_by(Venue.id).first().run()
    return row["logo"] if row else None


@dataclass(frozen=True)
class ClosureView:
    id: int
    starts_on: date
    ends_on: date
    reason: str
    site_id: int | None = None
    site_name: str = ""


async def list_closures(*, from_day: date | None = None) -> list[ClosureView]:
    """Every closure, the whole venue's and each site's."""
    query = Closure.select(Closure.all_columns(), Closure.site.name.as_alias("site_name")).order_by(Closure.starts_on)
    if from_day is not None:
        query = query.where(Closure.ends_on >= from_day)
    return [
        ClosureView(
            id=row["id"],
            starts_on=row["starts_on"],
            ends_on=row["ends_on"],
            reason=row["reason"],
            site_id=row["site"],
            site_name=row["site_name"] or "",
        )
        for row in await query.run()
    ]


async def _require_site(site_id: int | None) -> None:
    if site_id is not None and not await Site.exists().where(Site.id == site_id).run():
        raise errors.NotFound(_l("There is no such site."), code="site_not_found")


async def set_hours(
    *, hours: dict[int, str], timezone_name: str | None = None, site_id: int | None = None, actor_id: int | None = None
) -> rules.Calendar:
    """Replace the weekly hours (what a coordinator typed per weekday), the venue's or one
    site's, all or nothing; and the time zone when given. A site whose hours are all empty
    keeps the venue's."""
    problems: dict[str, str] = {}
    if timezone_name is not None and (problem := rules.timezone_problem(timezone_name.strip())):
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
        await _require_site(site_id)
        venue = await _venue_row(create=True)
        if timezone_name is not None:
            await (
                Venue.update({Venue.timezone: timezone_name.strip(), Venue.updated_at: clock.now()})
                .where(Venue.id == venue["id"])
                .run()
            )
        await (
            OpeningSession.delete()
            .where(OpeningSession.site.is_null() if site_id is None else OpeningSession.site == site_id)
            .run()
        )
        if sessions:
            await OpeningSession.insert(
                *[
                    OpeningSession(
                        site=site_id,
                        weekday=s.weekday,
                        opens=s.opens.strftime("%H:%M"),
                        closes=s.closes.strftime("%H:%M"),
                    )
                    for s in sessions
                ]
            ).run()
        await audit.record(
            action="venue.hours",
            actor_id=actor_id,
            subject="venue" if site_id is None else f"site:{site_id}",
            detail=f"{(timezone_name or venue['timezone']).strip()}; {len(sessions)} session(s)",
        )
        await config_cache.changed()
    return await calendar(fresh=True, site_id=site_id)


async def add_closure(
    *,
    starts_on: str | date,
    ends_on: str | date | None = None,
    reason: str = "",
    site_id: int | None = None,
    actor_id: int | None = None,
) -> ClosureView:
    """Shut the whole venue (``site_id`` None) or one site for some days."""
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
    if (
        start
        and end
        and (problem := rules.closure_problem(rules.Closure(starts_on=start, ends_on=end, reason=reason.strip())))
    ):
        problems["ends_on" if end < start else "reason"] = problem
    if problems:
        raise errors.InvalidInput(_l("The closure needs correcting."), code="invalid_closure", errors=problems)
    async with db.transaction(write=True):
        await _require_site(site_id)
        rows = (
            await Closure.insert(
                Closure(site=site_id, starts_on=start, ends_on=end, reason=reason.strip(), created_at=clock.now())
            )
            .returning(Closure.id)
            .run()
        )
        await audit.record(
            action="venue.closure",
            actor_id=actor_id,
            subject=f"closure:{rows[0]['id']}",
            detail=f"{start.isoformat()}..{end.isoformat()}",
        )
        await config_cache.changed()
    return ClosureView(id=rows[0]["id"], starts_on=start, ends_on=end, reason=reason.strip(), site_id=site_id)


async def remove_closure(*, closure_id: int, actor_id: int | None = None) -> None:
    async with db.transaction(write=True):
        deleted = await Closure.delete().where(Closure.id == closure_id).returning(Closure.id).run()
        if not deleted:
            raise errors.NotFound(_l("There is no such closure."), code="closure_not_found")
        await audit.record(action="venue.closure_removed", actor_id=actor_id, subject=f"closure:{closure_id}")
        await config_cache.changed()


def today(cal: rules.Calendar, now: datetime | None = None) -> date:
    """The venue's date now."""
    return rules.local_date(now or clock.now(), cal.timezone)
