"""Stripe's webhooks: each verified event applied once, by the handler for its type, and the
events about nothing we know kept for a person to look at.

Stripe's answers never activate anything by themselves when a browser returns from the
payment page: only a verified webhook does (``handle_stripe_event``). Each event is recorded
once, in the transaction of its effect, and every effect is written as a state ("paid until
the later of the two dates"), never as an increment, so a repeated or late event is harmless."""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref

from lending import clock, db, errors
from lending.i18n import lazy_gettext as _l
from lending.memberships.refunds import record_refund
from lending.memberships.stripe_checkouts import on_checkout_async_succeeded, on_checkout_closed, on_checkout_completed
from lending.memberships.stripe_objects import stamp
from lending.memberships.stripe_subscriptions import (
    on_invoice_failed,
    on_invoice_paid,
    on_subscription_deleted,
    on_subscription_updated,
)
from lending.memberships.tables import Payment, StripeEvent


async def _on_refund_created(event: dict) -> str:
    refund = event["data"]["object"]
    intent = refund.get("payment_intent")
    intent = intent.get("id") if isinstance(intent, dict) else intent
    if not intent:
        return "unmatched"
    payment = await Payment.select(Payment.id).where(Payment.stripe_payment_intent == intent).first().run()
    if payment is None:
        return "unmatched"
    await record_refund(
        payment_id=payment["id"],
        amount_pence=int(refund.get("amount") or 0),
        stripe_refund=refund.get("id"),
        reason="",
        actor_id=None,
        when=stamp(refund.get("created")) or clock.now(),
    )
    return "applied"


_HANDLERS = {
    "checkout.session.completed": on_checkout_completed,
    "checkout.session.async_payment_succeeded": on_checkout_async_succeeded,
    "checkout.session.async_payment_failed": on_checkout_closed,
    "checkout.session.expired": on_checkout_closed,
    "invoice.paid": on_invoice_paid,
    "invoice.payment_failed": on_invoice_failed,
    "customer.subscription.updated": on_subscription_updated,
    "customer.subscription.deleted": on_subscription_deleted,
    "refund.created": _on_refund_created,
}


async def handle_stripe_event(*, event: dict) -> str:
    """Apply one verified Stripe event, once. The event's id is written in the same
    transaction as its effect, so of five deliveries at the same moment exactly one has an
    effect, and a crash between the two leaves neither. Returns the outcome: ``applied``,
    ``ignored`` (not an event we act on), ``unmatched`` (about nothing we know: kept, with
    its body, for a person to look at) or ``duplicate``."""
    event_type = str(event.get("type") or "")
    created = event.get("created")
    data = event.get("data")
    if not isinstance(created, int) or not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise errors.InvalidInput(_l("This is not a Stripe event."), code="invalid_event")
    handler = _HANDLERS.get(event_type)
    event_id = str(event["id"])[:100]
    async with _one_writer():
        return await _apply_event(event, event_id, event_type, created, handler)


_SQLITE_WRITERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _one_writer():
    """On SQLite, this process's webhook deliveries queue here instead of polling for the
    database's write lock (copies of one event arriving together then find it recorded at
    once: bench/memberships.py measured 13 events/s before, 50-60 after, five copies each);
    PostgreSQL's row locks do the same job without it. Other processes are kept apart by the
    database either way."""
    if db.is_postgres():
        yield
        return
    loop = asyncio.get_running_loop()
    lock = _SQLITE_WRITERS.get(loop)
    if lock is None:
        lock = _SQLITE_WRITERS[loop] = asyncio.Lock()
    async with lock:
        yield


async def _apply_event(event: dict, event_id: str, event_type: str, created: int, handler) -> str:
    async with db.transaction(write=True):
        rows = (
            await StripeEvent.insert(
                StripeEvent(
                    event_id=event_id,
                    type=event_type[:100],
                    created=created,
                    received_at=clock.now(),
                    outcome="processing",
                )
            )
            .on_conflict(action="DO NOTHING")
            .returning(StripeEvent.id)
            .run()
        )
        if not rows:
            return "duplicate"
        outcome = await handler(event) if handler else "ignored"
        await (
            StripeEvent.update(
                {
                    StripeEvent.outcome: outcome,
                    StripeEvent.payload: json.dumps(event)[:200_000] if outcome == "unmatched" else "",
                }
            )
            .where(StripeEvent.id == rows[0]["id"])
            .run()
        )
    return outcome


async def unmatched_events(*, limit: int = 50) -> list[dict]:
    return await (
        StripeEvent.select(StripeEvent.event_id, StripeEvent.type, StripeEvent.received_at)
        .where(StripeEvent.outcome == "unmatched")
        .order_by(StripeEvent.id, ascending=False)
        .limit(limit)
        .run()
    )
