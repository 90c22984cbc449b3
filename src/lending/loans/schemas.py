"""JSON shapes of the lending API (described at /schema/openapi.json). Times are ISO 8601 in UTC; backdated
times may also be the venue's wall-clock time without an offset."""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from lending.loans.checkout import Assessment
from lending.loans.records import HoldView, LoanView, ReservationView


class LoanIn(msgspec.Struct, forbid_unknown_fields=True):
    item_code: str
    member_id: int | None = None
    card_code: str | None = None
    lent_at: str | None = None  # only to record a check-out someone forgot; up to 30 days back


class ReturnIn(msgspec.Struct, forbid_unknown_fields=True):
    condition: str = ""
    notes: str = ""
    parts_missing: list[str] = []
    needs_repair: bool = False
    returned_at: str | None = None


class ItemReturnIn(ReturnIn, forbid_unknown_fields=True):
    item_code: str = ""


class LoanOut(msgspec.Struct):
    id: int
    item_code: str
    item_name: str
    member_id: int
    lent_at: datetime
    due_at: datetime
    renewals: int
    returned_at: datetime | None
    overdue: bool
    return_condition: str = ""
    return_notes: str = ""
    parts_missing: list[str] = []


class ReturnOut(LoanOut):
    changed: bool = True  # false when it was already back: returning twice changes nothing
    hold_for_member: bool = False  # the copy is now put aside for the next member's hold
    needs_repair: bool = False
    fee_pence: int = 0


class LoanList(msgspec.Struct):
    loans: list[LoanOut]


class ReasonOut(msgspec.Struct):
    code: str
    detail: str


class LineOut(msgspec.Struct):
    item_code: str
    item_name: str
    ok: bool
    due_at: datetime | None
    reasons: list[ReasonOut]


class EligibilityOut(msgspec.Struct):
    member_id: int
    ok: bool
    reasons: list[ReasonOut]
    items: list[LineOut]


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    item_code: str
    member_id: int | None = None  # a volunteer placing it for a member


class HoldOut(msgspec.Struct):
    id: int
    item_name: str
    member_id: int
    status: str
    position: int
    placed_at: datetime
    item_code: str | None
    expires_at: datetime | None


class HoldList(msgspec.Struct):
    holds: list[HoldOut]


class ReservationIn(msgspec.Struct, forbid_unknown_fields=True):
    item_code: str
    starts_on: str
    ends_on: str
    member_id: int | None = None


class ReservationOut(msgspec.Struct):
    id: int
    item_code: str
    item_name: str
    member_id: int
    starts_on: date
    ends_on: date
    status: str


class ReservationList(msgspec.Struct):
    reservations: list[ReservationOut]


def loan_out(loan: LoanView) -> LoanOut:
    return LoanOut(
        id=loan.id,
        item_code=loan.item_code,
        item_name=loan.item_name,
        member_id=loan.member_id,
        lent_at=loan.lent_at,
        due_at=loan.due_at,
        renewals=loan.renewals,
        returned_at=loan.returned_at,
        overdue=loan.overdue(),
        return_condition=loan.return_condition,
        return_notes=loan.return_notes,
        parts_missing=loan.parts_missing,
    )


def hold_out(hold: HoldView) -> HoldOut:
    return HoldOut(
        id=hold.id,
        item_name=hold.item_name,
        member_id=hold.member_id,
        status=hold.status,
        position=hold.position,
        placed_at=hold.placed_at,
        item_code=hold.item_code,
        expires_at=hold.expires_at,
    )


def reservation_out(booking: ReservationView) -> ReservationOut:
    return ReservationOut(
        id=booking.id,
        item_code=booking.item_code,
        item_name=booking.item_name,
        member_id=booking.member_id,
        starts_on=booking.starts_on,
        ends_on=booking.ends_on,
        status=booking.status,
    )


def _reasons(reasons) -> list[ReasonOut]:
    return [ReasonOut(code=reason.code, detail=str(reason.message)) for reason in reasons]


def eligibility_out(assessment: Assessment) -> EligibilityOut:
    return EligibilityOut(
        member_id=assessment.member_id,
        ok=assessment.ok,
        reasons=_reasons(assessment.reasons),
        items=[
            LineOut(
                item_code=line.code, item_name=line.name, ok=line.ok, due_at=line.due_at, reasons=_reasons(line.reasons)
            )
            for line in assessment.lines
        ],
    )
