"""What Stripe's invoice and subscription events change for a membership that renews itself:
renewals paid or failed (the member is told), the subscription changed or ended."""

from __future__ import annotations

from lending import clock, db, i18n
from lending.audit import services as audit
from lending.mail import services as mail
from lending.members.tables import Account
from lending.memberships import rules
from lending.memberships.activation import lock_membership
from lending.memberships.rules import Status
from lending.memberships.stripe_checkouts import apply_checkout_terms, checkout_by_reference, record_stripe_payment
from lending.memberships.stripe_objects import (
    invoice_payment_intent,
    invoice_period_end,
    invoice_subscription,
    metadata_id,
    stamp,
)
from lending.memberships.tables import Membership
from lending.venues import services as venues


async def _membership_for_subscription(subscription_id: str | None, metadata: dict) -> dict | None:
    """By the subscription we stored; failing that (its first events can overtake the checkout's)
    by the membership id we put in its metadata, if that membership has no other subscription."""
    if subscription_id:
        query = Membership.select().where(Membership.stripe_subscription == subscription_id)
        if db.is_postgres():
            query = query.lock_rows("UPDATE")
        row = await query.first().run()
        if row is not None:
            return row
    membership_id = metadata_id(metadata, "membership_id")
    if membership_id is None:
        return None
    row = await lock_membership(membership_id)
    if row is None or (row["stripe_subscription"] and row["stripe_subscription"] != subscription_id):
        return None
    return row


async def _invoice_membership(event: dict) -> tuple[dict, str | None, dict, dict | None]:
    """An invoice event's invoice, subscription, metadata and membership (locked)."""
    invoice = event["data"]["object"]
    subscription, metadata = invoice_subscription(invoice)
    return invoice, subscription, metadata, await _membership_for_subscription(subscription, metadata)


async def on_invoice_paid(event: dict) -> str:
    invoice, subscription, metadata, membership = await _invoice_membership(event)
    if membership is None:
        return "unmatched"
    when = stamp(event.get("created")) or clock.now()
    period_end = invoice_period_end(invoice)
    checkout = await checkout_by_reference(None, metadata)
    if checkout is not None and checkout["membership"] != membership["id"]:
        checkout = None
    if checkout is not None and checkout["status"] != "complete":
        customer = invoice.get("customer")
        ends_at = await apply_checkout_terms(
            checkout=checkout,
            membership=membership,
            when=when,
            subscription=subscription,
            period_end=period_end,
            customer=customer.get("id") if isinstance(customer, dict) else customer,
            created=event["created"],
        )
    else:
        ends_at = max(d for d in (membership["ends_at"], period_end, when) if d)
        status = rules.apply_stripe_status(
            current=membership["status"],
            incoming=Status.active.value,
            current_at=membership["stripe_state_at"],
            incoming_at=event["created"],
        )
        if membership["status"] == Status.expired.value:
            status = Status.active.value  # paid again after lapsing
        await (
            Membership.update(
                {
                    Membership.status: status,
                    Membership.ends_at: ends_at if status != Status.cancelled.value else membership["ends_at"],
                    Membership.stripe_subscription: subscription or membership["stripe_subscription"],
                    Membership.stripe_state_at: max(event["created"], membership["stripe_state_at"]),
                    Membership.updated_at: clock.now(),
                }
            )
            .where(Membership.id == membership["id"])
            .run()
        )
    await record_stripe_payment(
        reference=invoice["id"],
        membership=membership,
        checkout=checkout,
        amount_pence=int(invoice.get("amount_paid") or 0),
        payment_intent=invoice_payment_intent(invoice),
        when=when,
        covers_until=ends_at,
    )
    return "applied"


async def on_invoice_failed(event: dict) -> str:
    invoice, _subscription, _metadata, membership = await _invoice_membership(event)
    if membership is None:
        return "unmatched"
    if membership["status"] == Status.active.value:
        status = rules.apply_stripe_status(
            current=membership["status"],
            incoming=Status.past_due.value,
            current_at=membership["stripe_state_at"],
            incoming_at=event["created"],
        )
        await (
            Membership.update(
                {
                    Membership.status: status,
                    Membership.stripe_state_at: max(event["created"], membership["stripe_state_at"]),
                    Membership.updated_at: clock.now(),
                }
            )
            .where(Membership.id == membership["id"])
            .run()
        )
        if status == Status.past_due.value:
            await _queue_payment_failed(membership["member"], invoice["id"])
    return "applied"


