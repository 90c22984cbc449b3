"""Pure rules of a venue's opening hours: when it is open, and where a due date lands.

A venue opens in sessions on weekdays ("Tuesday 10:00-13:00 and 14:00-17:30") and shuts
all day for closures ("Christmas, 24 December to 2 January"). Times are wall-clock times in
the venue's own time zone, so a session keeps its local hours across daylight-saving changes
while its UTC instant moves. Every instant these rules return is aware and in UTC.

A loan is due at the end of the day ``days`` calendar days after the venue's local lending
date, or, when the venue is shut that day, at the end of the next day it opens: members can
always bring things back in person on the day they are due.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lending.i18n import lazy_gettext as _l

DEFAULT_TIMEZONE = "Europe/London"
SEARCH_DAYS = 366  # how far ahead a due date may move to find an open day (a year, leap or not)
MAX_REASON_LENGTH = 200
# The end of a day at a venue that has not set its hours, or whose hours never open.
END_OF_DAY = time(23, 59)

WEEKDAY_NAMES = (
    _l("Monday"),
    _l("Tuesday"),
    _l("Wednesday"),
    _l("Thursday"),
    _l("Friday"),
    _l("Saturday"),
    _l("Sunday"),
)


@dataclass(frozen=True)
class Session:
    """One opening session on a weekday (0 = Monday ... 6 = Sunday), in local wall-clock time.

    ``closes`` must be strictly after ``opens`` on the same day; ``sessions_problems`` says
    when it is not, so a coordinator's typing can be shown back with the problem.
    """

    weekday: int
    opens: time
    closes: time


@dataclass(frozen=True)
class Closure:
    """The venue is shut all day from ``starts_on`` to ``ends_on``, both included."""

    starts_on: date
    ends_on: date
    reason: str = ""

    def covers(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


@dataclass(frozen=True)
class Calendar:
    """A venue's time zone, weekly sessions and closures."""

    timezone: str
    sessions: tuple[Session, ...] = ()
    closures: tuple[Closure, ...] = ()

    def closure_on(self, day: date) -> Closure | None:
        """The first closure (in the order given) that shuts the venue on ``day``."""
        return next((closure for closure in self.closures if closure.covers(day)), None)

    def sessions_on(self, day: date) -> tuple[Session, ...]:
        """The sessions on ``day``, sorted by opening time; () when a closure shuts the venue
        or it has no session on that weekday."""
        if self.closure_on(day) is not None:
            return ()
        weekday = day.weekday()
        return tuple(sorted((s for s in self.sessions if s.weekday == weekday), key=lambda s: (s.opens, s.closes)))

    def is_open_on(self, day: date) -> bool:
        return bool(self.sessions_on(day))

    def next_open_day(self, on_or_after: date, *, limit_days: int = SEARCH_DAYS) -> date | None:
        """The first open day among ``on_or_after`` and the ``limit_days - 1`` days after it;
        None when there is none (no sessions, or closures cover the whole window)."""
        open_weekdays = {s.weekday for s in self.sessions}
        if not open_weekdays:
            return None  # no hours at all: nothing to search for
        day = on_or_after
        for _ in range(limit_days):
            if day.weekday() in open_weekdays and self.closure_on(day) is None:
                return day
            if day == date.max:
                break
            day += timedelta(days=1)
        return None


# --- time zones ------------------------------------------------------------------------------


def timezone_problem(name: str) -> str | None:
    """None when ``name`` is an IANA time zone zoneinfo knows (e.g. "Europe/London"), else a
    sentence for the coordinator. Names are case-sensitive, as the IANA database spells them."""
    problem = _l("%(name)s is not a time zone we know. Use a name such as Europe/London.", name=name)
    # "localtime" is whatever zone the server happens to run in, not a place.
    if not isinstance(name, str) or not name or name == "localtime":
        return problem
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: absolute or "../" paths; OSError: a directory such as "Europe".
        return problem
    return None


def _zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)  # ZoneInfo caches its instances, so this is cheap to repeat


