"""What lending's rules need, read from the tables: the copy and its thing, loan periods, the
borrower's standing, who a message goes to; and the pieces every use case shares (the screen
an action came from, a backdated time, reasons as the API lists them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from lending import codes, db, errors, i18n
from lending.catalog import services as catalog
from lending.catalog.tables import Item, ItemGroup
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.rules import HoldStatus, ReservationStatus
from lending.members.tables import Account
from lending.memberships import records as membership_records
from lending.venues import rules as hours

SCREENS = ("desk", "api", "account", "admin", "cli")


def screen_of(via: str) -> str:
    return via if via in SCREENS else "api"


def code_from_scan(text: str) -> str:
    """A code typed, read by a barcode scanner, or decoded from a QR (``.../i/CODE`` for an item,
    ``.../c/CODE`` for a member card); '' when it cannot be one."""
    cleaned = (text or "").strip()
    for marker in ("/i/", "/c/"):
        if marker in cleaned:
            cleaned = cleaned.rsplit(marker, 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/")
            break
    return codes.normalise(cleaned)


def category_chain(nodes: dict[int, catalog.CategoryNode], category_id: int | None) -> tuple[int | None, ...]:
    """Loan periods of the category and its ancestors, nearest first."""
    chain, seen = [], set()
    while category_id is not None and category_id in nodes and category_id not in seen:
        seen.add(category_id)
        chain.append(nodes[category_id].loan_days)
        category_id = nodes[category_id].parent_id
    return tuple(chain)


async def category_days(category_id: int | None) -> tuple[int | None, ...]:
    """``category_chain`` from the kept category tree."""
    return category_chain({node.id: node for node in await catalog.category_tree()}, category_id)


# --- the borrower, in one statement ----------------------------------------------------------

_MEMBER = db.Statement(
    "SELECT a.id, a.name, a.email, a.language, a.active, "
    "(SELECT count(*) FROM loan l WHERE l.member = a.id AND l.returned_at IS NULL) AS open_loans, "
    "(SELECT count(*) FROM loan l WHERE l.member = a.id AND l.returned_at IS NULL AND l.due_at < {now}) "
    "AS overdue_loans, "
    "(SELECT COALESCE(sum(f.amount_pence), 0) FROM fee f WHERE f.member = a.id AND f.settled_at IS NULL) "
    "AS unpaid_pence "
    "FROM account a WHERE a.id = {member}"
)


@dataclass(frozen=True)
class Member:
    """The borrower as check-out, holds and bookings see them."""

    id: int
    name: str
    email: str | None
    language: str
    borrower: rules.Borrower
    membership: object  # memberships' view of their current membership, or None


async def member(member_id: int, now: datetime, pol: rules.Policy) -> Member:
    """Who is borrowing and where they stand (loans out, overdue, fees owed, their membership):
    two statements. 404 ``member_not_found`` when there is no such account."""
    rows = await _MEMBER.rows(Account, now=now, member=member_id)
    if not rows:
        raise errors.NotFound(_l("There is no member with that card."), code="member_not_found")
    row = rows[0]
    membership = await membership_records.current_membership(member_id=member_id, now=now)
    borrower = rules.Borrower(
        membership_status=membership.status if membership else None,
        loan_limit=membership.loan_limit if membership else 0,
        open_loans=int(row["open_loans"]),
        overdue_loans=int(row["overdue_loans"]),
        unpaid_fees_pence=int(row["unpaid_pence"]) if pol.fees_enabled else 0,
    )
    return Member(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        language=row["language"],
        borrower=borrower,
        membership=membership,
    )


async def borrower_facts(member_id: int, now: datetime, pol: rules.Policy) -> tuple[rules.Borrower, object]:
    found = await member(member_id, now, pol)
    return found.borrower, found.membership


# --- the basket, in one statement --------------------------------------------------------------

_WAITING, _READY, _BOOKED = HoldStatus.waiting, HoldStatus.ready, ReservationStatus.booked
_ACTIVE = ", ".join(f"'{status}'" for status in HoldStatus.ACTIVE)
# One row per copy asked for, with every fact the check-out rules read; ``{codes}`` is filled
# with one placeholder per code. The hold and booking rules are those of rules.copy_reasons.
_BASKET = db.Statement(
    "SELECT i.id, i.code, i.status, i.item_group, i.site, "
    "g.name, g.category, g.loan_days, "
    "EXISTS (SELECT 1 FROM loan l WHERE l.item = i.id AND l.returned_at IS NULL) AS on_loan, "
    f"(SELECT h.member FROM hold h WHERE h.item = i.id AND h.status = '{_READY}' AND h.expires_at > {{now}} "
    "ORDER BY h.id LIMIT 1) AS held_for, "
    f"(SELECT count(*) FROM hold h WHERE h.item_group = i.item_group AND h.status = '{_WAITING}' "
    "AND h.member <> {member} AND h.id < COALESCE((SELECT min(m.id) FROM hold m WHERE m.item_group = i.item_group "
    f"AND m.member = {{member}} AND m.status = '{_WAITING}'), 2147483647)) AS waiting_ahead, "
    f"(SELECT min(r.starts_on) FROM reservation r WHERE r.item = i.id AND r.status = '{_BOOKED}' "
    "AND r.member <> {member} AND r.ends_on >= {yesterday}) AS next_booking_from, "
    f"(SELECT r.id FROM reservation r WHERE r.item = i.id AND r.member = {{member}} AND r.status = '{_BOOKED}' "
    "AND r.starts_on <= {today} AND r.ends_on >= {today} ORDER BY r.id LIMIT 1) AS own_booking_id, "
    f"(SELECT r.ends_on FROM reservation r WHERE r.item = i.id AND r.member = {{member}} AND r.status = '{_BOOKED}' "
    "AND r.starts_on <= {today} AND r.ends_on >= {today} ORDER BY r.id LIMIT 1) AS own_booking_ends_on, "
    "(SELECT max(l.returned_at) FROM loan l WHERE l.item = i.id AND l.returned_at IS NOT NULL) AS last_returned_at, "
    f"EXISTS (SELECT 1 FROM hold h WHERE h.item = i.id AND h.status = '{_READY}' AND h.member <> {{member}} "
    "AND h.expires_at <= {now}) AS lapsed_hold, "
    "EXISTS (SELECT 1 FROM hold h WHERE h.member = {member} AND h.item_group = i.item_group "
    f"AND h.status IN ({_ACTIVE})) AS own_hold "
    "FROM item i JOIN item_group g ON g.id = i.item_group "
    "WHERE i.code IN ({codes}) ORDER BY i.code"
)


@dataclass(frozen=True)
class BasketCopy:
    """One copy asked for, with what decides whether it can go out."""

    id: int
    code: str
    status: str
    group_id: int
    site_id: int | None
    name: str
    category_id: int | None
    loan_days: int | None
    on_loan: bool
    held_for: int | None
    waiting_ahead: int
    next_booking_from: date | None  # the earliest booking by someone else not yet over
    own_booking_id: int | None  # this member's booking that starts today (or started, uncollected)
    own_booking_ends_on: date | None
    last_returned_at: datetime | None
    lapsed_hold: bool  # someone else's hold on it ran out and the sweep has not ended it yet
    own_hold: bool  # this member is in the queue for the thing (or it is put aside for them)


def _moment(value: object) -> datetime | None:
    """A timestamp the database computed: SQLite gives text, PostgreSQL a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


