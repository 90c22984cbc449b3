"""Lending: check-out (one step for several items), check-in, renewals, holds, reservations,
the fee ledger and the reminders members get.

Every change runs in one write transaction: SQLite's ``BEGIN IMMEDIATE`` serialises writers,
and on PostgreSQL the items involved are locked (``FOR UPDATE``, always in code order). The database has
the last word: a partial unique index allows one open loan per item, and a violation becomes
409 ``item_unavailable``, never a 500.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from lending import clock, codes, db, errors, i18n
from lending.audit import services as audit
from lending.catalog import services as catalog
from lending.catalog.rules import CONDITIONS as ITEM_CONDITIONS
from lending.catalog.rules import Status as ItemStatus
from lending.catalog.services import ItemView
from lending.catalog.tables import Category, Item, ItemGroup
from lending.i18n import lazy_gettext as _l
from lending.loans import ical, rules
from lending.loans.rules import HoldStatus, Reason, ReservationStatus
from lending.loans.tables import CalendarFeed, Fee, Hold, Loan, LoanPolicy, Reservation
from lending.mail import services as mail
from lending.members import services as members
from lending.members.tables import Account
from lending.memberships import services as memberships
from lending.venues import rules as hours
from lending.venues import services as venues

SCREENS = ("desk", "api", "account", "admin", "cli")


def _screen(via: str) -> str:
    return via if via in SCREENS else "api"


# --- policy -----------------------------------------------------------------------------------

_POLICY_FIELDS = (
    "renewal_limit",
    "buffer_hours",
    "hold_days",
    "due_soon_days",
    "reserve_ahead_days",
    "max_reservation_days",
    "fee_per_day_pence",
    "fee_cap_pence",
    "block_over_pence",
)


async def policy() -> rules.Policy:
    row = await LoanPolicy.select().order_by(LoanPolicy.id).first().run()
    if row is None:
        return rules.Policy()
    return rules.Policy(**{name: row[name] for name in _POLICY_FIELDS}, fees_enabled=bool(row["fees_enabled"]))


async def save_policy(*, values: dict[str, object], actor_id: int | None = None) -> rules.Policy:
    """Replace the lending rules, all or nothing, within their bounds."""
    numbers: dict[str, int] = {}
    problems: dict[str, str] = {}
    for name in _POLICY_FIELDS:
        raw = values.get(name)
        try:
            numbers[name] = raw if isinstance(raw, int) and not isinstance(raw, bool) else int(str(raw).strip())
        except (TypeError, ValueError):
            numbers[name] = -1
    problems.update(rules.policy_problems(numbers))
    if problems:
        raise errors.InvalidInput(_l("Some lending rules need correcting."), code="invalid_policy", errors=problems)
    fees_enabled = values.get("fees_enabled") in (True, "yes", "on", "true", "1", 1)
    async with db.transaction(write=True):
        current = await LoanPolicy.select(LoanPolicy.id).order_by(LoanPolicy.id).first().run()
        fields = {**numbers, "fees_enabled": fees_enabled, "updated_at": clock.now()}
        if current is None:
            await LoanPolicy.insert(LoanPolicy(**fields)).run()
        else:
            await (
                LoanPolicy.update({getattr(LoanPolicy, k): v for k, v in fields.items()})
                .where(LoanPolicy.id == current["id"])
                .run()
            )
        await audit.record(
            action="loan.policy",
            actor_id=actor_id,
            subject="loan_policy",
            detail=", ".join(f"{k}={v}" for k, v in sorted({**numbers, "fees": fees_enabled}.items())),
        )
    return await policy()


# --- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoanView:
    id: int
    item_code: str
    item_name: str
    group_id: int
    member_id: int
    member_name: str
    lent_at: datetime
    due_at: datetime
    renewals: int
    recorded_at: datetime
    returned_at: datetime | None
    return_condition: str
    return_notes: str
    parts_missing: list[str]

    @property
    def open(self) -> bool:
        return self.returned_at is None

    def overdue(self, now: datetime | None = None) -> bool:
        return self.returned_at is None and self.due_at < (now or clock.now())


_LOAN_COLUMNS = (
    Loan.id,
    Loan.item,
    Loan.item.code.as_alias("item_code"),
    Loan.item.item_group.name.as_alias("item_name"),
    Loan.item.item_group.as_alias("group_id"),
    Loan.member,
    Loan.member.name.as_alias("member_name"),
    Loan.lent_at,
    Loan.due_at,
    Loan.renewals,
    Loan.recorded_at,
    Loan.returned_at,
    Loan.return_condition,
    Loan.return_notes,
    Loan.parts_missing,
)


def _loan_view(row: dict) -> LoanView:
    parts = row["parts_missing"]
    return LoanView(
        id=row["id"],
        item_code=row["item_code"],
        item_name=row["item_name"],
        group_id=row["group_id"],
        member_id=row["member"],
        member_name=row["member_name"],
        lent_at=row["lent_at"],
        due_at=row["due_at"],
        renewals=row["renewals"],
        recorded_at=row["recorded_at"],
        returned_at=row["returned_at"],
        return_condition=row["return_condition"],
        return_notes=row["return_notes"],
        parts_missing=json.loads(parts) if isinstance(parts, str) else list(parts or []),
    )


async def get_loan(*, loan_id: int) -> LoanView:
    row = await Loan.select(*_LOAN_COLUMNS).where(Loan.id == loan_id).first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such loan."), code="loan_not_found")
    return _loan_view(row)


async def member_loans(*, member_id: int, open_only: bool = True, limit: int = 200) -> list[LoanView]:
    query = Loan.select(*_LOAN_COLUMNS).where(Loan.member == member_id)
    if open_only:
        query = query.where(Loan.returned_at.is_null()).order_by(Loan.due_at)
    else:
        query = query.where(Loan.returned_at.is_not_null()).order_by(Loan.returned_at, ascending=False)
    return [_loan_view(row) for row in await query.limit(limit).run()]


async def overdue_loans(*, now: datetime | None = None, limit: int = 100) -> list[LoanView]:
    """Loans past their due date, the longest overdue first: the volunteers' list to follow up."""
    rows = (
        await Loan.select(*_LOAN_COLUMNS)
        .where(Loan.returned_at.is_null(), Loan.due_at < (now or clock.now()))
        .order_by(Loan.due_at)
        .limit(limit)
        .run()
    )
    return [_loan_view(row) for row in rows]


async def open_loan_for_item(*, code: str) -> LoanView | None:
    row = (
        await Loan.select(*_LOAN_COLUMNS)
        .where(Loan.item.code == codes.normalise(code), Loan.returned_at.is_null())
        .first()
        .run()
    )
    return _loan_view(row) if row else None


@dataclass(frozen=True)
class HoldView:
    id: int
    group_id: int
    item_name: str
    member_id: int
    member_name: str
    status: str
    placed_at: datetime
    item_code: str | None
    ready_at: datetime | None
    expires_at: datetime | None
    position: int = 0  # 1 is next; 0 once ready or closed


_HOLD_COLUMNS = (
    Hold.id,
    Hold.item_group,
    Hold.item_group.name.as_alias("item_name"),
    Hold.member,
    Hold.member.name.as_alias("member_name"),
    Hold.status,
    Hold.placed_at,
    Hold.item.code.as_alias("item_code"),
    Hold.ready_at,
    Hold.expires_at,
)


