"""Opening hours, closures and where due dates land, across daylight-saving changes and zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lending.i18n import LazyText
from lending.venues import rules
from lending.venues.rules import Calendar, Closure, Session

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def s(weekday: int, opens: str, closes: str) -> Session:
    return Session(weekday, time.fromisoformat(opens), time.fromisoformat(closes))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# Tuesday, Thursday and Saturday, each with a lunch break; given out of order on purpose.
WEEKLY = (
    s(TUE, "14:00", "17:30"),
    s(TUE, "10:00", "13:00"),
    s(THU, "10:00", "12:00"),
    s(THU, "13:00", "19:00"),
    s(SAT, "13:30", "16:00"),
    s(SAT, "09:30", "12:30"),
)
VENUE = Calendar(timezone=LONDON, sessions=WEEKLY)
CHRISTMAS = Closure(date(2026, 12, 24), date(2027, 1, 2), "Christmas")


# --- the week --------------------------------------------------------------------------------


def test_sessions_of_a_day_come_sorted_by_opening_time():
    tuesday = date(2026, 1, 6)
    assert tuesday.weekday() == TUE
    assert VENUE.sessions_on(tuesday) == (s(TUE, "10:00", "13:00"), s(TUE, "14:00", "17:30"))


def test_open_only_on_days_with_sessions():
    week = [date(2026, 1, 5) + timedelta(days=n) for n in range(7)]  # Monday to Sunday
    assert [VENUE.is_open_on(day) for day in week] == [False, True, False, True, False, True, False]
    assert VENUE.sessions_on(date(2026, 1, 7)) == ()


def test_next_open_day_is_the_day_itself_when_open():
    assert VENUE.next_open_day(date(2026, 1, 6)) == date(2026, 1, 6)
    assert VENUE.next_open_day(date(2026, 1, 7)) == date(2026, 1, 8)
    assert VENUE.next_open_day(date(2026, 1, 11)) == date(2026, 1, 13)  # Sunday -> Tuesday


def test_due_on_an_open_day_is_when_its_last_session_closes():
    lent = utc(2026, 1, 6, 11, 0)  # Tuesday, GMT
    assert rules.due_at(calendar=VENUE, lent_at=lent, days=2) == utc(2026, 1, 8, 19, 0)  # Thursday
    assert rules.due_at(calendar=VENUE, lent_at=lent, days=4) == utc(2026, 1, 10, 16, 0)  # Saturday


def test_due_on_a_closed_weekday_moves_to_the_next_open_day():
    lent = utc(2026, 1, 6, 11, 0)  # Tuesday
    assert rules.due_at(calendar=VENUE, lent_at=lent, days=1) == utc(2026, 1, 8, 19, 0)  # Wednesday -> Thursday
    assert rules.due_at(calendar=VENUE, lent_at=lent, days=5) == utc(2026, 1, 13, 17, 30)  # Sunday -> Tuesday


def test_a_christmas_closure_moves_the_due_date_past_it():
    venue = Calendar(timezone=LONDON, sessions=WEEKLY, closures=(CHRISTMAS,))
    lent = utc(2026, 12, 17, 15, 0)  # Thursday
    assert date(2026, 12, 24).weekday() == THU and date(2027, 1, 5).weekday() == TUE
    # Nominally Thursday 24 December; every open day up to Saturday 2 January is shut.
    assert rules.due_at(calendar=venue, lent_at=lent, days=7) == utc(2027, 1, 5, 17, 30)
    assert rules.due_at(calendar=VENUE, lent_at=lent, days=7) == utc(2026, 12, 24, 19, 0)  # without the closure


def test_a_closure_shuts_every_day_it_covers_including_both_ends():
    venue = Calendar(timezone=LONDON, sessions=WEEKLY, closures=(CHRISTMAS,))
    assert venue.closure_on(date(2026, 12, 24)) == CHRISTMAS
    assert venue.closure_on(date(2027, 1, 2)) == CHRISTMAS
    assert venue.closure_on(date(2027, 1, 3)) is None
    assert venue.sessions_on(date(2026, 12, 29)) == ()  # a Tuesday
    assert not venue.is_open_on(date(2027, 1, 2)) and venue.is_open_on(date(2027, 1, 5))


def test_the_first_matching_closure_is_the_one_reported():
    first = Closure(date(2026, 8, 1), date(2026, 8, 31), "Summer")
    second = Closure(date(2026, 8, 10), date(2026, 8, 12), "Painting")
    venue = Calendar(timezone=LONDON, sessions=WEEKLY, closures=(first, second))
    assert venue.closure_on(date(2026, 8, 11)) == first


def test_a_venue_without_hours_lends_until_just_before_midnight():
    unset = Calendar(timezone=LONDON)
    assert rules.due_at(calendar=unset, lent_at=utc(2026, 1, 6, 11), days=3) == utc(2026, 1, 9, 23, 59)
    assert rules.due_at(calendar=unset, lent_at=utc(2026, 7, 6, 11), days=3) == utc(2026, 7, 9, 22, 59)  # BST
    assert unset.next_open_day(date(2026, 1, 1)) is None


def test_no_open_day_within_a_year_falls_back_to_the_nominal_date():
    shut = Calendar(timezone=LONDON, sessions=WEEKLY, closures=(Closure(date(2026, 1, 1), date(2027, 6, 30)),))
    assert shut.next_open_day(date(2026, 1, 10)) is None
    assert shut.next_open_day(date(2026, 1, 10), limit_days=600) == date(2027, 7, 1)  # a Thursday
    assert rules.due_at(calendar=shut, lent_at=utc(2026, 1, 6, 11), days=4) == utc(2026, 1, 10, 23, 59)


def test_the_search_window_counts_the_first_day():
    # Open only on Mondays; a window of one day sees only the start.
    mondays = Calendar(timezone=LONDON, sessions=(s(MON, "10:00", "12:00"),))
    assert mondays.next_open_day(date(2026, 1, 5), limit_days=1) == date(2026, 1, 5)
    assert mondays.next_open_day(date(2026, 1, 6), limit_days=6) is None
    assert mondays.next_open_day(date(2026, 1, 6), limit_days=7) == date(2026, 1, 12)


def test_end_of_open_day():
    assert rules.end_of_open_day(calendar=VENUE, day=date(2026, 1, 8)) == utc(2026, 1, 8, 19, 0)
    assert rules.end_of_open_day(calendar=VENUE, day=date(2026, 1, 9)) == utc(2026, 1, 10, 16, 0)  # Friday -> Saturday
    assert rules.end_of_open_day(calendar=Calendar(LONDON), day=date(2026, 6, 1)) == utc(2026, 6, 1, 22, 59)


def test_overlapping_sessions_not_yet_fixed_still_end_at_the_latest_close():
    messy = Calendar(timezone=LONDON, sessions=(s(MON, "10:00", "18:00"), s(MON, "12:00", "14:00")))
    assert rules.end_of_open_day(calendar=messy, day=date(2026, 1, 5)) == utc(2026, 1, 5, 18, 0)


def test_a_loan_lasts_at_least_a_day():
    with pytest.raises(ValueError):
        rules.due_at(calendar=VENUE, lent_at=utc(2026, 1, 6, 11), days=0)


# --- the clocks change -----------------------------------------------------------------------

# Open Sundays and Mondays only (with a lunch break on Mondays).
SUN_MON = Calendar(
    timezone=LONDON, sessions=(s(SUN, "10:00", "16:00"), s(MON, "10:00", "13:00"), s(MON, "14:00", "17:00"))
)


def test_due_dates_across_the_spring_change_in_london():
    lent = utc(2026, 3, 28, 12, 0)  # Saturday, noon GMT; the clocks go forward on Sunday 29 March
    assert date(2026, 3, 28).weekday() == SAT
    one, two, seven = (rules.due_at(calendar=SUN_MON, lent_at=lent, days=n) for n in (1, 2, 7))
    assert one == utc(2026, 3, 29, 15, 0)  # 16:00 BST
    assert two == utc(2026, 3, 30, 16, 0)  # 17:00 BST
    assert seven == utc(2026, 4, 5, 15, 0)  # Saturday 4 April is closed -> Sunday 16:00 BST
    a_week_before = rules.due_at(calendar=SUN_MON, lent_at=lent - timedelta(days=7), days=1)
    assert a_week_before == utc(2026, 3, 22, 16, 0)  # 16:00 GMT
    assert one - a_week_before == timedelta(days=7, hours=-1)  # the same wall time, an hour sooner


def test_due_dates_across_the_autumn_change_in_london():
    lent = utc(2026, 10, 24, 11, 0)  # Saturday, noon BST; the clocks go back on Sunday 25 October
    one, two, seven = (rules.due_at(calendar=SUN_MON, lent_at=lent, days=n) for n in (1, 2, 7))
    assert one == utc(2026, 10, 25, 16, 0)  # 16:00 GMT
    assert two == utc(2026, 10, 26, 17, 0)
    assert seven == utc(2026, 11, 1, 16, 0)
    a_week_before = rules.due_at(calendar=SUN_MON, lent_at=lent - timedelta(days=7), days=1)
    assert a_week_before == utc(2026, 10, 18, 15, 0)  # 16:00 BST
    assert one - a_week_before == timedelta(days=7, hours=1)


def test_the_lending_date_is_the_venues_local_date():
    daily = Calendar(timezone=LONDON, sessions=tuple(s(day, "10:00", "17:00") for day in range(7)))
    lent = utc(2026, 6, 5, 23, 30)  # already 00:30 on 6 June in London
    assert rules.local_date(lent, LONDON) == date(2026, 6, 6)
    assert rules.due_at(calendar=daily, lent_at=lent, days=1) == utc(2026, 6, 7, 16, 0)


def test_a_venue_in_new_york():
    weekdays = Calendar(timezone=NEW_YORK, sessions=tuple(s(day, "09:00", "17:00") for day in range(5)))
    # Friday 6 March 2026, 22:00 EST is already Saturday in UTC; the clocks go forward on Sunday 8 March.
    lent = utc(2026, 3, 7, 3, 0)
    assert rules.local_date(lent, NEW_YORK) == date(2026, 3, 6)
    assert rules.due_at(calendar=weekdays, lent_at=lent, days=1) == utc(2026, 3, 9, 21, 0)  # Monday 17:00 EDT
    assert rules.due_at(calendar=weekdays, lent_at=lent, days=3) == utc(2026, 3, 9, 21, 0)
    # An instant given in another zone means the same moment.
    assert rules.due_at(calendar=weekdays, lent_at=lent.astimezone(ZoneInfo(LONDON)), days=3) == utc(2026, 3, 9, 21, 0)
    # Back to EST on Sunday 1 November.
    assert rules.due_at(calendar=weekdays, lent_at=utc(2026, 10, 30, 16, 0), days=1) == utc(2026, 11, 2, 22, 0)


def test_at_local_moves_a_skipped_wall_time_forward_by_the_gap():
    assert rules.at_local(date(2026, 3, 29), time(1, 30), LONDON) == utc(2026, 3, 29, 1, 30)  # 02:30 BST
    assert rules.at_local(date(2026, 3, 8), time(2, 30), NEW_YORK) == utc(2026, 3, 8, 7, 30)  # 03:30 EDT
    # Lord Howe Island moves its clocks by half an hour: 02:15 becomes 02:45 (+11:00).
    lord_howe = rules.at_local(date(2026, 10, 4), time(2, 15), "Australia/Lord_Howe")
    assert lord_howe == utc(2026, 10, 3, 15, 45)
    assert rules.local_time(lord_howe, "Australia/Lord_Howe").time() == time(2, 45)


def test_at_local_takes_the_first_of_a_repeated_wall_time():
    assert rules.at_local(date(2026, 10, 25), time(1, 30), LONDON) == utc(2026, 10, 25, 0, 30)  # BST, not GMT
    assert rules.at_local(date(2026, 11, 1), time(1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)  # EDT
    # A fold=1 time asks for the second occurrence; the rule is always the first.
    assert rules.at_local(date(2026, 10, 25), time(1, 30, fold=1), LONDON) == utc(2026, 10, 25, 0, 30)


def test_at_local_on_an_ordinary_day():
    found = rules.at_local(date(2026, 7, 1), time(17, 0), LONDON)
    assert found == utc(2026, 7, 1, 16, 0) and found.tzinfo is UTC
    assert rules.at_local(date(2026, 7, 1), time(17, 0), "Pacific/Chatham") == utc(2026, 7, 1, 4, 15)  # +12:45


def test_local_time_and_date():
    instant = utc(2026, 12, 31, 23, 0)
    chatham = rules.local_time(instant, "Pacific/Chatham")
    assert chatham == instant and chatham.tzinfo == ZoneInfo("Pacific/Chatham")
    assert chatham.replace(tzinfo=None) == datetime(2027, 1, 1, 12, 45)  # +13:45 in its summer
    assert rules.local_date(instant, LONDON) == date(2026, 12, 31)
    assert rules.local_date(instant, "Australia/Lord_Howe") == date(2027, 1, 1)


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError):
        rules.local_date(datetime(2026, 1, 1, 12), LONDON)
    with pytest.raises(ValueError):
        rules.due_at(calendar=VENUE, lent_at=datetime(2026, 1, 1, 12), days=1)


@pytest.mark.parametrize(
    "name", [LONDON, NEW_YORK, "Australia/Lord_Howe", "Pacific/Chatham", "UTC", "Asia/Kolkata", rules.DEFAULT_TIMEZONE]
)
def test_known_time_zones(name):
    assert rules.timezone_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus_Mons",
        "",
        "europe/london",
        "Europe/London ",
        "Europe",
        "GMT+1",
        "../etc/passwd",
        "/etc/localtime",
        "localtime",
    ],
)
def test_unknown_time_zones(name):
    problem = rules.timezone_problem(name)
    assert isinstance(problem, LazyText) and str(problem).endswith(".")
    assert name in str(problem)


# --- what coordinators type ------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("", ()),
        ("   ", ()),
        ("closed", ()),
        (" Closed ", ()),
        ("CLOSED", ()),
        ("10:00-13:00", ((10, 0, 13, 0),)),
        ("10:00-13:00, 14:00-17:30", ((10, 0, 13, 0), (14, 0, 17, 30))),
        ("14:00-17:30, 10:00-13:00", ((10, 0, 13, 0), (14, 0, 17, 30))),
        ("10-13", ((10, 0, 13, 0),)),
        ("9:30\u201317:00", ((9, 30, 17, 0),)),
        ("10.00-13.00", ((10, 0, 13, 0),)),
        ("10.00 - 13.00 ,14:15 \u2013 16", ((10, 0, 13, 0), (14, 15, 16, 0))),
        ("10-13; 14-17", ((10, 0, 13, 0), (14, 0, 17, 0))),
        ("10-13, 13-17", ((10, 0, 13, 0), (13, 0, 17, 0))),  # back to back is fine
        ("10-13,", ((10, 0, 13, 0),)),
        ("0:00-23:59", ((0, 0, 23, 59),)),
    ],
)
def test_sessions_as_typed(typed, expected):
    assert rules.parse_sessions(typed, WED) == tuple(Session(WED, time(a, b), time(c, d)) for a, b, c, d in expected)


@pytest.mark.parametrize(
    "typed",
    [
        "10",
        "10-",
        "-13",
        "10:00",
        "10:00 13:00",
        "10:00-13:00 14:00-17:00",
        "10:0-13:00",
        "10:000-13:00",
        "10:00-13:00-14:00",
        "ten to one",
        "1O-13",
        "10h-13h",
        "10am-1pm",
        "\u0661\u0660-\u0661\u0663",
        "25:00-26:00",
        "10:60-11:00",
        "9-24:30",
        "18-24",
        "13-10",
        "10-10",
        "10:00-13:00, 12:00-14:00",
        "closed, 10-13",
        "open",
    ],
)
def test_sessions_that_cannot_be_read(typed):
    with pytest.raises(ValueError) as raised:
        rules.parse_sessions(typed, WED)
    message = raised.value.args[0]
    assert isinstance(message, LazyText) and str(raised.value).endswith(".")


def test_what_is_wrong_with_typed_sessions_is_said():
    def problem(typed: str) -> str:
        with pytest.raises(ValueError) as raised:
            rules.parse_sessions(typed, WED)
        return str(raised.value)

    assert problem("13-10") == "Closing time must be after opening time."
    assert problem("10-13, 12-14") == "On Wednesday, 10:00-13:00 overlaps 12:00-14:00."
    assert problem("10:75-11") == "10:75 is not a time of day."
    assert problem("18-24") == "A session must end by 23:59; it cannot run past midnight."
    assert "lunch" in problem("10-13, lunch")


def test_sessions_are_written_back_as_they_are_read():
    assert rules.format_sessions(()) == ""
    assert rules.format_sessions((s(TUE, "14:00", "17:30"), s(TUE, "10:00", "13:00"))) == "10:00-13:00, 14:00-17:30"
    assert rules.format_sessions((s(SAT, "09:30", "12:30"),)) == "09:30-12:30"
    for weekday in range(7):
        typed = rules.format_sessions(VENUE.sessions_on(date(2026, 1, 5) + timedelta(days=weekday)))
        assert rules.format_sessions(rules.parse_sessions(typed, weekday)) == typed
    assert rules.parse_sessions(rules.format_sessions(WEEKLY[:2]), TUE) == (WEEKLY[1], WEEKLY[0])


def test_sessions_problems():
    assert rules.sessions_problems(WEEKLY) == {}
    assert rules.sessions_problems(()) == {}
    found = rules.sessions_problems(
        (
            s(MON, "10:00", "13:00"),
            s(MON, "12:30", "15:00"),  # overlap
            s(TUE, "10:00", "13:00"),
            s(TUE, "13:00", "15:00"),  # back to back: fine
            s(WED, "12:00", "12:00"),  # closes when it opens
            s(THU, "12:00", "09:00"),  # closes before it opens
            s(FRI, "10:00", "13:00"),
            s(SAT, "10:00", "13:00"),  # the same hours on different days: fine
            Session(7, time(10), time(12)),
            Session(-1, time(10), time(12)),
        )
    )
    assert set(found) == {MON, WED, THU, 7, -1}
    assert str(found[MON]) == "On Monday, 10:00-13:00 overlaps 12:30-15:00."
    assert str(found[WED]) == str(found[THU]) == "Closing time must be after opening time."
    assert str(found[7]) == "There is no weekday 7; use 0 (Monday) to 6 (Sunday)."


def test_a_session_inside_another_overlaps_it():
    assert set(rules.sessions_problems((s(SUN, "09:00", "18:00"), s(SUN, "11:00", "12:00")))) == {SUN}


def test_closure_problems():
    assert rules.closure_problem(CHRISTMAS) is None
    assert rules.closure_problem(Closure(date(2026, 5, 1), date(2026, 5, 1))) is None  # a single day
    assert str(rules.closure_problem(Closure(date(2026, 5, 2), date(2026, 5, 1)))) == (
        "A closure cannot end before it starts."
    )
    assert rules.closure_problem(Closure(date(2026, 5, 1), date(2026, 5, 1), "x" * 200)) is None
    assert str(rules.closure_problem(Closure(date(2026, 5, 1), date(2026, 5, 1), "x" * 201))) == (
        "Keep the reason to 200 characters or fewer."
    )


def test_an_inverted_closure_shuts_nothing():
    venue = Calendar(timezone=LONDON, sessions=WEEKLY, closures=(Closure(date(2026, 1, 10), date(2026, 1, 1)),))
    assert venue.is_open_on(date(2026, 1, 6))


@pytest.mark.parametrize("typed, expected", [("2026-12-24", date(2026, 12, 24)), (" 2028-02-29 ", date(2028, 2, 29))])
def test_dates_as_sent(typed, expected):
    assert rules.parse_date(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "24/12/2026",
        "2026-12-24T10:00",
        "20261224",
        "2026-W52-4",
        "2026-12-4",
        "2026-02-30",
        "2027-02-29",
        "2026-13-01",
        "2026-00-10",
        "christmas",
        None,
    ],
)
def test_dates_that_cannot_be_read(typed):
    with pytest.raises(ValueError) as raised:
        rules.parse_date(typed)
    assert isinstance(raised.value.args[0], LazyText) and str(raised.value).endswith(".")


def test_weekday_names():
    assert [str(name) for name in rules.WEEKDAY_NAMES] == [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
    assert all(isinstance(name, LazyText) for name in rules.WEEKDAY_NAMES)


# --- properties ------------------------------------------------------------------------------

ZONES = (LONDON, NEW_YORK, "Australia/Lord_Howe", "Pacific/Chatham", "UTC")
FIRST_DAY, LAST_DAY = date(2020, 1, 1), date(2035, 12, 31)
PROPERTIES = settings(max_examples=200, deadline=None)


@cache
def transition_days(zone: str) -> tuple[date, ...]:
    """Local dates between 2020 and 2035 on which the zone's clocks change (they change at night)."""
    tz, found, day = ZoneInfo(zone), [], FIRST_DAY
    previous = datetime.combine(day, time(12), tz).utcoffset()
    while day < LAST_DAY:
        day += timedelta(days=1)
        offset = datetime.combine(day, time(12), tz).utcoffset()
        if offset != previous:
            found.append(day)
        previous = offset
    return tuple(found)


