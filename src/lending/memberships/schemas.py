"""JSON shapes of the memberships API (described at /schema/openapi.json). Amounts are whole pence; an amount
sent as a fraction or as text that is not a number gets a clear 422, not a type error."""

from __future__ import annotations

from datetime import datetime

import msgspec

from lending.memberships.records import MembershipView, PaymentView
from lending.memberships.reports import IncomeRow
from lending.memberships.tiers import TierView

Pence = int | float | str


class TierOut(msgspec.Struct):
    id: int
    name: str
    description: str
    suggested_pence: list[int]
    min_pence: int
    max_pence: int
    allow_free: bool
    interval: str  # "one_off" (a year), "month" or "year"
    pay_it_forward: bool
    gift_aid: bool
    loan_limit: int
    loan_days: int
    currency: str


class TierList(msgspec.Struct):
    tiers: list[TierOut]


class GiftAidIn(msgspec.Struct, forbid_unknown_fields=True):
    full_name: str
    house: str
    postcode: str


class CounterPaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    amount_pence: Pence
    method: str  # "cash" or "card_reader"
    member_id: int | None = None
    card_code: str | None = None
    tier: int | str | None = None
    forward_pence: Pence = 0
    gift_aid: GiftAidIn | None = None


class CheckoutIn(msgspec.Struct, forbid_unknown_fields=True):
    amount_pence: Pence
    interval: str | None = None
    tier: int | str | None = None
    forward_pence: Pence = 0
    agreement_version: int | None = None
    gift_aid: GiftAidIn | None = None


class AmountIn(msgspec.Struct, forbid_unknown_fields=True):
    amount_pence: Pence
    forward_pence: Pence | None = None


class RefundIn(msgspec.Struct, forbid_unknown_fields=True):
    amount_pence: Pence | None = None
    reason: str = ""
    end_membership: bool = False


class MembershipOut(msgspec.Struct):
    id: int
    member_id: int
    tier: str
    status: str  # pending, active, past_due, expired, cancelled
    may_borrow: bool
    amount_pence: int
    forward_pence: int
    interval: str
    method: str
    starts_at: datetime | None
    ends_at: datetime | None
    cancel_at_period_end: bool
    loan_limit: int
    loan_days: int


class PaymentOut(msgspec.Struct):
    id: int
    receipt_code: str
    member_id: int
    tier: str
    amount_pence: int
    forward_pence: int
    refunded_pence: int
    currency: str
    method: str
    paid_at: datetime
    covers_until: datetime | None
    gift_aid: bool


class CounterPaymentOut(msgspec.Struct):
    membership: MembershipOut
    payment: PaymentOut | None


class CheckoutOut(msgspec.Struct):
    checkout_url: str | None
    membership: MembershipOut
    pay_at_counter: bool
    detail: str | None = None


class MyMembershipOut(msgspec.Struct):
    membership: MembershipOut | None
    payments: list[PaymentOut]


class PaymentList(msgspec.Struct):
    payments: list[PaymentOut]


class IncomeRowOut(msgspec.Struct):
    month: str
    method: str
    payments: int
    received_pence: int
    refunded_pence: int
    net_pence: int
    pay_it_forward_pence: int


class IncomeOut(msgspec.Struct):
    currency: str
    rows: list[IncomeRowOut]


def tier_out(tier: TierView, currency: str) -> TierOut:
    return TierOut(
        id=tier.id,
        name=tier.name,
        description=tier.description,
        suggested_pence=tier.suggested,
        min_pence=tier.min_pence,
        max_pence=tier.max_pence,
        allow_free=tier.allow_free,
        interval=tier.interval,
        pay_it_forward=tier.offer_pay_forward,
        gift_aid=tier.gift_aid,
        loan_limit=tier.loan_limit,
        loan_days=tier.loan_days,
        currency=currency,
    )


def membership_out(view: MembershipView) -> MembershipOut:
    return MembershipOut(
        id=view.id,
        member_id=view.member_id,
        tier=view.tier_name,
        status=view.status,
        may_borrow=view.may_borrow,
        amount_pence=view.amount_pence,
        forward_pence=view.forward_pence,
        interval=view.interval,
        method=view.method,
        starts_at=view.starts_at,
        ends_at=view.ends_at,
        cancel_at_period_end=view.cancel_at_period_end,
        loan_limit=view.loan_limit,
        loan_days=view.loan_days,
    )


def payment_out(view: PaymentView) -> PaymentOut:
    return PaymentOut(
        id=view.id,
        receipt_code=view.receipt_code,
        member_id=view.member_id,
        tier=view.tier_name,
        amount_pence=view.amount_pence,
        forward_pence=view.forward_pence,
        refunded_pence=view.refunded_pence,
        currency=view.currency,
        method=view.method,
        paid_at=view.paid_at,
        covers_until=view.covers_until,
        gift_aid=view.gift_aid,
    )


def income_row_out(row: IncomeRow) -> IncomeRowOut:
    return IncomeRowOut(
        month=row.month,
        method=row.method,
        payments=row.payments,
        received_pence=row.received_pence,
        refunded_pence=row.refunded_pence,
        net_pence=row.net_pence,
        pay_it_forward_pence=row.forward_pence,
    )
