"""Loans, holds and bookings as the pages and the API show them, and the lookups that find them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from lending import clock, codes, errors
from lending.i18n import lazy_gettext as _l
from lending.loans.rules import HoldStatus, ReservationStatus
from lending.loans.tables import Hold, Loan, Reservation


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


LOAN_COLUMNS = (
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


def loan_view(row: dict) -> LoanView:
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
    row = await Loan.select(*LOAN_COLUMNS).where(Loan.id == loan_id).first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such loan."), code="loan_not_found")
    return loan_view(row)


async def member_loans(*, member_id: int, open_only: bool = True, limit: int = 200) -> list[LoanView]:
    query = Loan.select(*LOAN_COLUMNS).where(Loan.member == member_id)
    if open_only:
        query = query.where(Loan.returned_at.is_null()).order_by(Loan.due_at)
    else:
        query = query.where(Loan.returned_at.is_not_null()).order_by(Loan.returned_at, ascending=False)
    return [loan_view(row) for row in await query.limit(limit).run()]


async def overdue_loans(*, now: datetime | None = None, limit: int = 100) -> list[LoanView]:
    """Loans past their due date, the longest overdue first: the volunteers' list to follow up."""
    rows = (
        await Loan.select(*LOAN_COLUMNS)
        .where(Loan.returned_at.is_null(), Loan.due_at < (now or clock.now()))
        .order_by(Loan.due_at)
        .limit(limit)
        .run()
    )
    return [loan_view(row) for row in rows]


async def open_loan_for_item(*, code: str) -> LoanView | None:
    row = (
        await Loan.select(*LOAN_COLUMNS)
        .where(Loan.item.code == codes.normalise(code), Loan.returned_at.is_null())
        .first()
        .run()
    )
    return loan_view(row) if row else None


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


HOLD_COLUMNS = (
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


async def hold_views(rows: list[dict]) -> list[HoldView]:
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
        await Hold.select(*HOLD_COLUMNS)
        .where(Hold.member == member_id, Hold.status.is_in(list(HoldStatus.ACTIVE)))
        .order_by(Hold.id)
        .run()
    )
    return await hold_views(rows)


async def get_hold(*, hold_id: int) -> HoldView:
    rows = await Hold.select(*HOLD_COLUMNS).where(Hold.id == hold_id).run()
    if not rows:
        raise errors.NotFound(_l("There is no such hold."), code="hold_not_found")
    return (await hold_views(rows))[0]


async def ready_holds(*, limit: int = 100) -> list[HoldView]:
    """Copies put aside at the counter, for the volunteers' shelf."""
    rows = (
        await Hold.select(*HOLD_COLUMNS)
        .where(Hold.status == HoldStatus.ready)
        .order_by(Hold.expires_at)
        .limit(limit)
        .run()
    )
    return await hold_views(rows)


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


RESERVATION_COLUMNS = (
    Reservation.id,
    Reservation.item.code.as_alias("item_code"),
    Reservation.item.item_group.name.as_alias("item_name"),
    Reservation.member,
    Reservation.member.name.as_alias("member_name"),
    Reservation.starts_on,
    Reservation.ends_on,
    Reservation.status,
)


def reservation_view(row: dict) -> ReservationView:
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
        await Reservation.select(*RESERVATION_COLUMNS)
        .where(Reservation.member == member_id, Reservation.status == ReservationStatus.booked)
        .order_by(Reservation.starts_on)
        .run()
    )
    return [reservation_view(row) for row in rows]


async def item_reservations(*, code: str) -> list[ReservationView]:
    rows = (
        await Reservation.select(*RESERVATION_COLUMNS)
        .where(Reservation.item.code == codes.normalise(code), Reservation.status == ReservationStatus.booked)
        .order_by(Reservation.starts_on)
        .run()
    )
    return [reservation_view(row) for row in rows]
