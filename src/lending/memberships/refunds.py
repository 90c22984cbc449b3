"""Refunds: all or part of a payment given back, through Stripe or as cash at the counter, and
optionally the membership it paid for ended."""

from __future__ import annotations

from datetime import datetime

from lending import clock, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.memberships import rules
from lending.memberships.amounts import read_amount
from lending.memberships.gateway import StripeGateway
from lending.memberships.records import PaymentView, get_payment
from lending.memberships.rules import Method, Status
from lending.memberships.tables import Membership, Payment, Refund


async def record_refund(
    *, payment_id: int, amount_pence: int, stripe_refund: str | None, reason: str, actor_id: int | None, when: datetime
) -> None:
    """Inside a write transaction. A Stripe refund is held once by its id, whether the API's
    answer or the webhook records it first; the payment's refunded total is recounted."""
    rows = (
        await Refund.insert(
            Refund(
                payment=payment_id,
                amount_pence=amount_pence,
                reason=reason,
                stripe_refund=stripe_refund,
                refunded_by=actor_id,
                refunded_at=when,
            )
        )
        .on_conflict(action="DO NOTHING")
        .returning(Refund.id)
        .run()
    )
    if not rows:
        return
    total = await Refund.raw(
        "SELECT COALESCE(SUM(amount_pence), 0) AS total FROM refund WHERE payment = {}", payment_id
    ).run()
    await Payment.update({Payment.refunded_pence: int(total[0]["total"])}).where(Payment.id == payment_id).run()
    await audit.record(
        action="payment.refund",
        actor_id=actor_id,
        subject=f"payment:{payment_id}",
        detail=f"amount={amount_pence}",
        at=when,
    )


async def _with_payment_intent(payment: PaymentView, gateway: StripeGateway) -> PaymentView:
    """A Stripe payment with its payment intent: an invoice's is asked of Stripe when we were
    not given it, and kept."""
    if payment.stripe_payment_intent:
        return payment
    reference = await Payment.select(Payment.stripe_reference).where(Payment.id == payment.id).first().run()
    if reference and (reference["stripe_reference"] or "").startswith("in_"):
        intent = await gateway.invoice_payment_intent(invoice_id=reference["stripe_reference"])
        if intent:
            # Kept first, so Stripe's refund.created webhook finds the payment too.
            await Payment.update({Payment.stripe_payment_intent: intent}).where(Payment.id == payment.id).run()
            payment = await get_payment(payment_id=payment.id)
    return payment


async def _refund_through_stripe(payment: PaymentView, requested: int, gateway: StripeGateway) -> str | None:
    """Stripe gives the money back; returns its refund's id."""
    if not payment.stripe_payment_intent:
        raise errors.Conflict(
            _l("Stripe gave no payment reference for this payment; refund it in Stripe's dashboard."),
            code="no_payment_reference",
        )
    refunded = await gateway.refund(
        payment_intent=payment.stripe_payment_intent,
        amount_pence=requested,
        reference=f"{payment.receipt_code}-{payment.refunded_pence}-{requested}",
    )
    return refunded.get("id")


async def _stop_subscription(payment: PaymentView, gateway: StripeGateway) -> None:
    """Ending the membership must also stop Stripe charging for it."""
    row = (
        await Payment.select(
            Payment.membership.stripe_subscription.as_alias("subscription"),
            Payment.membership.status.as_alias("status"),
        )
        .where(Payment.id == payment.id)
        .first()
        .run()
    )
    if row and row["subscription"] and row["status"] in rules.OPEN_STATUSES:
        await gateway.cancel_now(subscription_id=row["subscription"])


async def _end_paid_membership(payment_id: int, *, actor_id: int | None, now: datetime) -> None:
    """Inside the refund's write transaction: the membership the payment paid for ends now."""
    row = await Payment.select(Payment.membership).where(Payment.id == payment_id).first().run()
    if row and row["membership"]:
        await (
            Membership.update(
                {
                    Membership.status: Status.cancelled.value,
                    Membership.ends_at: now,
                    Membership.cancelled_at: now,
                    Membership.updated_at: now,
                }
            )
            .where(Membership.id == row["membership"], Membership.status.is_in(list(rules.OPEN_STATUSES)))
            .run()
        )
        await audit.record(
            action="membership.cancel",
            actor_id=actor_id,
            subject=f"membership:{row['membership']}",
            detail="refund",
            at=now,
        )


async def refund_payment(
    *,
    payment_id: int,
    amount: object = None,
    pounds: bool = False,
    reason: str = "",
    end_membership: bool = False,
    gateway: StripeGateway,
    actor_id: int | None,
) -> PaymentView:
    """Give back all or part of a payment: through Stripe when it was paid there (Stripe's
    answer is recorded, and its webhook finds it already recorded), otherwise as cash handed
    back at the counter. Optionally the membership it paid for ends now."""
    payment = await get_payment(payment_id=payment_id)
    requested = payment.refundable_pence if amount in (None, "") else read_amount(amount, pounds=pounds)
    if problem := rules.refund_problem(
        paid_pence=payment.amount_pence, refunded_pence=payment.refunded_pence, requested_pence=requested
    ):
        raise errors.InvalidInput(problem.message, code=problem.code, field="amount")
    reason = reason.strip()[:500]
    now = clock.now()
    stripe_refund = None
    if payment.method == Method.stripe.value:
        payment = await _with_payment_intent(payment, gateway)
        stripe_refund = await _refund_through_stripe(payment, requested, gateway)
        if end_membership:
            await _stop_subscription(payment, gateway)
    async with db.transaction(write=True):
        if payment.method != Method.stripe.value:
            current = await Payment.select(Payment.refunded_pence).where(Payment.id == payment.id).first().run()
            if problem := rules.refund_problem(
                paid_pence=payment.amount_pence, refunded_pence=current["refunded_pence"], requested_pence=requested
            ):
                raise errors.Conflict(problem.message, code=problem.code)
        await record_refund(
            payment_id=payment.id,
            amount_pence=requested,
            stripe_refund=stripe_refund,
            reason=reason,
            actor_id=actor_id,
            when=now,
        )
        if end_membership:
            await _end_paid_membership(payment.id, actor_id=actor_id, now=now)
    return await get_payment(payment_id=payment.id)