async def _queue_payment_failed(member_id: int, invoice_id: str) -> None:
    """Tell the member, once per invoice, that a renewal did not go through."""
    account = (
        await Account.select(Account.email, Account.language, Account.name).where(Account.id == member_id).first().run()
    )
    if not account or not account["email"]:
        return
    with i18n.in_language(account["language"]):
        subject = i18n.gettext("Your membership payment did not go through")
        body = "\n".join(
            [
                i18n.gettext("Hello %(name)s,", name=account["name"]),
                "",
                i18n.gettext(
                    "Your card was not charged for your membership's renewal. Stripe will try again over the "
                    "next few days, and you can keep borrowing meanwhile."
                ),
                i18n.gettext(
                    "If your card has changed, cancel the membership on your account page and join again, or "
                    "pay at the counter."
                ),
            ]
        )
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"payment-failed:{invoice_id}",
        to_address=account["email"],
        subject=subject,
        body=body,
        account_id=member_id,
        kind="payment_failed",
        language=account["language"],
        values={"name": account["name"]},
    )


async def on_subscription_updated(event: dict) -> str:
    subscription = event["data"]["object"]
    membership = await _membership_for_subscription(subscription.get("id"), subscription.get("metadata") or {})
    if membership is None:
        return "unmatched"
    if event["created"] < membership["stripe_state_at"]:
        return "ignored"  # an older picture of the subscription than the one applied
    incoming = rules.status_from_stripe(subscription.get("status", ""))
    changes: dict = {
        Membership.stripe_state_at: event["created"],
        Membership.updated_at: clock.now(),
        Membership.cancel_at_period_end: bool(subscription.get("cancel_at_period_end")),
        Membership.stripe_subscription: subscription.get("id"),
    }
    if incoming and membership["status"] != Status.pending.value or incoming == Status.active.value:
        changes[Membership.status] = rules.apply_stripe_status(
            current=membership["status"],
            incoming=incoming,
            current_at=membership["stripe_state_at"],
            incoming_at=event["created"],
        )
    items = (subscription.get("items") or {}).get("data") or []
    if items:
        period_end = stamp(items[0].get("current_period_end"))
        if period_end and changes.get(Membership.status, membership["status"]) == Status.active.value:
            changes[Membership.ends_at] = max(d for d in (membership["ends_at"], period_end) if d)
        unit = (items[0].get("price") or {}).get("unit_amount")
        if isinstance(unit, int) and unit != membership["amount_pence"] + membership["forward_pence"]:
            forward = membership["forward_pence"] if unit >= membership["forward_pence"] else 0
            changes[Membership.amount_pence] = unit - forward
            changes[Membership.forward_pence] = forward
    await Membership.update(changes).where(Membership.id == membership["id"]).run()
    return "applied"


async def on_subscription_deleted(event: dict) -> str:
    """The subscription is over, whatever came before: the membership is cancelled, and ends
    when Stripe ended it."""
    subscription = event["data"]["object"]
    membership = await _membership_for_subscription(subscription.get("id"), subscription.get("metadata") or {})
    if membership is None:
        return "unmatched"
    ended = stamp(subscription.get("ended_at")) or stamp(subscription.get("canceled_at")) or stamp(event["created"])
    ends_at = min(d for d in (membership["ends_at"], ended) if d) if (membership["ends_at"] or ended) else None
    await (
        Membership.update(
            {
                Membership.status: Status.cancelled.value,
                Membership.cancelled_at: ended,
                Membership.ends_at: ends_at,
                Membership.cancel_at_period_end: False,
                Membership.stripe_state_at: max(event["created"], membership["stripe_state_at"]),
                Membership.updated_at: clock.now(),
            }
        )
        .where(Membership.id == membership["id"])
        .run()
    )
    await audit.record(
        action="membership.cancel", actor_id=None, subject=f"membership:{membership['id']}", detail="stripe"
    )
    return "applied"