async def _hold_views(rows: list[dict]) -> list[HoldView]:
    views = []
    for row in rows:
        position = 0
        if row["status"] == HoldStatus.waiting:
            position = (
                1
                + await Hold.count()
                .where(
                    Hold.item_group == row["item_group"],
                    Hold.status == HoldStatus.waiting,
                    (Hold.placed_at < row["placed_at"])
                    | ((Hold.placed_at == row["placed_at"]) & (Hold.id < row["id"])),
                )
                .run()
            )
        views.append(
            HoldView(
                id=row["id"],
                group_id=row["item_group"],
                item_name=row["item_name"],
                member_id=row["member"],
                member_name=row["member_name"],
                status=row["status"],
                placed_at=row["placed_at"],
                item_code=row["item_code"],
                ready_at=row["ready_at"],
                expires_at=row["expires_at"],
                position=position,
            )
        )
    return views


async def member_holds(*, member_id: int) -> list[HoldView]:
    rows = (
        await Hold.select(*_HOLD_COLUMNS)
        .where(Hold.member == member_id, Hold.status.is_in(list(HoldStatus.ACTIVE)))
        .order_by(Hold.id)
        .run()
    )
    return await _hold_views(rows)


async def get_hold(*, hold_id: int) -> HoldView:
    rows = await Hold.select(*_HOLD_COLUMNS).where(Hold.id == hold_id).run()
    if not rows:
        raise errors.NotFound(_l("There is no such hold."), code="hold_not_found")
    return (await _hold_views(rows))[0]


async def ready_holds(*, limit: int = 100) -> list[HoldView]:
    """Copies put aside at the counter, for the volunteers' shelf."""
    rows = (
        await Hold.select(*_HOLD_COLUMNS)
        .where(Hold.status == HoldStatus.ready)
        .order_by(Hold.expires_at)
        .limit(limit)
        .run()
    )
    return await _hold_views(rows)


@dataclass(frozen=True)
class ReservationView:
    id: int
    item_code: str
    item_name: str
    member_id: int
    member_name: str
    starts_on: date
    ends_on: date
    status: str


_RESERVATION_COLUMNS = (
    Reservation.id,
    Reservation.item.code.as_alias("item_code"),
    Reservation.item.item_group.name.as_alias("item_name"),
    Reservation.member,
    Reservation.member.name.as_alias("member_name"),
    Reservation.starts_on,
    Reservation.ends_on,
    Reservation.status,
)


def _reservation_view(row: dict) -> ReservationView:
    return ReservationView(
        id=row["id"],
        item_code=row["item_code"],
        item_name=row["item_name"],
        member_id=row["member"],
        member_name=row["member_name"],
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        status=row["status"],
    )


async def member_reservations(*, member_id: int) -> list[ReservationView]:
    rows = (
        await Reservation.select(*_RESERVATION_COLUMNS)
        .where(Reservation.member == member_id, Reservation.status == ReservationStatus.booked)
        .order_by(Reservation.starts_on)
        .run()
    )
    return [_reservation_view(row) for row in rows]


async def item_reservations(*, code: str) -> list[ReservationView]:
    rows = (
        await Reservation.select(*_RESERVATION_COLUMNS)
        .where(Reservation.item.code == codes.normalise(code), Reservation.status == ReservationStatus.booked)
        .order_by(Reservation.starts_on)
        .run()
    )
    return [_reservation_view(row) for row in rows]


# --- reading a scan ---------------------------------------------------------------------------