# Session boundaries in minutes; often between 01:00 and 04:00, where every listed zone's clocks jump.
minutes = st.one_of(st.integers(0, 24 * 60 - 1), st.integers(60, 4 * 60))


def clock(minute: int) -> time:
    return time(*divmod(minute, 60))


def without_overlaps(candidates: list[tuple[int, int, int]]) -> tuple[Session, ...]:
    """Valid sessions from (weekday, minute, minute) candidates: each in order, dropping any that overlaps one kept."""
    kept: list[tuple[int, int, int]] = []
    for weekday, a, b in candidates:
        opens, closes = min(a, b), max(a, b)
        if opens < closes and not any(day == weekday and opens < end and start < closes for day, start, end in kept):
            kept.append((weekday, opens, closes))
    return tuple(Session(weekday, clock(opens), clock(closes)) for weekday, opens, closes in kept)


week_sessions = st.lists(st.tuples(st.integers(0, 6), minutes, minutes), max_size=12).map(without_overlaps)
a_time = st.integers(-10 * 60, 10 * 60).map(lambda n: timedelta(minutes=n))


@st.composite
def scenarios(draw) -> tuple[Calendar, datetime, int]:
    zone, days, sessions = draw(st.sampled_from(ZONES)), draw(st.integers(1, 60)), draw(week_sessions)
    if zone != "UTC" and draw(st.booleans()):
        # A nominal due date on a day the clocks change; half the time the venue then opens only
        # in the small hours, so its closing time may fall in the gap or the fold.
        target = draw(st.sampled_from(transition_days(zone)))
        lent_at = datetime.combine(target - timedelta(days=days), time(12), ZoneInfo(zone)) + draw(a_time)
        if draw(st.booleans()):
            night = Session(target.weekday(), time(0), clock(draw(st.integers(1, 5 * 60))))
            sessions = (*(session for session in sessions if session.weekday != target.weekday()), night)
    else:
        first = datetime.combine(FIRST_DAY, time(), UTC)
        span = int((datetime.combine(LAST_DAY, time(23, 59), UTC) - first).total_seconds())
        lent_at = first + timedelta(seconds=draw(st.integers(0, span)))
    # The instant may arrive in any zone; it is the same moment.
    lent_at = lent_at.astimezone(ZoneInfo(draw(st.sampled_from(ZONES))))
    around = lent_at.astimezone(UTC).date()
    spans = draw(st.lists(st.tuples(st.integers(-10, 70), st.integers(0, 40)), max_size=4))
    if draw(st.integers(0, 9)) == 0:  # now and then a closure that outlasts the search for an open day
        spans.append((draw(st.integers(-10, 10)), draw(st.integers(300, 500))))
    closures = tuple(
        Closure(around + timedelta(days=start), around + timedelta(days=start + length)) for start, length in spans
    )
    return Calendar(timezone=zone, sessions=sessions, closures=closures), lent_at, days