async def lock_copies(codes: list[str]) -> None:
    """PostgreSQL: lock the copies, always in code order, before anything is read or decided
    (SQLite's ``BEGIN IMMEDIATE`` has serialised writers already)."""
    if codes and db.is_postgres():
        marks = ", ".join(["{}"] * len(codes))
        await Item.raw(f"SELECT id FROM item WHERE code IN ({marks}) ORDER BY code FOR UPDATE", *codes).run()


async def basket(codes: list[str], *, member_id: int, now: datetime, today: date) -> dict[str, BasketCopy]:
    """Every fact the rules need for each of these copies, by code; codes of no item are absent."""
    if not codes:
        return {}
    rows = await _BASKET.rows(
        Item, now=now, member=member_id, today=today, yesterday=today - timedelta(days=1), codes=list(codes)
    )
    return {
        row["code"]: BasketCopy(
            id=row["id"],
            code=row["code"],
            status=row["status"],
            group_id=row["item_group"],
            site_id=row["site"],
            name=row["name"],
            category_id=row["category"],
            loan_days=row["loan_days"],
            on_loan=bool(row["on_loan"]),
            held_for=row["held_for"],
            waiting_ahead=int(row["waiting_ahead"]),
            next_booking_from=_day(row["next_booking_from"]),
            own_booking_id=row["own_booking_id"],
            own_booking_ends_on=_day(row["own_booking_ends_on"]),
            last_returned_at=_moment(row["last_returned_at"]),
            lapsed_hold=bool(row["lapsed_hold"]),
            own_hold=bool(row["own_hold"]),
        )
        for row in rows
    }


