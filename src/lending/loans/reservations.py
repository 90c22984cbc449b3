"""Bookings: a copy reserved for future days, and bookings missed."""

from __future__ import annotations

from datetime import date, datetime

from lending import clock, db, errors
from lending.audit import services as audit
from lending.catalog.rules import Status as ItemStatus
from lending.catalog.tables import Item
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.facts import code_from_scan, item_row, reason_list, refuse_unless_may_queue, screen_of
from lending.loans.loan_policy import policy
from lending.loans.records import RESERVATION_COLUMNS, ReservationView, reservation_view
from lending.loans.rules import Reason, ReservationStatus
from lending.loans.tables import Loan, Reservation
from lending.venues import rules as hours
from lending.venues import services as venues


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
        item = await item_row(code, lock=True) if code else None
        now = clock.now()
        if item is None:
            raise errors.NotFound(_l("There is no item with that code."), code="item_not_found", field="item_code")
        pol = await policy()
        await refuse_unless_may_queue(
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
                reasons=reason_list(reasons),
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
            detail=f"member:{member_id}; item:{chosen['code']}; {start}..{end}; via:{screen_of(via)}",
            at=now,
        )
        row = await Reservation.select(*RESERVATION_COLUMNS).where(Reservation.id == rows[0]["id"]).first().run()
    return reservation_view(row)


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
            detail=f"member:{row['member']}; via:{screen_of(via)}",
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
