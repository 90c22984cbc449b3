"""What Stripe's Checkout events change: a paid checkout activates its membership on the terms
chosen and records the payment; one unpaid, failed or expired closes. The invoice events use
the same steps for a subscription's first payment."""

from __future__ import annotations

from datetime import datetime

from lending import clock, db
from lending.audit import services as audit
from lending.memberships import rules
from lending.memberships.activation import lock_membership, lock_open
from lending.memberships.receipts import new_receipt_code, queue_receipt
from lending.memberships.rules import Method, Status
from lending.memberships.stripe_objects import metadata_id, stamp
from lending.memberships.tables import Checkout, Membership, Payment, Tier
from lending.memberships.tiers import get_tier
from lending.venues import services as venues


async def checkout_by_reference(session_id: str | None, metadata: dict) -> dict | None:
    """Our checkout, locked: by Stripe's session id, else by the id in the metadata."""
    query = Checkout.select()
    if session_id:
        query = query.where(Checkout.session_id == session_id)
    else:
        checkout_id = metadata_id(metadata, "checkout_id")
        if checkout_id is None:
            return None
        query = query.where(Checkout.id == checkout_id)
    if db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def _target_membership(checkout: dict) -> dict | None:
    """The membership a paid checkout renews: its own, while open; otherwise (it lapsed or
    was cancelled while the member was paying) the member's open one, or its own reopened."""
    row = await lock_membership(checkout["membership"])
    if row is None:
        return None
    if row["status"] in rules.OPEN_STATUSES:
        return row
    other = await lock_open(row["member"])
    return other or row


async def apply_checkout_terms(
    *,
    checkout: dict,
    membership: dict,
    when: datetime,
    customer: str | None,
    subscription: str | None,
    period_end: datetime | None,
    created: int,
) -> datetime:
    """A paid checkout makes its membership active on the terms chosen; the end date only
    ever moves later, so the checkout's event and the invoice's may come in either order."""
    tier = await get_tier(tier_id=checkout["tier"])
    current_end = membership["ends_at"] if membership["status"] == Status.active.value else None
    if subscription:
        # The invoice's period is the truth; until it arrives (its event may come second) the
        # membership runs for a few days, so a lost invoice cannot make it last for ever.
        ends_at = max(d for d in (current_end, period_end or when + rules.RENEWAL_GRACE) if d)
    else:
        ends_at = rules.renewed_until(current_end=current_end, now=when, interval=checkout["interval"])
    status = rules.apply_stripe_status(
        current=membership["status"] if membership["status"] in rules.OPEN_STATUSES else Status.pending.value,
        incoming=Status.active.value,
        current_at=membership["stripe_state_at"],
        incoming_at=created,
    )
    await (
        Membership.update(
            {
                Membership.status: status,
                Membership.tier: tier.id,
                Membership.amount_pence: checkout["amount_pence"],
                Membership.forward_pence: checkout["forward_pence"],
                Membership.interval: checkout["interval"],
                Membership.method: Method.stripe.value,
                Membership.starts_at: membership["starts_at"] or when,
                Membership.ends_at: ends_at,
                Membership.stripe_state_at: max(created, membership["stripe_state_at"]),
                Membership.stripe_customer: customer or membership["stripe_customer"],
                Membership.stripe_subscription: subscription or membership["stripe_subscription"],
                Membership.cancelled_at: None,
                Membership.updated_at: clock.now(),
            }
        )
        .where(Membership.id == membership["id"])
        .run()
    )
    if checkout["status"] != "complete":
        await (
            Checkout.update({Checkout.status: "complete", Checkout.completed_at: when})
            .where(Checkout.id == checkout["id"])
            .run()
        )
        await audit.record(
            action="membership.activate",
            actor_id=None,
            subject=f"membership:{membership['id']}",
            detail="method=stripe",
        )
    return ends_at


async def record_stripe_payment(
    *,
    reference: str,
    membership: dict,
    checkout: dict | None,
    amount_pence: int,
    payment_intent: str | None,
    when: datetime,
    covers_until: datetime | None,
) -> bool:
    """One payment per Stripe object (the database holds each reference once)."""
    if amount_pence <= 0:
        return False
    tier = await Tier.select(Tier.name).where(Tier.id == membership["tier"]).first().run()
    rows = (
        await Payment.insert(
            Payment(
                receipt_code=await new_receipt_code(),
                member=membership["member"],
                membership=membership["id"],
                tier_name=tier["name"] if tier else "",
                amount_pence=amount_pence,
                forward_pence=min(checkout["forward_pence"], amount_pence) if checkout else membership["forward_pence"],
                currency=await venues.currency(),
                method=Method.stripe.value,
                stripe_reference=reference,
                stripe_payment_intent=payment_intent,
                gift_aid_declaration=checkout["gift_aid_declaration"] if checkout else None,
                covers_until=covers_until,
                paid_at=when,
            )
        )
        .on_conflict(action="DO NOTHING")
        .returning(Payment.id)
        .run()
    )
    if rows:
        await queue_receipt(rows[0]["id"])
    return bool(rows)


async def _on_checkout_paid(event: dict, session: dict) -> str:
    checkout = await checkout_by_reference(session.get("id"), session.get("metadata") or {})
    if checkout is None:
        return "unmatched"
    membership = await _target_membership(checkout)
    if membership is None:
        return "unmatched"
    when = stamp(event.get("created")) or clock.now()
    subscription = session.get("subscription")
    subscription = subscription.get("id") if isinstance(subscription, dict) else subscription
    customer = session.get("customer")
    customer = customer.get("id") if isinstance(customer, dict) else customer
    already = checkout["status"] == "complete"
    ends_at = await apply_checkout_terms(
        checkout=checkout,
        membership=membership,
        when=when,
        customer=customer,
        subscription=subscription,
        period_end=None,
        created=event["created"],
    )
    if session.get("mode") == "payment" and not already:
        intent = session.get("payment_intent")
        await record_stripe_payment(
            reference=session["id"],
            membership=membership,
            checkout=checkout,
            amount_pence=int(session.get("amount_total") or 0),
            payment_intent=intent.get("id") if isinstance(intent, dict) else intent,
            when=when,
            covers_until=ends_at,
        )
    return "applied"


async def on_checkout_completed(event: dict) -> str:
    session = event["data"]["object"]
    if session.get("payment_status") in ("paid", "no_payment_required"):
        return await _on_checkout_paid(event, session)
    checkout = await checkout_by_reference(session.get("id"), session.get("metadata") or {})
    if checkout is None:
        return "unmatched"
    if checkout["status"] in ("creating", "open"):
        # A delayed method (Bacs Direct Debit): paid later, or not.
        await Checkout.update({Checkout.status: "awaiting_payment"}).where(Checkout.id == checkout["id"]).run()
    return "applied"


async def on_checkout_async_succeeded(event: dict) -> str:
    return await _on_checkout_paid(event, event["data"]["object"])


async def on_checkout_closed(event: dict) -> str:
    """A delayed payment failed, or the session expired unpaid: the checkout is over; the
    membership stays as it was (pending, or active until its end)."""
    session = event["data"]["object"]
    checkout = await checkout_by_reference(session.get("id"), session.get("metadata") or {})
    if checkout is None:
        return "unmatched"
    if checkout["status"] != "complete":
        status = "expired" if event["type"] == "checkout.session.expired" else "failed"
        await Checkout.update({Checkout.status: status}).where(Checkout.id == checkout["id"]).run()
    return "applied"