def _require_aware(instant: datetime) -> None:
    # A naive datetime would be read as the server's local time: a programming error, never shown to people.
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware")


def local_time(instant: datetime, timezone: str) -> datetime:
    """The same instant as wall-clock time in the venue's zone (``instant`` is aware, in any zone)."""
    _require_aware(instant)
    return instant.astimezone(_zone(timezone))


def local_date(instant: datetime, timezone: str) -> date:
    """The venue's local calendar date at ``instant``."""
    return local_time(instant, timezone).date()


def at_local(day: date, at: time, timezone: str) -> datetime:
    """The aware UTC instant when the venue's clocks show ``at`` on ``day``.

    A wall time skipped when the clocks go forward moves forward by the gap (01:30 on the
    London spring-forward day is 02:30 BST); a wall time that happens twice when they go back
    is its first occurrence (01:30 BST, not 01:30 GMT).
    """
    wall = datetime.combine(day, at.replace(tzinfo=None, fold=0), tzinfo=_zone(timezone))
    # With fold=0, zoneinfo reads both a skipped and a repeated wall time with the offset in
    # force before the transition (PEP 495): a gap moves forward by its length, a fold takes
    # its first occurrence. Exactly the rule above.
    return wall.astimezone(UTC)


# --- due dates -------------------------------------------------------------------------------


def _closing_time(sessions: tuple[Session, ...]) -> time:
    # The last session closes last when sessions do not overlap; max() also stays right for
    # overlapping sessions a coordinator has not yet fixed (10-18 with 12-14 closes at 18).
    return max(s.closes for s in sessions)


def end_of_open_day(*, calendar: Calendar, day: date) -> datetime:
    """The UTC instant the venue closes on ``day``: the end of its last session that day.

    On a closed day, the end of the next open day. At a venue with no sessions configured, or
    with no open day within a year, 23:59 local time on ``day``, so lending still works before
    a venue has set its hours.
    """
    open_day = calendar.next_open_day(day)
    if open_day is None:
        return at_local(day, END_OF_DAY, calendar.timezone)
    return at_local(open_day, _closing_time(calendar.sessions_on(open_day)), calendar.timezone)


def due_at(*, calendar: Calendar, lent_at: datetime, days: int) -> datetime:
    """When a loan made at ``lent_at`` for ``days`` days (at least 1) is due, as an aware UTC instant.

    The nominal date is the venue's local date at ``lent_at`` plus ``days`` calendar days; the
    loan is due at the end of that day if the venue opens then, else at the end of the next day
    it opens (see ``end_of_open_day`` for a venue without hours).
    """
    if days < 1:
        raise ValueError("a loan lasts at least one day")  # programming error: forms offer no such choice
    nominal = local_date(lent_at, calendar.timezone) + timedelta(days=days)
    return end_of_open_day(calendar=calendar, day=nominal)


# --- what coordinators type ------------------------------------------------------------------

_TIME = r"([0-9]{1,2})(?:[:.]([0-9]{2}))?"
# "10:00-13:00", "10-13", "9:30–17:00" (en dash, as word processors write it), "10.00 - 13.00".
_SESSION = re.compile(rf"^{_TIME}\s*[-\u2013\u2014]\s*{_TIME}$")
_SEPARATORS = re.compile(r"[,;]")


def _time_of_day(hours: str, minutes: str | None, typed: str) -> time:
    hour, minute = int(hours), int(minutes or 0)
    if hour == 24 and minute == 0:
        raise ValueError(_l("A session must end by 23:59; it cannot run past midnight."))
    if hour > 23 or minute > 59:
        raise ValueError(_l("%(value)s is not a time of day.", value=typed))
    return time(hour, minute)


