"""Memberships and payments as the pages, the API and receipts show them, and the lookups that
find them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lending import clock, codes, errors
from lending.i18n import lazy_gettext as _l
from lending.memberships import rules
from lending.memberships.rules import Method
from lending.memberships.tables import Membership, Payment

LIST_LIMIT = 500


@dataclass(frozen=True)
class MembershipView:
    id: int
    member_id: int
    tier_id: int
    tier_name: str
    status: str  # as it is now (a lapsed membership reads "expired" before the sweep writes it)
    amount_pence: int
    forward_pence: int
    interval: str
    method: str
    starts_at: datetime | None
    ends_at: datetime | None
    cancel_at_period_end: bool
    stripe_subscription: str | None
    loan_limit: int
    loan_days: int

    @property
    def recurring_online(self) -> bool:
        return (
            self.method == Method.stripe.value and rules.is_recurring(self.interval) and bool(self.stripe_subscription)
        )

    @property
    def may_borrow(self) -> bool:
        return rules.may_borrow(self.status)

    @property
    def is_open(self) -> bool:
        return self.status in rules.OPEN_STATUSES


_MEMBERSHIP_COLUMNS = (
    Membership.id,
    Membership.member,
    Membership.tier,
    Membership.tier.name.as_alias("tier_name"),
    Membership.status,
    Membership.amount_pence,
    Membership.forward_pence,
    Membership.interval,
    Membership.method,
    Membership.starts_at,
    Membership.ends_at,
    Membership.cancel_at_period_end,
    Membership.stripe_subscription,
    Membership.tier.loan_limit.as_alias("loan_limit"),
    Membership.tier.loan_days.as_alias("loan_days"),
)


def _membership_view(row: dict, now: datetime) -> MembershipView:
    return MembershipView(
        id=row["id"],
        member_id=row["member"],
        tier_id=row["tier"],
        tier_name=row["tier_name"],
        status=rules.effective_status(
            status=row["status"], ends_at=row["ends_at"], now=now, method=row["method"], interval=row["interval"]
        ),
        amount_pence=row["amount_pence"],
        forward_pence=row["forward_pence"],
        interval=row["interval"],
        method=row["method"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        cancel_at_period_end=bool(row["cancel_at_period_end"]),
        stripe_subscription=row["stripe_subscription"],
        loan_limit=row["loan_limit"],
        loan_days=row["loan_days"],
    )


@dataclass(frozen=True)
class PaymentView:
    id: int
    receipt_code: str
    member_id: int
    member_name: str
    member_email: str | None
    tier_name: str
    amount_pence: int
    forward_pence: int
    currency: str
    method: str
    refunded_pence: int
    paid_at: datetime
    covers_until: datetime | None
    recorded_by_name: str | None
    gift_aid: bool
    stripe_payment_intent: str | None

    @property
    def net_pence(self) -> int:
        return self.amount_pence - self.refunded_pence

    @property
    def refundable_pence(self) -> int:
        return max(0, self.amount_pence - self.refunded_pence)


PAYMENT_COLUMNS = (
    Payment.id,
    Payment.receipt_code,
    Payment.member,
    Payment.member.name.as_alias("member_name"),
    Payment.member.email.as_alias("member_email"),
    Payment.tier_name,
    Payment.amount_pence,
    Payment.forward_pence,
    Payment.currency,
    Payment.method,
    Payment.refunded_pence,
    Payment.paid_at,
    Payment.covers_until,
    Payment.recorded_by.name.as_alias("recorded_by_name"),
    Payment.gift_aid_declaration,
    Payment.stripe_payment_intent,
)


def payment_view(row: dict) -> PaymentView:
    return PaymentView(
        id=row["id"],
        receipt_code=row["receipt_code"],
        member_id=row["member"],
        member_name=row["member_name"],
        member_email=row["member_email"],
        tier_name=row["tier_name"],
        amount_pence=row["amount_pence"],
        forward_pence=row["forward_pence"],
        currency=row["currency"],
        method=row["method"],
        refunded_pence=row["refunded_pence"],
        paid_at=row["paid_at"],
        covers_until=row["covers_until"],
        recorded_by_name=row["recorded_by_name"],
        gift_aid=row["gift_aid_declaration"] is not None,
        stripe_payment_intent=row["stripe_payment_intent"],
    )


async def current_membership(*, member_id: int, now: datetime | None = None) -> MembershipView | None:
    """The member's open membership, else their latest one."""
    now = now or clock.now()
    rows = await (
        Membership.select(*_MEMBERSHIP_COLUMNS)
        .where(Membership.member == member_id)
        .order_by(Membership.id, ascending=False)
        .limit(20)
        .run()
    )
    if not rows:
        return None
    open_rows = [row for row in rows if row["status"] in rules.OPEN_STATUSES]
    return _membership_view(open_rows[0] if open_rows else rows[0], now)


async def get_membership(*, membership_id: int, now: datetime | None = None) -> MembershipView:
    row = await Membership.select(*_MEMBERSHIP_COLUMNS).where(Membership.id == membership_id).first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such membership."), code="membership_not_found")
    return _membership_view(row, now or clock.now())


async def member_payments(*, member_id: int, limit: int = 100) -> list[PaymentView]:
    rows = await (
        Payment.select(*PAYMENT_COLUMNS)
        .where(Payment.member == member_id)
        .order_by(Payment.paid_at, ascending=False)
        .limit(limit)
        .run()
    )
    return [payment_view(row) for row in rows]


async def receipt_for(*, receipt_code: str, viewer_id: int, sees_everyones: bool) -> PaymentView:
    """A receipt is for its member, and for the staff at the counter; to anyone else it does
    not exist."""
    payment = await get_payment(receipt_code=receipt_code)
    if payment.member_id != viewer_id and not sees_everyones:
        raise errors.NotFound(_l("There is no such payment."), code="payment_not_found")
    return payment


async def get_payment(*, payment_id: int | None = None, receipt_code: str | None = None) -> PaymentView:
    query = Payment.select(*PAYMENT_COLUMNS)
    if payment_id is not None:
        query = query.where(Payment.id == payment_id)
    else:
        query = query.where(Payment.receipt_code == codes.normalise(receipt_code or ""))
    row = await query.first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such payment."), code="payment_not_found")
    return payment_view(row)


async def list_payments(*, limit: int = LIST_LIMIT) -> list[PaymentView]:
    rows = await Payment.select(*PAYMENT_COLUMNS).order_by(Payment.paid_at, ascending=False).limit(limit).run()
    return [payment_view(row) for row in rows]