def oracle_open(calendar: Calendar, day: date) -> bool:
    """Open, worked out here without the rules under test."""
    return any(session.weekday == day.weekday() for session in calendar.sessions) and not any(
        closure.starts_on <= day <= closure.ends_on for closure in calendar.closures
    )


def nominal_date(calendar: Calendar, lent_at: datetime, days: int) -> date:
    return lent_at.astimezone(ZoneInfo(calendar.timezone)).date() + timedelta(days=days)


def first_open_day(calendar: Calendar, nominal: date) -> date | None:
    return next(
        (day for day in (nominal + timedelta(days=n) for n in range(rules.SEARCH_DAYS)) if oracle_open(calendar, day)),
        None,
    )


def assert_shows_wall_time(instant: datetime, day: date, wall: time, zone: str) -> None:
    """``instant`` shows ``wall`` on ``day`` in ``zone``: its first occurrence, or just after a gap that skips it."""
    tz = ZoneInfo(zone)
    local = instant.astimezone(tz)
    naive = datetime.combine(day, wall)
    earlier, later = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    skipped = earlier.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive
    if skipped:
        gap = later.utcoffset() - earlier.utcoffset()
        assert gap > timedelta(0)
        assert local.replace(tzinfo=None) == naive + gap
    else:
        assert local.replace(tzinfo=None) == naive
        assert instant <= later.astimezone(UTC)  # the first of a repeated wall time
    assert local.date() == day