async def item_row(code: str, *, lock: bool) -> dict | None:
    """The item (locked on PostgreSQL inside a write; SQLite's write lock serialises already)."""
    query = Item.select(Item.id, Item.code, Item.status, Item.item_group, Item.condition, Item.site).where(
        Item.code == code
    )
    if lock and db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def group_row(group_id: int) -> dict:
    return (
        await ItemGroup.select(ItemGroup.id, ItemGroup.name, ItemGroup.category, ItemGroup.loan_days, ItemGroup.parts)
        .where(ItemGroup.id == group_id)
        .first()
        .run()
    )


async def due_for(group: dict, membership, cal: hours.Calendar, lent_at: datetime) -> datetime:
    days = rules.loan_days(
        item_days=group["loan_days"],
        category_days=await category_days(group["category"]),
        tier_days=getattr(membership, "loan_days", None),
    )
    return hours.due_at(calendar=cal, lent_at=lent_at, days=days)


def reason_list(reasons) -> list[dict]:
    return [{"code": reason.code, "detail": reason.message} for reason in reasons]


def backdated(
    value: datetime | str | None, *, now: datetime, not_before: datetime | None = None, field_name: str
) -> datetime:
    """A backdated time, or now. Strings are the venue's wall-clock ("2026-12-01T15:30")."""
    if value is None or value == "":
        return now
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise errors.InvalidInput(
                _l("Enter a date and time like 2026-12-01 15:30."), code="invalid_date", field=field_name
            ) from None
        if parsed.tzinfo is None:
            parsed = hours.at_local(parsed.date(), parsed.time(), i18n.current_time_zone())
        value = parsed
    if value.tzinfo is None:
        raise errors.InvalidInput(_l("Give the time with its time zone."), code="invalid_date", field=field_name)
    if problem := rules.backdate_problem(when=value, now=now, not_before=not_before):
        raise errors.InvalidInput(problem, code="invalid_date", field=field_name)
    return value


async def refuse_unless_may_queue(
    member_id: int, now: datetime, pol: rules.Policy, message: Callable[[object], object]
) -> None:
    """Holds and bookings are for members who may borrow (the item limit applies when they
    collect, not when they ask); ``message`` words the first reason."""
    borrower, _ = await borrower_facts(member_id, now, pol)
    if blocking := rules.queue_reasons(borrower, pol):
        raise errors.RuleViolation(message(blocking[0].message), code="borrower_blocked", reasons=reason_list(blocking))


async def recipient(member_id: int) -> dict | None:
    row = (
        await Account.select(Account.email, Account.language, Account.name).where(Account.id == member_id).first().run()
    )
    return row if row and row["email"] else None
