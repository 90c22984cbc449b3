"""The impact of referrals, as aggregates only: how many referrals were issued, used and are in
use, by month and by organisation; how many were taken up; how soon referred people first
borrowed; how much they borrow compared with other members; and the kinds of things they
borrow. Never a name, a code or a contact.

Small numbers could point at a person, so every count from 1 to 4 is reported as None ("fewer
than 5"), and so is every rate, average or median worked out from fewer than 5 people.
``suppress`` and its companions below are the only place this rule lives.

A link worker sees their own organisation's figures; a coordinator sees every organisation's.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from lending import clock, errors
from lending.catalog.tables import Category
from lending.i18n import lazy_gettext as _l
from lending.loans.tables import Loan
from lending.members.tables import Account, Organisation
from lending.referrals import rules
from lending.referrals import services as referrals
from lending.referrals.tables import Referral
from lending.spreadsheets import safe_cell
from lending.venues import rules as venue_rules
from lending.venues import services as venues

SMALL = 5  # counts below this (except 0) are never shown
MAX_PERIOD_DAYS = 3660  # about ten years: one report, one screen of months
DEFAULT_MONTHS = 12


# --- suppression: pure ------------------------------------------------------------------------


def suppress(n: int) -> int | None:
    """A count as it may be shown: 0 and counts of at least ``SMALL`` as they are; 1 to 4 as
    None ("fewer than 5")."""
    return n if n == 0 or n >= SMALL else None


def suppress_cells(values: Sequence[int]) -> list[int | None]:
    """A column of counts whose total is also shown. Each small count is suppressed; and when
    exactly one would be, the total would give it away, so the smallest other non-zero count
    is suppressed too (secondary suppression)."""
    shown = [suppress(value) for value in values]
    hidden = [index for index, value in enumerate(shown) if value is None]
    if len(hidden) == 1:
        others = [index for index, value in enumerate(shown) if value]
        if others:
            shown[min(others, key=lambda index: values[index])] = None
    return shown


def percent(part: int, whole: int) -> int | None:
    """``part`` of ``whole`` as a whole percentage; None when ``whole`` is fewer than ``SMALL``
    people, or ``part`` itself is a suppressed count (the rate would give it away)."""
    if whole < SMALL or suppress(part) is None:
        return None
    return (200 * part + whole) // (2 * whole)  # rounded half up, without floats


def median(values: Sequence[int]) -> float | None:
    """The median of one value per person; None for fewer than ``SMALL`` people."""
    if len(values) < SMALL:
        return None
    return round(float(statistics.median(values)), 1)


def per_person(total: int, people: int) -> float | None:
    """An average per person, to one decimal place; None for fewer than ``SMALL`` people."""
    if people < SMALL:
        return None
    return round(total / people, 1)


# --- the period -------------------------------------------------------------------------------


def default_period(today: date) -> tuple[date, date]:
    """The last 12 months: from the first day of the month eleven months ago to today."""
    month = today.year * 12 + today.month - 1 - (DEFAULT_MONTHS - 1)
    return date(month // 12, month % 12 + 1, 1), today


def period_problems(from_day: date, to_day: date) -> dict[str, str]:
    if from_day > to_day:
        return {"from": _l("The start of the period must be on or before its end.")}
    if (to_day - from_day).days > MAX_PERIOD_DAYS:
        return {"from": _l("Choose a period of at most 10 years.")}
    return {}


def parse_period(from_text: str | None, to_text: str | None) -> tuple[date | None, date | None]:
    """The ``from`` and ``to`` of a form or a query, as ISO dates; empty means the default.
    InvalidInput with code ``invalid_date`` names each one that is not a date."""

    found: dict[str, date | None] = {}
    problems: dict[str, str] = {}
    for name, text in (("from", from_text), ("to", to_text)):
        if text is None or not str(text).strip():
            found[name] = None
            continue
        try:
            found[name] = venue_rules.parse_date(str(text))
        except ValueError as exc:
            problems[name] = exc.args[0] if exc.args else _l("Enter a date as year-month-day, for example 2026-12-24.")
    if problems:
        raise errors.InvalidInput(
            _l("Enter the dates as year-month-day, for example 2026-12-24."), code="invalid_date", errors=problems
        )
    return found["from"], found["to"]


def months_between(from_day: date, to_day: date) -> list[date]:
    """The first day of every month the period touches, oldest first."""
    months = []
    current = from_day.replace(day=1)
    while current <= to_day:
        months.append(current)
        current = (current + timedelta(days=32)).replace(day=1)
    return months


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    issued: int | None
    redeemed: int | None
    in_use: int | None  # redeemed and the free membership still running
    take_up_percent: int | None  # redeemed of issued


@dataclass(frozen=True)
class MonthRow:
    month: date  # its first day
    counts: Counts


@dataclass(frozen=True)
class OrganisationRow:
    organisation: str
    counts: Counts


@dataclass(frozen=True)
class CategoryRow:
    category: str  # a top-level category's name, or "Other categories" for the small ones together
    loans: int | None
    other: bool = False  # the row that gathers the categories too small to show on their own


@dataclass(frozen=True)
class Impact:
    from_day: date
    to_day: date
    organisation: str | None  # the link worker's organisation; None: every organisation
    totals: Counts
    by_month: tuple[MonthRow, ...]
    by_organisation: tuple[OrganisationRow, ...]
    referred_members: int | None  # people who used a referral issued in the period
    borrowed: int | None  # of them, people who have borrowed since
    median_days_to_first_loan: float | None  # from the referral's issue to their first loan after using it
    loans_per_referred_member: float | None  # loans lent in the period, per referred member
    other_members: int | None  # members who never used a referral, joined by the end of the period
    loans_per_other_member: float | None
    categories: tuple[CategoryRow, ...]


@dataclass
class _Tally:
    issued: int = 0
    redeemed: int = 0
    in_use: int = 0


def _counts_column(tallies: Sequence[_Tally]) -> list[Counts]:
    """Rows whose totals are shown too: each measure suppressed as a column."""
    issued = suppress_cells([t.issued for t in tallies])
    redeemed = suppress_cells([t.redeemed for t in tallies])
    in_use = suppress_cells([t.in_use for t in tallies])
    return [
        Counts(
            issued=issued[i],
            redeemed=redeemed[i],
            in_use=in_use[i],
            take_up_percent=percent(t.redeemed, t.issued)
            if issued[i] is not None and redeemed[i] is not None
            else None,
        )
        for i, t in enumerate(tallies)
    ]


def _counts(tally: _Tally) -> Counts:
    return Counts(
        issued=suppress(tally.issued),
        redeemed=suppress(tally.redeemed),
        in_use=suppress(tally.in_use),
        take_up_percent=percent(tally.redeemed, tally.issued),
    )


async def impact(*, viewer, from_day: date | None, to_day: date | None) -> Impact:
    """The report for the period (the venue's days, both included; the last 12 months by
    default), over the referrals issued in it. NotAllowed for anyone but link workers (their
    organisation) and coordinators (all); InvalidInput ``invalid_range`` for a period that
    ends before it starts or is too long."""

    organisation_id = referrals._scope(viewer)
    calendar = await venues.calendar()
    zone = calendar.timezone
    now = clock.now()
    today = venues.today(calendar, now)
    default_from, default_to = default_period(today)
    from_day = from_day or (default_from if to_day is None else default_period(to_day)[0])
    to_day = to_day or max(default_to, from_day)
    if problems := period_problems(from_day, to_day):
        raise errors.InvalidInput(next(iter(problems.values())), code="invalid_range", errors=problems)
    start = venue_rules.at_local(from_day, time(0), zone)
    end = venue_rules.at_local(to_day + timedelta(days=1), time(0), zone)

    query = Referral.select(
        Referral.organisation,
        Referral.status,
        Referral.redeem_by,
        Referral.ends_at,
        Referral.issued_at,
        Referral.redeemed_at,
        Referral.member,
    ).where(Referral.issued_at >= start, Referral.issued_at < end)
    if organisation_id is not None:
        query = query.where(Referral.organisation == organisation_id)
    rows = await query.run()

    months = months_between(from_day, to_day)
    by_month = {month: _Tally() for month in months}
    if organisation_id is None:
        organisations = await Organisation.select(Organisation.id, Organisation.name).order_by(Organisation.name).run()
    else:
        organisations = (
            await Organisation.select(Organisation.id, Organisation.name)
            .where(Organisation.id == organisation_id)
            .run()
        )
    by_organisation = {row["id"]: _Tally() for row in organisations}
    total = _Tally()
    first_use: dict[int, tuple[datetime, datetime]] = {}  # member: (redeemed_at, issued_at) of their first use
    for row in rows:
        status = rules.effective_status(
            status=row["status"], redeem_by=row["redeem_by"], today=today, ends_at=row["ends_at"], now=now
        )
        tallies = [
            total,
            by_month[venue_rules.local_date(row["issued_at"], zone).replace(day=1)],
            by_organisation.setdefault(row["organisation"], _Tally()),
        ]
        for tally in tallies:
            tally.issued += 1
            if row["redeemed_at"] is not None:
                tally.redeemed += 1
            if status == rules.Status.redeemed:
                tally.in_use += 1
        if row["redeemed_at"] is not None and row["member"] is not None:
            earlier = first_use.get(row["member"])
            if earlier is None or row["redeemed_at"] < earlier[0]:
                first_use[row["member"]] = (row["redeemed_at"], row["issued_at"])

    # Loans of the people referred: their first loan after using the code, those in the period,
    # and the top-level categories of what they borrowed.
    referred = sorted(first_use)
    loans = (
        await Loan.select(Loan.member, Loan.lent_at, Loan.item.item_group.category.as_alias("category"))
        .where(Loan.member.is_in(referred))
        .run()
        if referred
        else []
    )
    first_loan: dict[int, datetime] = {}
    in_period: list[dict] = []
    for loan in loans:
        redeemed_at, _issued_at = first_use[loan["member"]]
        if loan["lent_at"] >= redeemed_at and (
            loan["member"] not in first_loan or loan["lent_at"] < first_loan[loan["member"]]
        ):
            first_loan[loan["member"]] = loan["lent_at"]
        if start <= loan["lent_at"] < end:
            in_period.append(loan)
    days = [
        (venue_rules.local_date(first_loan[member], zone) - venue_rules.local_date(first_use[member][1], zone)).days
        for member in first_loan
    ]

    # Everyone else: members who never used any referral (of any organisation) and had joined by
    # the end of the period, and the loans lent to them in it.
    ever_referred = sorted(
        {
            row["member"]
            for row in await Referral.select(Referral.member)
            .where(Referral.member.is_not_null(), Referral.redeemed_at.is_not_null())
            .run()
        }
    )
    others_query = Account.count().where(Account.role == "member", Account.created_at < end)
    other_loans_query = Loan.count().where(Loan.member.role == "member", Loan.lent_at >= start, Loan.lent_at < end)
    if ever_referred:
        others_query = others_query.where(Account.id.not_in(ever_referred))
        other_loans_query = other_loans_query.where(Loan.member.not_in(ever_referred))
    other_members = await others_query.run()
    other_loans = await other_loans_query.run()

    categories = _categories(
        in_period,
        {
            row["id"]: (row["name"], row["parent"])
            for row in await Category.select(Category.id, Category.name, Category.parent).run()
        },
    )

    month_counts = _counts_column([by_month[month] for month in months])
    organisation_ids = list(by_organisation)
    names = {row["id"]: row["name"] for row in organisations}
    organisation_counts = _counts_column([by_organisation[key] for key in organisation_ids])
    return Impact(
        from_day=from_day,
        to_day=to_day,
        organisation=(names.get(organisation_id) or viewer.organisation_name or "")
        if organisation_id is not None
        else None,
        totals=_counts(total),
        by_month=tuple(MonthRow(month=month, counts=counts) for month, counts in zip(months, month_counts)),
        by_organisation=tuple(
            OrganisationRow(organisation=names.get(key, ""), counts=counts)
            for key, counts in zip(organisation_ids, organisation_counts)
        ),
        referred_members=suppress(len(referred)),
        borrowed=suppress(len(first_loan)),
        median_days_to_first_loan=median(days),
        loans_per_referred_member=per_person(len(in_period), len(referred)),
        other_members=suppress(other_members),
        loans_per_other_member=per_person(other_loans, other_members),
        categories=categories,
    )


def _categories(loans: Sequence[dict], tree: dict[int, tuple[str, int | None]]) -> tuple[CategoryRow, ...]:
    """Loans by top-level category. A category is shown on its own only when at least ``SMALL``
    loans to at least ``SMALL`` different people fall in it; the rest are gathered in one row."""

    def root(category_id: int | None) -> int | None:
        seen = set()
        while (
            category_id is not None
            and category_id in tree
            and tree[category_id][1] is not None
            and category_id not in seen
        ):
            seen.add(category_id)
            category_id = tree[category_id][1]
        return category_id

    groups: dict[int | None, list[int]] = {}
    for loan in loans:
        groups.setdefault(root(loan["category"]), []).append(loan["member"])
    shown: list[CategoryRow] = []
    rest: list[int] = []
    for key, borrowers in groups.items():
        if key is not None and key in tree and len(borrowers) >= SMALL and len(set(borrowers)) >= SMALL:
            shown.append(CategoryRow(category=tree[key][0], loans=len(borrowers)))
        else:
            rest.extend(borrowers)
    shown.sort(key=lambda row: (-(row.loans or 0), row.category.lower()))
    if rest:
        enough = len(rest) >= SMALL and len(set(rest)) >= SMALL
        # When every category is small there is nothing to compare: one row, suppressed or not.
        shown.append(
            CategoryRow(
                category=_l("Other categories") if shown else _l("All categories"),
                loans=len(rest) if enough else None,
                other=True,
            )
        )
    return tuple(shown)


# --- CSV --------------------------------------------------------------------------------------

CSV_COLUMNS = ("section", "group", "measure", "value")
SUPPRESSED_CSV = "<5"


def _cell(value: object) -> str:
    return SUPPRESSED_CSV if value is None else safe_cell(value)


def impact_csv(report: Impact) -> str:
    """The report as one long table: section, group (a month, an organisation or a category),
    measure, value; suppressed values are "<5"."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["period", "", "from", report.from_day.isoformat()])
    writer.writerow(["period", "", "to", report.to_day.isoformat()])
    if report.organisation is not None:
        writer.writerow(["period", "", "organisation", safe_cell(report.organisation)])

    def counts(section: str, group: str, values: Counts) -> None:
        for measure in ("issued", "redeemed", "in_use", "take_up_percent"):
            writer.writerow([section, safe_cell(group), measure, _cell(getattr(values, measure))])

    counts("summary", "", report.totals)
    for measure in (
        "referred_members",
        "borrowed",
        "median_days_to_first_loan",
        "loans_per_referred_member",
        "other_members",
        "loans_per_other_member",
    ):
        writer.writerow(["summary", "", measure, _cell(getattr(report, measure))])
    for row in report.by_month:
        counts("month", row.month.strftime("%Y-%m"), row.counts)
    for row in report.by_organisation:
        counts("organisation", row.organisation, row.counts)
    for row in report.categories:
        writer.writerow(["category", safe_cell(str(row.category)), "loans", _cell(row.loans)])
    return out.getvalue()