@PROPERTIES
@given(scenarios())
def test_due_lands_on_the_first_open_day_on_or_after_the_nominal_date(scenario):
    calendar, lent_at, days = scenario
    due = rules.due_at(calendar=calendar, lent_at=lent_at, days=days)
    assert due.utcoffset() == timedelta(0)
    nominal = nominal_date(calendar, lent_at, days)
    due_day = due.astimezone(ZoneInfo(calendar.timezone)).date()
    expected = first_open_day(calendar, nominal)
    if expected is None:  # nothing open within the window: the nominal date, just before midnight
        assert due_day == nominal
        return
    assert oracle_open(calendar, due_day)  # (a)
    assert due_day >= nominal  # (c)
    assert not any(oracle_open(calendar, nominal + timedelta(days=n)) for n in range((due_day - nominal).days))  # (d)
    assert due_day == expected


@PROPERTIES
@given(scenarios())
def test_due_is_when_the_last_session_of_that_day_closes(scenario):  # (b)
    calendar, lent_at, days = scenario
    due = rules.due_at(calendar=calendar, lent_at=lent_at, days=days)
    nominal = nominal_date(calendar, lent_at, days)
    day = first_open_day(calendar, nominal)
    if day is None:
        assert_shows_wall_time(due, nominal, time(23, 59), calendar.timezone)
    else:
        last = max(
            (session for session in calendar.sessions if session.weekday == day.weekday()),
            key=lambda session: session.opens,
        )
        assert_shows_wall_time(due, day, last.closes, calendar.timezone)