def code_from_scan(text: str) -> str:
    """A code typed, read by a barcode scanner, or decoded from a QR (``.../i/CODE`` for an item,
    ``.../c/CODE`` for a member card); '' when it cannot be one."""
    cleaned = (text or "").strip()
    for marker in ("/i/", "/c/"):
        if marker in cleaned:
            cleaned = cleaned.rsplit(marker, 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/")
            break
    return codes.normalise(cleaned)


# --- what decides a check-out -----------------------------------------------------------------


async def _category_days(category_id: int | None) -> tuple[int | None, ...]:
    """Loan periods of the category and its ancestors, nearest first."""
    if category_id is None:
        return ()
    rows = {row["id"]: row for row in await Category.select(Category.id, Category.parent, Category.loan_days).run()}
    chain, seen = [], set()
    while category_id is not None and category_id in rows and category_id not in seen:
        seen.add(category_id)
        chain.append(rows[category_id]["loan_days"])
        category_id = rows[category_id]["parent"]
    return tuple(chain)


async def _borrower(member_id: int, now: datetime, pol: rules.Policy) -> tuple[rules.Borrower, object]:
    membership = await memberships.current_membership(member_id=member_id, now=now)
    due = [
        row["due_at"]
        for row in await Loan.select(Loan.due_at).where(Loan.member == member_id, Loan.returned_at.is_null()).run()
    ]
    open_loans, overdue = len(due), sum(1 for moment in due if moment < now)
    unpaid = 0
    if pol.fees_enabled:
        rows = await Fee.select(Fee.amount_pence).where(Fee.member == member_id, Fee.settled_at.is_null()).run()
        unpaid = sum(row["amount_pence"] for row in rows)
    return rules.Borrower(
        membership_status=membership.status if membership else None,
        loan_limit=membership.loan_limit if membership else 0,
        open_loans=open_loans,
        overdue_loans=overdue,
        unpaid_fees_pence=unpaid,
    ), membership


async def _item_row(code: str, *, lock: bool) -> dict | None:
    """The item (locked on PostgreSQL inside a write; SQLite's write lock serialises already)."""
    query = Item.select(Item.id, Item.code, Item.status, Item.item_group, Item.condition, Item.site).where(
        Item.code == code
    )
    if lock and db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def _group(group_id: int) -> dict:
    return (
        await ItemGroup.select(ItemGroup.id, ItemGroup.name, ItemGroup.category, ItemGroup.loan_days, ItemGroup.parts)
        .where(ItemGroup.id == group_id)
        .first()
        .run()
    )


async def _copy_facts(item: dict, *, member_id: int, now: datetime, due_on: date, pol: rules.Policy) -> rules.Copy:
    on_loan = await Loan.exists().where(Loan.item == item["id"], Loan.returned_at.is_null()).run()
    held = (
        await Hold.select(Hold.member)
        .where(Hold.item == item["id"], Hold.status == HoldStatus.ready, Hold.expires_at > now)
        .first()
        .run()
    )
    waiting_ahead = 0
    if (
        held is None
        and await Hold.exists().where(Hold.item_group == item["item_group"], Hold.status == HoldStatus.waiting).run()
    ):
        mine = (
            await Hold.select(Hold.placed_at, Hold.id)
            .where(Hold.item_group == item["item_group"], Hold.member == member_id, Hold.status == HoldStatus.waiting)
            .first()
            .run()
        )
        ahead = Hold.count().where(
            Hold.item_group == item["item_group"], Hold.status == HoldStatus.waiting, Hold.member != member_id
        )
        if mine:
            ahead = ahead.where(Hold.id < mine["id"])
        waiting_ahead = await ahead.run()
    gap = rules.buffer_days(pol)
    booking = (
        await Reservation.select(Reservation.starts_on)
        .where(
            Reservation.item == item["id"],
            Reservation.status == ReservationStatus.booked,
            Reservation.member != member_id,
            Reservation.starts_on <= due_on + timedelta(days=gap),
            Reservation.ends_on >= now.date() - timedelta(days=1),
        )
        .order_by(Reservation.starts_on)
        .first()
        .run()
    )
    last = None
    if pol.buffer_hours:
        last = (
            await Loan.select(Loan.returned_at)
            .where(Loan.item == item["id"], Loan.returned_at.is_not_null())
            .order_by(Loan.returned_at, ascending=False)
            .first()
            .run()
        )
    return rules.Copy(
        status=item["status"],
        on_loan=on_loan,
        held_for=held["member"] if held else None,
        waiting_for_others=waiting_ahead,
        reserved_by_other_from=booking["starts_on"] if booking else None,
        available_from=(last["returned_at"] + pol.buffer) if last else None,
    )


async def _own_booking(item_id: int, member_id: int, today: date) -> dict | None:
    """The member's booking of this copy that starts today (or started and was not collected)."""
    return (
        await Reservation.select(Reservation.id, Reservation.ends_on)
        .where(
            Reservation.item == item_id,
            Reservation.member == member_id,
            Reservation.status == ReservationStatus.booked,
            Reservation.starts_on <= today,
            Reservation.ends_on >= today,
        )
        .first()
        .run()
    )


@dataclass(frozen=True)
class Assessment:
    """The desk's one panel: whether this member may borrow these items, with every reason."""

    member_id: int
    member_name: str
    membership: object
    borrower_reasons: tuple[Reason, ...]
    lines: tuple[rules.BasketLine, ...]
    open_loans: int = 0

    @property
    def ok(self) -> bool:
        return not self.borrower_reasons and all(line.ok for line in self.lines) and bool(self.lines)

    @property
    def reasons(self) -> list[Reason]:
        return [*self.borrower_reasons, *(reason for line in self.lines for reason in line.reasons)]


async def _member(member_id: int) -> dict:
    row = (
        await Account.select(Account.id, Account.name, Account.email, Account.language, Account.active)
        .where(Account.id == member_id)
        .first()
        .run()
    )
    if row is None:
        raise errors.NotFound(_l("There is no member with that card."), code="member_not_found")
    return row


async def _due_for(group: dict, membership, cal: hours.Calendar, lent_at: datetime) -> datetime:
    days = rules.loan_days(
        item_days=group["loan_days"],
        category_days=await _category_days(group["category"]),
        tier_days=getattr(membership, "loan_days", None),
    )
    return hours.due_at(calendar=cal, lent_at=lent_at, days=days)


async def _assess(*, member_id: int, item_codes: list[str], now: datetime, lent_at: datetime, lock: bool) -> Assessment:
    member = await _member(member_id)
    pol = await policy()
    cal = await venues.calendar()
    borrower, membership = await _borrower(member_id, now, pol)
    wanted = []
    for raw in item_codes:
        code = code_from_scan(raw) or str(raw).strip()[:40]
        if code not in wanted:
            wanted.append(code)
    lines = []
    today = hours.local_date(now, cal.timezone)
    for code in wanted:
        item = await _item_row(code, lock=lock) if codes.normalise(code) else None
        if item is None:
            lines.append(
                rules.BasketLine(
                    code=code,
                    name="",
                    reasons=(Reason("item_not_found", _l("There is no item with the code %(code)s.", code=code)),),
                )
            )
            continue
        group = await _group(item["item_group"])
        booking = await _own_booking(item["id"], member_id, today)
        site_cal = await venues.calendar(site_id=item["site"])  # due on a day the copy's site is open
        if booking:
            due = hours.end_of_open_day(calendar=site_cal, day=booking["ends_on"])
        else:
            due = await _due_for(group, membership, site_cal, lent_at)
        facts = await _copy_facts(
            item, member_id=member_id, now=now, due_on=hours.local_date(due, cal.timezone), pol=pol
        )
        lines.append(
            rules.BasketLine(
                code=item["code"],
                name=group["name"],
                reasons=rules.copy_reasons(facts, member_id=member_id, now=now),
                due_at=due,
                item_id=item["id"],
                group_id=item["item_group"],
                booking_id=booking["id"] if booking else None,
            )
        )
    found = sum(1 for line in lines if line.name)
    return Assessment(
        member_id=member_id,
        member_name=member["name"],
        membership=membership,
        borrower_reasons=rules.borrower_reasons(borrower, pol, adding=max(found, 1)),
        lines=tuple(lines),
        open_loans=borrower.open_loans,
    )


async def assess(*, member_id: int, item_codes: list[str]) -> Assessment:
    """Can this person borrow these things now? Every reason when not; nothing is written."""
    now = clock.now()
    return await _assess(
        member_id=member_id, item_codes=item_codes[: rules.MAX_BASKET], now=now, lent_at=now, lock=False
    )


def _reason_list(reasons) -> list[dict]:
    return [{"code": reason.code, "detail": reason.message} for reason in reasons]


def _raise_for(assessment: Assessment) -> None:
    """The first kind of problem decides the status: an unknown item 404, an item that cannot
    go out 409 ``item_unavailable``, a member who may not borrow 422 ``borrower_blocked``."""
    unknown = [line for line in assessment.lines if not line.name]
    if unknown:
        raise errors.NotFound(
            str(unknown[0].reasons[0].message),
            code="item_not_found",
            reasons=_reason_list(unknown[0].reasons),
            field="item_code",
        )
    blocked_items = [line for line in assessment.lines if line.reasons]
    if blocked_items:
        line = blocked_items[0]
        raise errors.Conflict(
            _l(
                "%(name)s (%(code)s) cannot go out: %(reason)s",
                name=line.name,
                code=codes.display(line.code),
                reason=line.reasons[0].message,
            ),
            code="item_unavailable",
            reasons=_reason_list(assessment.reasons),
        )
    if assessment.borrower_reasons:
        raise errors.RuleViolation(
            _l(
                "%(name)s cannot borrow now: %(reason)s",
                name=assessment.member_name,
                reason=assessment.borrower_reasons[0].message,
            ),
            code="borrower_blocked",
            reasons=_reason_list(assessment.reasons),
        )


def _when(
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


async def check_out(
    *,
    member_id: int,
    item_codes: list[str],
    actor_id: int | None,
    via: str = "desk",
    lent_at: datetime | str | None = None,
) -> list[LoanView]:
    """Lend these items to this member in one step, or none of them: every rule is checked
    again inside the transaction, so what the desk showed a moment ago cannot be stale."""
    if not item_codes:
        raise errors.InvalidInput(_l("Scan or type at least one item."), code="no_items", field="item_code")
    if len(item_codes) > rules.MAX_BASKET:
        raise errors.InvalidInput(_l("Lend at most 20 items at a time."), code="too_many_items", field="item_code")
    screen = _screen(via)
    with db.unique_violation_as(
        lambda: errors.Conflict(_l("That item has just gone out on another loan."), code="item_unavailable")
    ):
        async with db.transaction(write=True):
            ordered = sorted(item_codes, key=lambda c: code_from_scan(c) or str(c))
            for raw in ordered:  # lock the copies first (PostgreSQL), always in code order
                if code := code_from_scan(raw):
                    await _item_row(code, lock=True)
            now = clock.now()  # after the locks, so a loan never starts before the return it waited for
            when = _when(lent_at, now=now, field_name="lent_at")
            assessment = await _assess(member_id=member_id, item_codes=ordered, now=now, lent_at=when, lock=True)
            _raise_for(assessment)
            loans = []
            for line in assessment.lines:
                rows = (
                    await Loan.insert(
                        Loan(
                            item=line.item_id,
                            member=member_id,
                            lent_at=when,
                            due_at=line.due_at,
                            renewals=0,
                            lent_by=actor_id,
                            recorded_at=now,
                        )
                    )
                    .returning(Loan.id)
                    .run()
                )
                loans.append(
                    LoanView(
                        id=rows[0]["id"],
                        item_code=line.code,
                        item_name=line.name,
                        group_id=line.group_id,
                        member_id=member_id,
                        member_name=assessment.member_name,
                        lent_at=when,
                        due_at=line.due_at,
                        renewals=0,
                        recorded_at=now,
                        returned_at=None,
                        return_condition="",
                        return_notes="",
                        parts_missing=[],
                    )
                )
                await (
                    Item.update({Item.status: ItemStatus.on_loan.value, Item.updated_at: now})
                    .where(Item.id == line.item_id)
                    .run()
                )
                # Someone else's hold on this copy lapsed (the sweep had not run yet): it has ended.
                await (
                    Hold.update({Hold.status: HoldStatus.expired, Hold.closed_at: now})
                    .where(
                        Hold.item == line.item_id,
                        Hold.status == HoldStatus.ready,
                        Hold.member != member_id,
                        Hold.expires_at <= now,
                    )
                    .run()
                )
                await (
                    Hold.update({Hold.status: HoldStatus.collected, Hold.closed_at: now})
                    .where(
                        Hold.member == member_id,
                        Hold.item_group == line.group_id,
                        Hold.status.is_in(list(HoldStatus.ACTIVE)),
                    )
                    .run()
                )
                if line.booking_id is not None:
                    await (
                        Reservation.update(
                            {Reservation.status: ReservationStatus.collected, Reservation.closed_at: now}
                        )
                        .where(Reservation.id == line.booking_id)
                        .run()
                    )
                detail = f"member:{member_id}; due:{line.due_at.isoformat()}; via:{screen}"
                if when != now:
                    detail += f"; backdated to {when.isoformat()}"
                await audit.record(
                    action="loan.check_out", actor_id=actor_id, subject=f"item:{line.code}", detail=detail, at=now
                )
            await _queue_loan_receipt(member_id, loans)
    return loans


async def check_out_by_card(
    *,
    card_code: str,
    item_codes: list[str],
    actor_id: int | None,
    via: str = "api",
    lent_at: datetime | str | None = None,
) -> list[LoanView]:

    member = await members.member_by_card(card_code=code_from_scan(card_code) or card_code)
    return await check_out(member_id=member.id, item_codes=item_codes, actor_id=actor_id, via=via, lent_at=lent_at)


# --- check-in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Return:
    loan: LoanView
    changed: bool  # False when the loan had already been closed: scanning twice changes nothing
    hold_for: str | None = None  # the member the copy is now put aside for
    fee_pence: int = 0
    needs_repair: bool = False


def _parts_missing(parts: object, known: list[str]) -> list[str]:
    chosen = parts if isinstance(parts, list) else [parts] if parts else []
    missing = [str(part) for part in chosen if str(part) in known]
    if len(missing) != len(chosen):
        raise errors.InvalidInput(
            _l("Tick only parts from the item's checklist."), code="invalid_parts", field="parts_missing"
        )
    return missing


async def check_in(
    *,
    loan_id: int | None = None,
    item_code: str | None = None,
    condition: str = "",
    notes: str = "",
    parts_missing: list[str] | None = None,
    needs_repair: bool = False,
    returned_at: datetime | str | None = None,
    actor_id: int | None,
    via: str = "desk",
) -> Return:
    """Close the item's open loan. Returning what is already back changes nothing and says so;
    "needs repair" puts the copy into maintenance, otherwise it goes to the next hold or back
    on the shelf."""
    condition = (condition or "").strip()
    if condition and condition not in ITEM_CONDITIONS:
        raise errors.InvalidInput(_l("Choose a condition from the list."), code="invalid_condition", field="condition")
    notes = (notes or "").strip()
    if len(notes) > rules.MAX_NOTES:
        raise errors.InvalidInput(_l("Keep notes under 2,000 characters."), code="notes_too_long", field="notes")
    screen = _screen(via)
    async with db.transaction(write=True):
        if loan_id is not None:
            target = await Loan.select(Loan.id, Loan.item).where(Loan.id == loan_id).first().run()
            if target is None:
                raise errors.NotFound(_l("There is no such loan."), code="loan_not_found")
            item = (
                await Item.select(Item.id, Item.code, Item.status, Item.item_group)
                .where(Item.id == target["item"])
                .first()
                .run()
            )
            item = await _item_row(item["code"], lock=True)
        else:
            code = code_from_scan(item_code or "")
            item = await _item_row(code, lock=True) if code else None
            if item is None:
                raise errors.NotFound(_l("There is no item with that code."), code="item_not_found", field="item_code")
        now = clock.now()  # after the lock, so a return is never recorded before the loan it closes
        open_loan = (
            await Loan.select(Loan.id, Loan.lent_at, Loan.due_at, Loan.member)
            .where(Loan.item == item["id"], Loan.returned_at.is_null())
            .first()
            .run()
        )
        if loan_id is not None and (open_loan is None or open_loan["id"] != loan_id):
            return Return(loan=await get_loan(loan_id=loan_id), changed=False)
        if open_loan is None:
            last = (
                await Loan.select(Loan.id)
                .where(Loan.item == item["id"])
                .order_by(Loan.id, ascending=False)
                .first()
                .run()
            )
            if last is None:
                raise errors.Conflict(_l("This item is not on loan."), code="not_on_loan", field="item_code")
            return Return(loan=await get_loan(loan_id=last["id"]), changed=False)
        when = _when(returned_at, now=now, not_before=open_loan["lent_at"], field_name="returned_at")
        group = await _group(item["item_group"])
        known = json.loads(group["parts"]) if isinstance(group["parts"], str) else list(group["parts"] or [])
        missing = _parts_missing(parts_missing or [], known)
        await (
            Loan.update(
                {
                    Loan.returned_at: when,
                    Loan.returned_by: actor_id,
                    Loan.return_recorded_at: now,
                    Loan.return_condition: condition,
                    Loan.return_notes: notes,
                    Loan.parts_missing: json.dumps(missing),
                }
            )
            .where(Loan.id == open_loan["id"])
            .run()
        )
        repair = needs_repair or bool(missing)
        item_update = {
            Item.updated_at: now,
            Item.status: ItemStatus.maintenance.value if repair else ItemStatus.available.value,
        }
        if repair:
            reason = notes or (str(_l("Parts missing: %(parts)s", parts=", ".join(missing))) if missing else "")
            item_update[Item.status_reason] = reason or str(_l("Needs repair after a loan."))
        if condition:
            item_update[Item.condition] = condition
        await Item.update(item_update).where(Item.id == item["id"]).run()
        pol = await policy()
        cal = await venues.calendar()
        fee = rules.late_fee(
            policy=pol,
            due_on=hours.local_date(open_loan["due_at"], cal.timezone),
            returned_on=hours.local_date(when, cal.timezone),
        )
        if fee:
            await Fee.insert(
                Fee(
                    member=open_loan["member"],
                    loan=open_loan["id"],
                    amount_pence=fee,
                    reason=LATE_RETURN,
                    created_at=now,
                )
            ).run()
        detail = f"member:{open_loan['member']}; via:{screen}"
        if condition:
            detail += f"; condition:{condition}"
        if repair:
            detail += "; needs repair"
        if when != now:
            detail += f"; backdated to {when.isoformat()}"
        await audit.record(
            action="loan.check_in", actor_id=actor_id, subject=f"item:{item['code']}", detail=detail, at=now
        )
        hold_for = None if repair else await _offer_copy(item["id"], item["item_group"], now=now, pol=pol)
        loan = await get_loan(loan_id=open_loan["id"])
    return Return(loan=loan, changed=True, hold_for=hold_for, fee_pence=fee, needs_repair=repair)


# --- renewals ---------------------------------------------------------------------------------


async def renew(*, loan_id: int, actor_id: int | None, borrower_id: int | None = None, via: str = "desk") -> LoanView:
    """A new due date, one loan period from the later of now and the current due date, unless
    someone is waiting, the limit is reached or another member has booked the copy.
    ``borrower_id`` set means the member themself is asking: it must be their loan."""
    screen = _screen(via)
    async with db.transaction(write=True):
        query = Loan.select(Loan.id, Loan.item, Loan.member, Loan.due_at, Loan.renewals, Loan.returned_at).where(
            Loan.id == loan_id
        )
        if db.is_postgres():
            query = query.lock_rows("UPDATE")
        row = await query.first().run()
        now = clock.now()
        if row is None or (borrower_id is not None and row["member"] != borrower_id):
            raise errors.NotFound(_l("There is no such loan."), code="loan_not_found")
        item = (
            await Item.select(Item.id, Item.code, Item.item_group, Item.site)
            .where(Item.id == row["item"])
            .first()
            .run()
        )
        group = await _group(item["item_group"])
        pol = await policy()
        cal = await venues.calendar(site_id=item["site"])
        membership = await memberships.current_membership(member_id=row["member"], now=now)
        waiting = (
            await Hold.exists()
            .where(
                Hold.item_group == item["item_group"], Hold.status == HoldStatus.waiting, Hold.member != row["member"]
            )
            .run()
        )
        base = max(now, row["due_at"])
        new_due = await _due_for(group, membership, cal, base)
        booking = (
            await Reservation.select(Reservation.starts_on)
            .where(
                Reservation.item == item["id"],
                Reservation.status == ReservationStatus.booked,
                Reservation.member != row["member"],
            )
            .order_by(Reservation.starts_on)
            .first()
            .run()
        )
        gap = timedelta(days=rules.buffer_days(pol))
        reasons = list(
            rules.renewal_reasons(
                renewals=row["renewals"],
                policy=pol,
                someone_waiting=waiting,
                returned=row["returned_at"] is not None,
                reserved_by_other_from=(booking["starts_on"] - gap) if booking else None,
                new_due_on=hours.local_date(new_due, cal.timezone),
            )
        )
        if not reasons and (membership is None or not membership.may_borrow):
            reasons.append(Reason("membership_expired", _l("The membership has ended; renew it first.")))
        if reasons:
            cls = errors.Conflict if reasons[0].code != "membership_expired" else errors.RuleViolation
            raise cls(
                _l("This loan cannot be renewed: %(reason)s", reason=reasons[0].message),
                code="renewal_refused" if cls is errors.RuleViolation else reasons[0].code,
                reasons=_reason_list(reasons),
            )
        await Loan.update({Loan.due_at: new_due, Loan.renewals: row["renewals"] + 1}).where(Loan.id == loan_id).run()
        await audit.record(
            action="loan.renew",
            actor_id=actor_id,
            subject=f"item:{item['code']}",
            detail=f"member:{row['member']}; due:{new_due.isoformat()}; via:{screen}",
            at=now,
        )
    return await get_loan(loan_id=loan_id)


# --- holds ------------------------------------------------------------------------------------


def _hold_expiry(now: datetime, pol: rules.Policy, cal: hours.Calendar) -> datetime:
    """A copy put aside waits ``hold_days`` days, to the close of an open day."""
    return hours.due_at(calendar=cal, lent_at=now, days=pol.hold_days)


async def _offer_copy(item_id: int, group_id: int, *, now: datetime, pol: rules.Policy) -> str | None:
    """A copy back on the shelf goes to the first member waiting for the thing: their hold is
    ready, the copy reserved for them (until the close of an open day at its site), and they
    are told. Returns their name, or None."""
    first = (
        await Hold.select(Hold.id, Hold.member, Hold.member.name.as_alias("name"))
        .where(Hold.item_group == group_id, Hold.status == HoldStatus.waiting)
        .order_by(Hold.placed_at)
        .order_by(Hold.id)
        .first()
        .run()
    )
    if first is None:
        return None
    site = await Item.select(Item.site).where(Item.id == item_id).first().run()
    expires = _hold_expiry(now, pol, await venues.calendar(site_id=site["site"] if site else None))
    await (
        Hold.update({Hold.status: HoldStatus.ready, Hold.item: item_id, Hold.ready_at: now, Hold.expires_at: expires})
        .where(Hold.id == first["id"])
        .run()
    )
    await Item.update({Item.status: ItemStatus.reserved.value, Item.updated_at: now}).where(Item.id == item_id).run()
    await audit.record(
        action="hold.ready",
        actor_id=None,
        subject=f"hold:{first['id']}",
        detail=f"member:{first['member']}; item:{item_id}",
        at=now,
    )
    await _queue_hold_ready(first["id"])
    return first["name"]


async def set_item_status(*, code: str, status: str, reason: str = "", actor_id: int | None = None) -> ItemView:
    """Change an item's status by hand (``catalog.set_status`` checks the change); a copy back
    in use (out of repair) goes to the first person waiting before anyone else."""
    item = await catalog.set_status(code=code, status=status, reason=reason, actor_id=actor_id)
    if item.status == ItemStatus.available.value:
        row = await Item.select(Item.id).where(Item.code == item.code).first().run()
        if await offer_copy_if_waiting(item_id=row["id"]):
            item = await catalog.get_item(code=item.code)
    return item


async def offer_copy_if_waiting(*, item_id: int) -> str | None:
    """After a copy comes back into use by hand (out of repair), the queue gets it first."""
    async with db.transaction(write=True):
        item = await Item.select(Item.id, Item.status, Item.item_group).where(Item.id == item_id).first().run()
        if item is None or item["status"] != ItemStatus.available.value:
            return None
        return await _offer_copy(item_id, item["item_group"], now=clock.now(), pol=await policy())


async def _refuse_unless_may_queue(
    member_id: int, now: datetime, pol: rules.Policy, message: Callable[[object], object]
) -> None:
    """Holds and bookings are for members who may borrow (the item limit applies when they
    collect, not when they ask); ``message`` words the first reason."""
    borrower, _ = await _borrower(member_id, now, pol)
    if blocking := rules.queue_reasons(borrower, pol):
        raise errors.RuleViolation(
            message(blocking[0].message), code="borrower_blocked", reasons=_reason_list(blocking)
        )


async def place_hold(*, member_id: int, item_code: str, actor_id: int | None = None, via: str = "account") -> HoldView:
    """A place in the queue for the thing this copy is (any copy will do). If a copy is on the
    shelf now, it is put aside straight away."""
    code = code_from_scan(item_code)
    async with db.transaction(write=True):
        item = await _item_row(code, lock=True) if code else None
        now = clock.now()
        if item is None:
            raise errors.NotFound(_l("There is no item with that code."), code="item_not_found", field="item_code")
        if item["status"] == ItemStatus.retired.value:
            raise errors.Conflict(_l("This item has been retired."), code="item_retired")
        pol = await policy()
        await _refuse_unless_may_queue(
            member_id,
            now,
            pol,
            lambda reason: _l("A hold needs a membership that allows borrowing: %(reason)s", reason=reason),
        )
        if (
            await Loan.exists()
            .where(Loan.member == member_id, Loan.returned_at.is_null(), Loan.item.item_group == item["item_group"])
            .run()
        ):
            raise errors.Conflict(_l("You already have this on loan."), code="already_borrowed")
        if (
            await Hold.exists()
            .where(
                Hold.member == member_id,
                Hold.item_group == item["item_group"],
                Hold.status.is_in(list(HoldStatus.ACTIVE)),
            )
            .run()
        ):
            raise errors.Conflict(_l("You are already in the queue for this."), code="hold_exists")
        with db.unique_violation_as(
            lambda: errors.Conflict(_l("You are already in the queue for this."), code="hold_exists")
        ):
            rows = (
                await Hold.insert(
                    Hold(item_group=item["item_group"], member=member_id, status=HoldStatus.waiting, placed_at=now)
                )
                .returning(Hold.id)
                .run()
            )
        hold_id = rows[0]["id"]
        await audit.record(
            action="hold.place",
            actor_id=actor_id if actor_id is not None else member_id,
            subject=f"hold:{hold_id}",
            detail=f"member:{member_id}; item:{item['code']}; via:{_screen(via)}",
            at=now,
        )
        free = (
            await Item.select(Item.id)
            .where(Item.item_group == item["item_group"], Item.status == ItemStatus.available.value)
            .order_by(Item.id)
            .run()
        )
        for copy in free:
            if not await Loan.exists().where(Loan.item == copy["id"], Loan.returned_at.is_null()).run():
                await _offer_copy(copy["id"], item["item_group"], now=now, pol=pol)
                break
    return await get_hold(hold_id=hold_id)


async def cancel_hold(
    *, hold_id: int, actor_id: int | None, member_id: int | None = None, via: str = "account"
) -> None:
    """Leave the queue; a copy put aside passes to the next member."""
    async with db.transaction(write=True):
        now = clock.now()
        row = (
            await Hold.select(Hold.id, Hold.member, Hold.status, Hold.item, Hold.item_group)
            .where(Hold.id == hold_id)
            .first()
            .run()
        )
        if row is None or (member_id is not None and row["member"] != member_id):
            raise errors.NotFound(_l("There is no such hold."), code="hold_not_found")
        if row["status"] not in HoldStatus.ACTIVE:
            return
        # Guarded by the status read, so a sweep that expired it meanwhile (PostgreSQL) wins.
        cancelled = (
            await Hold.update({Hold.status: HoldStatus.cancelled, Hold.closed_at: now})
            .where(Hold.id == hold_id, Hold.status == row["status"])
            .returning(Hold.id)
            .run()
        )
        if not cancelled:
            return
        await audit.record(
            action="hold.cancel",
            actor_id=actor_id,
            subject=f"hold:{hold_id}",
            detail=f"member:{row['member']}; via:{_screen(via)}",
            at=now,
        )
        if row["status"] == HoldStatus.ready and row["item"]:
            await _release_copy(row["item"], row["item_group"], now=now)


async def _release_copy(item_id: int, group_id: int, *, now: datetime) -> None:
    """A copy no longer put aside goes back on the shelf, and to the next in the queue; unless
    it has gone out meanwhile (a hold that lapsed before the sweep noticed) or into repair."""
    released = (
        await Item.update({Item.status: ItemStatus.available.value, Item.updated_at: now})
        .where(Item.id == item_id, Item.status == ItemStatus.reserved.value)
        .returning(Item.id)
        .run()
    )
    if released:
        await _offer_copy(item_id, group_id, now=now, pol=await policy())


async def expire_holds(*, now: datetime | None = None) -> int:
    """Copies put aside and not collected in time pass to the next member in the queue."""
    now = now or clock.now()
    expired = 0
    async with db.transaction(write=True):
        rows = (
            await Hold.select(Hold.id, Hold.item, Hold.item_group)
            .where(Hold.status == HoldStatus.ready, Hold.expires_at <= now)
            .run()
        )
        for row in rows:
            changed = (
                await Hold.update({Hold.status: HoldStatus.expired, Hold.closed_at: now})
                .where(Hold.id == row["id"], Hold.status == HoldStatus.ready)
                .returning(Hold.id)
                .run()
            )
            if not changed:  # collected or cancelled meanwhile
                continue
            await audit.record(action="hold.expire", actor_id=None, subject=f"hold:{row['id']}", at=now)
            if row["item"]:
                await _release_copy(row["item"], row["item_group"], now=now)
            expired += 1
    return expired


# --- reservations -----------------------------------------------------------------------------


def _day(value: date | str, field_name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return hours.parse_date(str(value))
    except ValueError as exc:
        raise errors.InvalidInput(
            str(exc.args[0]) if exc.args else str(_l("Enter a date like 2026-12-24.")),
            code="invalid_date",
            field=field_name,
        ) from None


async def reserve(
    *,
    member_id: int,
    item_code: str,
    starts_on: date | str,
    ends_on: date | str,
    actor_id: int | None = None,
    via: str = "account",
) -> ReservationView:
    """Book a copy for future days. The copy asked for if it is free, otherwise another copy of
    the same thing; refused with every reason when none fits."""
    start, end = _day(starts_on, "starts_on"), _day(ends_on, "ends_on")
    code = code_from_scan(item_code)
    async with db.transaction(write=True):
        item = await _item_row(code, lock=True) if code else None
        now = clock.now()
        if item is None:
            raise errors.NotFound(_l("There is no item with that code."), code="item_not_found", field="item_code")
        pol = await policy()
        await _refuse_unless_may_queue(
            member_id,
            now,
            pol,
            lambda reason: _l("A booking needs a membership that allows borrowing: %(reason)s", reason=reason),
        )
        cal = await venues.calendar(site_id=item["site"])
        today = hours.local_date(now, cal.timezone)
        # A venue that has not set its hours is open every day but its closures.
        open_days = {
            day: cal.closure_on(day) is None and (not cal.sessions or cal.is_open_on(day)) for day in (start, end)
        }
        copies = [item] + [
            row
            for row in await Item.select(Item.id, Item.code, Item.status, Item.item_group)
            .where(Item.item_group == item["item_group"], Item.id != item["id"])
            .order_by(Item.id)
            .run()
        ]
        first_reasons: tuple[Reason, ...] = ()
        chosen = None
        for copy in copies:
            if copy["status"] in (ItemStatus.retired.value, ItemStatus.missing.value):
                continue
            others = tuple(
                rules.Booking(r["starts_on"], r["ends_on"])
                for r in await Reservation.select(Reservation.starts_on, Reservation.ends_on)
                .where(Reservation.item == copy["id"], Reservation.status == ReservationStatus.booked)
                .run()
            )
            loan = (
                await Loan.select(Loan.due_at).where(Loan.item == copy["id"], Loan.returned_at.is_null()).first().run()
            )
            reasons = rules.reservation_reasons(
                starts_on=start,
                ends_on=end,
                today=today,
                policy=pol,
                open_days=open_days,
                other_bookings=others,
                loan_due_on=hours.local_date(loan["due_at"], cal.timezone) if loan else None,
                buffer_days=rules.buffer_days(pol),
            )
            if not reasons:
                chosen = copy
                break
            first_reasons = first_reasons or reasons
        if chosen is None:
            reasons = first_reasons or (Reason("item_retired", _l("This item has been retired.")),)
            cls = errors.Conflict if reasons[0].code == "reservation_conflict" else errors.RuleViolation
            raise cls(
                _l("It cannot be booked for those days: %(reason)s", reason=reasons[0].message),
                code=reasons[0].code,
                reasons=_reason_list(reasons),
            )
        rows = (
            await Reservation.insert(
                Reservation(
                    item=chosen["id"],
                    member=member_id,
                    starts_on=start,
                    ends_on=end,
                    status=ReservationStatus.booked,
                    created_at=now,
                )
            )
            .returning(Reservation.id)
            .run()
        )
        await audit.record(
            action="reservation.create",
            actor_id=actor_id if actor_id is not None else member_id,
            subject=f"reservation:{rows[0]['id']}",
            detail=f"member:{member_id}; item:{chosen['code']}; {start}..{end}; via:{_screen(via)}",
            at=now,
        )
        row = await Reservation.select(*_RESERVATION_COLUMNS).where(Reservation.id == rows[0]["id"]).first().run()
    return _reservation_view(row)


async def cancel_reservation(
    *, reservation_id: int, actor_id: int | None, member_id: int | None = None, via: str = "account"
) -> None:
    async with db.transaction(write=True):
        row = (
            await Reservation.select(Reservation.id, Reservation.member, Reservation.status)
            .where(Reservation.id == reservation_id)
            .first()
            .run()
        )
        if row is None or (member_id is not None and row["member"] != member_id):
            raise errors.NotFound(_l("There is no such booking."), code="reservation_not_found")
        if row["status"] != ReservationStatus.booked:
            return
        now = clock.now()
        await (
            Reservation.update({Reservation.status: ReservationStatus.cancelled, Reservation.closed_at: now})
            .where(Reservation.id == reservation_id)
            .run()
        )
        await audit.record(
            action="reservation.cancel",
            actor_id=actor_id,
            subject=f"reservation:{reservation_id}",
            detail=f"member:{row['member']}; via:{_screen(via)}",
            at=now,
        )


async def mark_missed_reservations(*, now: datetime | None = None) -> int:
    """Bookings whose last day has passed without a collection are missed."""
    now = now or clock.now()
    today = hours.local_date(now, (await venues.calendar()).timezone)
    rows = (
        await Reservation.update({Reservation.status: ReservationStatus.missed, Reservation.closed_at: now})
        .where(Reservation.status == ReservationStatus.booked, Reservation.ends_on < today)
        .returning(Reservation.id)
        .run()
    )
    return len(rows)


# --- fees -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeView:
    id: int
    member_id: int
    member_name: str
    amount_pence: int
    reason: str
    created_at: datetime
    settled_at: datetime | None
    settlement: str
    item_code: str | None = None


# A fee's reason is stored in English and shown in the reader's language.
LATE_RETURN = "Late return"
FEE_REASONS = {LATE_RETURN: _l("Late return")}


async def list_fees(*, member_id: int | None = None, unsettled_only: bool = True, limit: int = 500) -> list[FeeView]:
    query = Fee.select(
        Fee.id,
        Fee.member,
        Fee.member.name.as_alias("member_name"),
        Fee.amount_pence,
        Fee.reason,
        Fee.created_at,
        Fee.settled_at,
        Fee.settlement,
        Fee.loan.item.code.as_alias("item_code"),
    )
    if member_id is not None:
        query = query.where(Fee.member == member_id)
    if unsettled_only:
        query = query.where(Fee.settled_at.is_null())
    rows = await query.order_by(Fee.id, ascending=False).limit(limit).run()
    return [
        FeeView(
            id=r["id"],
            member_id=r["member"],
            member_name=r["member_name"],
            amount_pence=r["amount_pence"],
            reason=FEE_REASONS.get(r["reason"], r["reason"]),
            created_at=r["created_at"],
            settled_at=r["settled_at"],
            settlement=r["settlement"],
            item_code=r["item_code"],
        )
        for r in rows
    ]


async def settle_fee(*, fee_id: int, settlement: str, actor_id: int | None, note: str = "") -> None:
    """A fee paid, or written off (the venue's choice, with a note why)."""
    if settlement not in ("paid", "written_off"):
        raise errors.InvalidInput(_l("Choose paid or written off."), code="invalid_settlement", field="settlement")
    async with db.transaction(write=True):
        rows = (
            await Fee.update(
                {
                    Fee.settled_at: clock.now(),
                    Fee.settlement: settlement,
                    Fee.settled_by: actor_id,
                    Fee.note: note.strip()[:500],
                }
            )
            .where(Fee.id == fee_id, Fee.settled_at.is_null())
            .returning(Fee.id)
            .run()
        )
        if not rows:
            if not await Fee.exists().where(Fee.id == fee_id).run():
                raise errors.NotFound(_l("There is no such fee."), code="fee_not_found")
            return
        await audit.record(action=f"fee.{settlement}", actor_id=actor_id, subject=f"fee:{fee_id}", detail=note[:200])


# --- messages ---------------------------------------------------------------------------------


async def _recipient(member_id: int) -> dict | None:
    row = (
        await Account.select(Account.email, Account.language, Account.name).where(Account.id == member_id).first().run()
    )
    return row if row and row["email"] else None


async def _queue_loan_receipt(member_id: int, loans: list[LoanView]) -> None:
    """Inside the check-out's transaction: what they borrowed and when each is due, once."""
    member = await _recipient(member_id)
    if member is None or not loans:
        return
    with i18n.in_language(member["language"]):
        items = [
            i18n.gettext(
                "- %(item)s (%(code)s), due back by %(when)s",
                item=loan.item_name,
                code=codes.display(loan.item_code),
                when=i18n.format_when(loan.due_at),
            )
            for loan in loans
        ]
        lines = [
            i18n.gettext("Hello %(name)s,", name=member["name"]),
            "",
            i18n.gettext("You have borrowed:"),
            *items,
            "",
            i18n.gettext("You can renew from your account page unless someone is waiting."),
        ]
        due = i18n.format_date(min(loan.due_at for loan in loans))
        subject = i18n.ngettext(
            "Your loan: due back by %(when)s", "Your loans: due back by %(when)s", len(loans), when=due
        )
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"loan-receipt:{loans[0].id}",
        to_address=member["email"],
        subject=subject,
        body="\n".join(lines),
        account_id=member_id,
        kind="loan_receipt",
        language=member["language"],
        values={"name": member["name"], "items": "\n".join(items), "due": due},
    )


async def _queue_hold_ready(hold_id: int) -> None:
    hold = await get_hold(hold_id=hold_id)
    member = await _recipient(hold.member_id)
    if member is None:
        return
    with i18n.in_language(member["language"]):
        until = i18n.format_when(hold.expires_at)
        subject = i18n.gettext("%(item)s is ready for you", item=hold.item_name)
        body = "\n".join(
            [
                i18n.gettext("Hello %(name)s,", name=member["name"]),
                "",
                i18n.gettext("The %(item)s you asked for is back and put aside for you.", item=hold.item_name),
                i18n.gettext("Collect it by %(when)s; after that it passes to the next person waiting.", when=until),
            ]
        )
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"hold-ready:{hold_id}",
        to_address=member["email"],
        subject=subject,
        body=body,
        account_id=hold.member_id,
        kind="hold_ready",
        language=member["language"],
        values={"name": member["name"], "item": hold.item_name, "until": until},
    )


@dataclass
class ReminderCounts:
    due_soon: int = 0
    overdue: int = 0
    holds_expired: int = 0
    reservations_missed: int = 0
    keys: list[str] = field(default_factory=list)


async def queue_loan_reminders(*, now: datetime | None = None, dry_run: bool = False) -> ReminderCounts:
    """Due-soon and overdue messages, once per loan and due date (a renewal earns a new one),
    in each member's language. The outbox's unique key makes a second run at the same moment,
    from another machine or process, add nothing."""
    now = now or clock.now()
    pol = await policy()
    counts = ReminderCounts()
    if not dry_run:
        counts.holds_expired = await expire_holds(now=now)
        counts.reservations_missed = await mark_missed_reservations(now=now)
    soon = now + timedelta(days=pol.due_soon_days)
    rows = (
        await Loan.select(
            *_LOAN_COLUMNS, Loan.member.email.as_alias("email"), Loan.member.language.as_alias("language")
        )
        .where(Loan.returned_at.is_null(), Loan.due_at <= soon)
        .order_by(Loan.due_at)
        .run()
    )
    for row in rows:
        loan = _loan_view(row)
        if not row["email"]:
            continue
        overdue = loan.due_at <= now
        if not overdue and pol.due_soon_days == 0:
            continue
        key = f"loan-{'overdue' if overdue else 'due-soon'}:{loan.id}:{loan.due_at.date().isoformat()}"
        with i18n.in_language(row["language"]):
            if overdue:
                subject = i18n.gettext("Overdue: %(item)s", item=loan.item_name)
                first = i18n.gettext(
                    "The %(item)s you borrowed was due back by %(when)s.",
                    item=loan.item_name,
                    when=i18n.format_when(loan.due_at),
                )
                then = i18n.gettext(
                    "Please bring it back when you can, or renew it from your account page if "
                    "nobody is waiting. If something has gone wrong, tell us: we would rather know."
                )
            else:
                subject = i18n.gettext("Due back soon: %(item)s", item=loan.item_name)
                first = i18n.gettext(
                    "The %(item)s you borrowed is due back by %(when)s.",
                    item=loan.item_name,
                    when=i18n.format_when(loan.due_at),
                )
                then = i18n.gettext("Bring it to the counter, or renew it from your account page if nobody is waiting.")
            body = "\n".join([i18n.gettext("Hello %(name)s,", name=loan.member_name), "", first, then])
            values = {"name": loan.member_name, "item": loan.item_name, "due": i18n.format_when(loan.due_at)}
        if dry_run:
            fresh = not await mail.queued(key=key)
        else:
            fresh = await mail.queue(
                library=(await venues.settings()).name,
                key=key,
                to_address=row["email"],
                subject=subject,
                body=body,
                account_id=loan.member_id,
                now=now,
                kind="overdue" if overdue else "due_soon",
                language=row["language"],
                values=values,
            )
        if fresh:
            counts.keys.append(key)
            if overdue:
                counts.overdue += 1
            else:
                counts.due_soon += 1
    return counts


# --- calendar feed ----------------------------------------------------------------------------


async def calendar_token(*, member_id: int, renew: bool = False) -> str:
    """The member's secret feed address; ``renew`` replaces it (the old one stops working)."""
    async with db.transaction(write=True):
        row = await CalendarFeed.select(CalendarFeed.token).where(CalendarFeed.member == member_id).first().run()
        if row and not renew:
            return row["token"]
        token = secrets.token_urlsafe(24)
        if row:
            await (
                CalendarFeed.update({CalendarFeed.token: token, CalendarFeed.created_at: clock.now()})
                .where(CalendarFeed.member == member_id)
                .run()
            )
        else:
            await CalendarFeed.insert(CalendarFeed(member=member_id, token=token, created_at=clock.now())).run()
    return token


async def member_for_calendar(*, token: str) -> int:
    row = await CalendarFeed.select(CalendarFeed.member).where(CalendarFeed.token == token[:64]).first().run()
    if row is None:
        raise errors.NotFound(
            _l("This calendar address is not valid; copy the new one from your account page."),
            code="calendar_not_found",
        )
    return row["member"]


async def calendar_feed(*, member_id: int, base_url: str) -> str:
    """The member's due dates (each at closing time), copies waiting for them and bookings, in
    the language set by the caller."""
    from urllib.parse import urlsplit

    host = urlsplit(base_url).hostname or "lending"
    events = []
    for loan in await member_loans(member_id=member_id):
        events.append(
            ical.Event(
                uid=f"loan-{loan.id}@{host}",
                summary=i18n.gettext("Due back: %(item)s", item=loan.item_name),
                description=i18n.gettext(
                    "Bring %(item)s (%(code)s) back to the counter by %(when)s, or renew it.",
                    item=loan.item_name,
                    code=codes.display(loan.item_code),
                    when=i18n.format_when(loan.due_at),
                ),
                starts=loan.due_at - timedelta(minutes=30),
                ends=loan.due_at,
                url=f"{base_url}/account/loans",
            )
        )
    for hold in await member_holds(member_id=member_id):
        if hold.status == HoldStatus.ready and hold.expires_at:
            events.append(
                ical.Event(
                    uid=f"hold-{hold.id}@{host}",
                    summary=i18n.gettext("Collect: %(item)s", item=hold.item_name),
                    description=i18n.gettext(
                        "%(item)s is put aside for you until %(when)s.",
                        item=hold.item_name,
                        when=i18n.format_when(hold.expires_at),
                    ),
                    starts=hold.expires_at - timedelta(minutes=30),
                    ends=hold.expires_at,
                    url=f"{base_url}/account/loans",
                )
            )
    for booking in await member_reservations(member_id=member_id):
        events.append(
            ical.Event(
                uid=f"reservation-{booking.id}@{host}",
                summary=i18n.gettext("Booked: %(item)s", item=booking.item_name),
                description=i18n.gettext(
                    "Collect %(item)s on the first day and bring it back by the last.", item=booking.item_name
                ),
                starts=booking.starts_on,
                ends=booking.ends_on,
                url=f"{base_url}/account/loans",
            )
        )
    return ical.calendar(name=i18n.gettext("Library loans"), events=events, now=clock.now())