def parse_sessions(text: str, weekday: int) -> tuple[Session, ...]:
    """The sessions a coordinator typed for one weekday, sorted by opening time.

    "" or "closed" (any case) is no sessions; otherwise sessions separated by commas, each
    "10:00-13:00", "10-13", "10.00-13.00" or "9:30–17:00". Raises ValueError with a sentence
    for anything else, including a session that closes before it opens or overlaps another.
    """
    stripped = (text or "").strip()
    if not stripped or stripped.casefold() == "closed":
        return ()
    sessions = []
    # Empty parts ("10-13, ") are a stray separator, not a mistake worth stopping for.
    for part in filter(None, (piece.strip() for piece in _SEPARATORS.split(stripped))):
        match = _SESSION.match(part)
        if match is None:
            raise ValueError(
                _l("%(part)s is not an opening session. Write sessions like 10:00-13:00, 14:00-17:30.", part=part)
            )
        opens_typed, closes_typed = re.split(r"\s*[-\u2013\u2014]\s*", part)
        opens = _time_of_day(match.group(1), match.group(2), opens_typed)
        closes = _time_of_day(match.group(3), match.group(4), closes_typed)
        sessions.append(Session(weekday=weekday, opens=opens, closes=closes))
    result = tuple(sorted(sessions, key=lambda s: (s.opens, s.closes)))
    problems = sessions_problems(result)
    if problems:
        raise ValueError(next(iter(problems.values())))
    return result


def _clock(moment: time) -> str:
    return moment.strftime("%H:%M")


def format_sessions(sessions: tuple[Session, ...]) -> str:
    """Sessions as ``parse_sessions`` reads them: "10:00-13:00, 14:00-17:30"; "" when closed."""
    ordered = sorted(sessions, key=lambda s: (s.opens, s.closes))
    return ", ".join(f"{_clock(s.opens)}-{_clock(s.closes)}" for s in ordered)


def sessions_problems(sessions: tuple[Session, ...]) -> dict[int, str]:
    """Weekday -> a sentence for the first problem on that weekday: a weekday outside 0..6, a
    session that does not close after it opens, or sessions that overlap (one may open exactly
    when another closes). Empty when the sessions are all fine."""
    problems: dict[int, str] = {}
    by_weekday: dict[int, list[Session]] = {}
    for session in sessions:
        by_weekday.setdefault(session.weekday, []).append(session)
    for weekday, day_sessions in by_weekday.items():
        if not isinstance(weekday, int) or not 0 <= weekday <= 6:
            problems[weekday] = _l("There is no weekday %(weekday)s; use 0 (Monday) to 6 (Sunday).", weekday=weekday)
            continue
        if any(s.closes <= s.opens for s in day_sessions):
            problems[weekday] = _l("Closing time must be after opening time.")
            continue
        ordered = sorted(day_sessions, key=lambda s: (s.opens, s.closes))
        for earlier, later in zip(ordered, ordered[1:]):
            if later.opens < earlier.closes:
                problems[weekday] = _l(
                    "On %(day)s, %(first)s overlaps %(second)s.",
                    day=WEEKDAY_NAMES[weekday],
                    first=format_sessions((earlier,)),
                    second=format_sessions((later,)),
                )
                break
    return problems


def closure_problem(closure: Closure) -> str | None:
    """A sentence when a closure ends before it starts or its reason is over 200 characters."""
    if closure.ends_on < closure.starts_on:
        return _l("A closure cannot end before it starts.")
    if len(closure.reason) > MAX_REASON_LENGTH:
        return _l("Keep the reason to %(max)s characters or fewer.", max=MAX_REASON_LENGTH)
    return None


_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def parse_date(text: str) -> date:
    """An ISO date such as "2026-12-24", as forms and the API send it; ValueError with a
    sentence otherwise. Only the plain year-month-day form: "20261224" and week dates, which
    ``date.fromisoformat`` also reads, are not what anybody means to type."""
    stripped = text.strip() if isinstance(text, str) else ""
    if not _ISO_DATE.match(stripped):
        raise ValueError(_l("Enter a date as year-month-day, for example 2026-12-24."))
    try:
        return date.fromisoformat(stripped)
    except ValueError:
        raise ValueError(_l("%(text)s is not a date on the calendar.", text=stripped)) from None


# --- the venue's own settings -------------------------------------------------------------------