@PROPERTIES
@given(scenarios(), st.integers(0, 59))
def test_due_never_comes_sooner_for_a_longer_loan(scenario, extra):  # (e)
    calendar, lent_at, days = scenario
    shorter = rules.due_at(calendar=calendar, lent_at=lent_at, days=days)
    longer = rules.due_at(calendar=calendar, lent_at=lent_at, days=days + extra)
    assert shorter <= longer
    assert rules.due_at(calendar=calendar, lent_at=lent_at, days=days + 1) >= shorter


@PROPERTIES
@given(st.sampled_from(ZONES[:-1]), st.data(), st.integers(0, 24 * 60 - 1))
def test_at_local_shows_the_wall_time_asked_for(zone, data, minute):
    day = data.draw(st.one_of(st.sampled_from(transition_days(zone)), st.dates(FIRST_DAY, LAST_DAY)))
    wall = time(*divmod(minute, 60))
    found = rules.at_local(day, wall, zone)
    assert found.tzinfo is UTC
    assert_shows_wall_time(found, day, wall, zone)


@PROPERTIES
@given(week_sessions, st.integers(0, 6))
def test_typed_sessions_round_trip(week, weekday):
    sessions = tuple(sorted((session for session in week if session.weekday == weekday), key=lambda s: s.opens))
    assert rules.parse_sessions(rules.format_sessions(sessions), weekday) == sessions
    assert rules.sessions_problems(week) == {}