CURRENCIES = {"gbp": "£", "eur": "€", "usd": "$"}  # what Stripe and the money formatting agree on
DEFAULT_COLOUR = "#00594f"
MAX_NAME_LENGTH = 120
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_with_white(colour: str) -> float:
    """WCAG contrast ratio of white text on ``colour`` (1 to 21)."""
    return 1.05 / (_luminance(colour) + 0.05)


def colour_problem(colour: str) -> str | None:
    """The header is white text on the venue's colour, so the colour must be dark enough to
    read (WCAG AA, 4.5:1)."""
    if not _COLOUR.match(colour):
        return str(_l("Enter a colour as # and six hexadecimal digits, like #00594f."))
    if contrast_with_white(colour) < 4.5:
        return str(_l("White text on that colour is hard to read: choose a darker colour."))
    return None


def parse_languages(text: str, available: tuple[str, ...]) -> tuple[str, ...]:
    """ "cy,en" -> ("cy", "en"): the languages offered, the first the default. Raises
    ValueError with a message for a person."""
    chosen: list[str] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if part not in available:
            raise ValueError(
                _l(
                    "%(code)s is not a language this software speaks (it speaks %(available)s).",
                    code=part,
                    available=", ".join(available),
                )
            )
        if part not in chosen:
            chosen.append(part)
    if not chosen:
        raise ValueError(_l("Offer at least one language."))
    return tuple(chosen)


def offered_languages(ticked: list[str], available: tuple[str, ...], default: str) -> tuple[str, ...]:
    """The languages ticked on a form, in the software's order with the chosen default first
    (the first is the default); () when none is ticked."""
    picked = [code for code in available if code in ticked]
    if default in picked:
        picked.remove(default)
        picked.insert(0, default)
    return tuple(picked)


@dataclass(frozen=True)
class VenueDetails:
    """What a coordinator sets about the venue itself (not its hours)."""

    name: str
    timezone: str = DEFAULT_TIMEZONE
    currency: str = "gbp"
    email: str = ""
    phone: str = ""
    address: str = ""
    website: str = ""
    colour: str = DEFAULT_COLOUR
    languages: tuple[str, ...] = ("en", "cy")
    label_template: str = "L7160"


def details_problems(details: VenueDetails, *, label_templates: tuple[str, ...]) -> dict[str, str]:
    """Each field's problem, keyed by the field; empty when the details can be saved."""
    problems: dict[str, str] = {}
    if not details.name.strip():
        problems["name"] = str(_l("Enter the venue's name."))
    elif len(details.name.strip()) > MAX_NAME_LENGTH:
        problems["name"] = str(_l("Keep the name to %(count)d characters.", count=MAX_NAME_LENGTH))
    if problem := timezone_problem(details.timezone):
        problems["timezone"] = problem
    if details.currency not in CURRENCIES:
        problems["currency"] = str(_l("Choose one of: %(choices)s.", choices=", ".join(c.upper() for c in CURRENCIES)))
    if details.email and not _EMAIL.match(details.email):
        problems["email"] = str(_l("Enter an email address like hello@example.org."))
    if len(details.phone) > 40:
        problems["phone"] = str(_l("Keep the phone number to %(count)d characters.", count=40))
    if len(details.address) > 500:
        problems["address"] = str(_l("Keep the address to %(count)d characters.", count=500))
    if details.website and not details.website.startswith(("https://", "http://")):
        problems["website"] = str(_l("Enter the website's address starting with https://."))
    elif len(details.website) > 255:
        problems["website"] = str(_l("Keep the address to %(count)d characters.", count=255))
    if problem := colour_problem(details.colour):
        problems["colour"] = problem
    if not details.languages:
        problems["languages"] = str(_l("Offer at least one language."))
    if details.label_template not in label_templates:
        problems["label_template"] = str(_l("Choose one of: %(choices)s.", choices=", ".join(label_templates)))
    return problems


def darker(colour: str, amount: float = 0.3) -> str:
    """``colour`` with each channel ``amount`` nearer black (for hover states)."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(value * (1 - amount)):02x}" for value in (red, green, blue))
