"""Memberships paid through Stripe: the real SDK talks to the fake Stripe, and the events it
makes are handed to the service as the webhook would hand them, in order, twice, at once
and out of order. (The signed webhook over HTTP is tested in tests/http/test_stripe_webhook.py.)"""

from __future__ import annotations

import asyncio
import json

import pytest

from lending import errors
from lending.mail.tables import Email
from lending.memberships import joining, records, recurring, refunds, stripe_events, tiers
from lending.memberships.gateway import StripeGateway
from lending.memberships.tables import Checkout, Membership, Payment, Refund, StripeEvent
from lending.memberships.tiers import TierInput

BASE = "http://testserver.local"


class Events:
    """The fake's events not yet seen by this test."""

    def __init__(self, fake):
        self.fake = fake
        self.seen = {event["id"] for event in fake.events()}

    def new(self) -> list[dict]:
        found = [e for e in self.fake.events() if e["id"] not in self.seen]
        self.seen |= {e["id"] for e in found}
        return [{k: v for k, v in e.items() if k != "deliveries"} for e in found]

    async def apply(self) -> list[str]:
        return [await stripe_events.handle_stripe_event(event=event) for event in self.new()]


async def make_tiers() -> dict:
    return {
        "yearly": await tiers.save_tier(
            values=TierInput(
                name="Pay what you can",
                min_pence=100,
                max_pence=5000,
                allow_free=True,
                interval="one_off",
                suggested=[0, 500],
            )
        ),
        "monthly": await tiers.save_tier(
            values=TierInput(name="Monthly", min_pence=100, max_pence=2000, interval="month", position=1)
        ),
    }


def session_id(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def start(people, gateway, tier, amount=500, forward=0):
    return await joining.start_membership(
        member_id=people["member"].id, tier=tier.id, amount=amount, forward=forward, gateway=gateway, base_url=BASE
    )


async def test_a_one_off_payment_activates_from_the_webhook_alone(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["yearly"], amount=700, forward=300)
    assert outcome.checkout_url.startswith(fake_stripe.base_url + "/pay/")
    assert outcome.membership.status == "pending"
    sent = fake_stripe.requests()[-1]
    assert sent["path"] == "/v1/checkout/sessions" and sent["params"]["mode"] == "payment"
    assert sent["params"]["line_items"][0]["price_data"]["unit_amount"] in (1000, "1000")
    assert sent["idempotency_key"].startswith("checkout-")
    fake_stripe.pay(session_id(outcome.checkout_url))
    assert await events.apply() == ["applied"]
    membership = await records.current_membership(member_id=people["member"].id)
    assert membership.status == "active" and membership.method == "stripe"
    assert membership.amount_pence == 700 and membership.forward_pence == 300
    payment = (await records.member_payments(member_id=people["member"].id))[0]
    assert payment.amount_pence == 1000 and payment.forward_pence == 300 and payment.stripe_payment_intent
    receipt = await Email.select().where(Email.key == f"receipt:{payment.id}").first().run()
    assert receipt["to_address"] == "member@example.org" and "£10.00" in receipt["body"]


async def test_the_same_event_five_times_at_once_has_one_effect(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["yearly"])
    fake_stripe.pay(session_id(outcome.checkout_url))
    [event] = events.new()
    results = await asyncio.gather(
        *(stripe_events.handle_stripe_event(event=json.loads(json.dumps(event))) for _ in range(5))
    )
    assert sorted(results) == ["applied"] + ["duplicate"] * 4
    assert await Payment.count().run() == 1
    assert await StripeEvent.count().run() == 1
    membership = await records.current_membership(member_id=people["member"].id)
    first_end = membership.ends_at
    assert await stripe_events.handle_stripe_event(event=event) == "duplicate"
    assert (await records.current_membership(member_id=people["member"].id)).ends_at == first_end


async def test_the_database_alone_keeps_one_effect_per_event(people, gateway, fake_stripe):
    """Past this process's queue: five transactions racing
    for one event id (as from five processes) still leave one effect."""
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["yearly"])
    fake_stripe.pay(session_id(outcome.checkout_url))
    [event] = events.new()
    handler = stripe_events._HANDLERS[event["type"]]
    results = await asyncio.gather(
        *(stripe_events._apply_event(event, event["id"], event["type"], event["created"], handler) for _ in range(5))
    )
    assert sorted(results) == ["applied"] + ["duplicate"] * 4
    assert await Payment.count().run() == 1 and await StripeEvent.count().run() == 1


async def test_a_subscription_renews_fails_and_recovers(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["monthly"], amount=400)
    paid = fake_stripe.pay(session_id(outcome.checkout_url))
    assert await events.apply() == ["ignored", "applied", "applied"]  # subscription.created is not needed
    membership = await records.current_membership(member_id=people["member"].id)
    assert membership.status == "active" and membership.stripe_subscription == paid["subscription"]
    assert await Payment.count().run() == 1
    first_end = membership.ends_at

    fake_stripe.renew(paid["subscription"], succeed=False)
    assert await events.apply() == ["applied", "applied"]
    assert (await records.current_membership(member_id=people["member"].id)).status == "past_due"
    assert await Email.count().where(Email.key.like("payment-failed:%")).run() == 1

    fake_stripe.renew(paid["subscription"], succeed=True)
    await events.apply()
    renewed = await records.current_membership(member_id=people["member"].id)
    assert renewed.status == "active" and renewed.ends_at > first_end
    assert await Payment.count().run() == 2


async def test_events_in_any_order_leave_the_same_state(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["monthly"], amount=400)
    fake_stripe.pay(session_id(outcome.checkout_url))
    made = events.new()
    assert [e["type"] for e in made] == ["customer.subscription.created", "checkout.session.completed", "invoice.paid"]
    for event in reversed(made):
        await stripe_events.handle_stripe_event(event=event)
    membership = await records.current_membership(member_id=people["member"].id)
    invoice_end = made[2]["data"]["object"]["lines"]["data"][0]["period"]["end"]
    assert membership.status == "active" and int(membership.ends_at.timestamp()) == invoice_end
    assert membership.amount_pence == 400 and await Payment.count().run() == 1
    assert (await Checkout.select(Checkout.status).first().run())["status"] == "complete"

    # A renewal's failure reported after its later success does not undo the success.
    subscription = membership.stripe_subscription
    fake_stripe.renew(subscription, succeed=False)
    failed = events.new()
    fake_stripe.renew(subscription, succeed=True)
    succeeded = events.new()
    for event in failed:  # Stripe retries a failed renewal days later; here both came in one second
        event["created"] -= 3 * 24 * 3600
    for event in succeeded + failed:
        await stripe_events.handle_stripe_event(event=event)
    assert (await records.current_membership(member_id=people["member"].id)).status == "active"


async def test_cancelling_stops_renewal_then_ends_the_membership(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["monthly"], amount=400)
    paid = fake_stripe.pay(session_id(outcome.checkout_url))
    await events.apply()
    cancelled = await recurring.cancel_recurring(member_id=people["member"].id, gateway=gateway)
    assert cancelled.cancel_at_period_end and cancelled.status == "active"
    await events.apply()
    assert (await records.current_membership(member_id=people["member"].id)).cancel_at_period_end
    fake_stripe.end_subscription(paid["subscription"])
    assert await events.apply() == ["applied"]
    assert (await records.current_membership(member_id=people["member"].id)).status == "cancelled"
    with pytest.raises(errors.Conflict):
        await recurring.cancel_recurring(member_id=people["member"].id, gateway=gateway)


async def test_changing_the_amount_changes_the_subscription(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["monthly"], amount=400)
    paid = fake_stripe.pay(session_id(outcome.checkout_url))
    await events.apply()
    with pytest.raises(errors.InvalidInput) as raised:
        await recurring.change_amount(member_id=people["member"].id, amount=5000, gateway=gateway)
    assert raised.value.code == "amount_above_maximum"
    changed = await recurring.change_amount(member_id=people["member"].id, amount=900, gateway=gateway)
    assert changed.amount_pence == 900
    subscription = fake_stripe.client().v1.subscriptions.retrieve(paid["subscription"])
    assert subscription["items"]["data"][0]["price"]["unit_amount"] == 900
    await events.apply()
    assert (await records.current_membership(member_id=people["member"].id)).amount_pence == 900


async def test_a_refund_through_stripe_is_recorded_once(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["yearly"], amount=1200)
    fake_stripe.pay(session_id(outcome.checkout_url))
    await events.apply()
    payment = (await records.member_payments(member_id=people["member"].id))[0]
    refunded = await refunds.refund_payment(
        payment_id=payment.id, amount=500, gateway=gateway, actor_id=people["coordinator"].id
    )
    assert refunded.refunded_pence == 500
    applied = events.new()
    assert "refund.created" in [e["type"] for e in applied]
    for event in applied:
        await stripe_events.handle_stripe_event(event=event)
    assert (await records.get_payment(payment_id=payment.id)).refunded_pence == 500
    assert await Refund.count().run() == 1
    with pytest.raises(errors.InvalidInput) as raised:
        await refunds.refund_payment(payment_id=payment.id, amount=701, gateway=gateway, actor_id=None)
    assert raised.value.code == "refund_too_large"


async def test_a_recurring_payment_is_refunded_through_its_invoice(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["monthly"], amount=400)
    fake_stripe.pay(session_id(outcome.checkout_url))
    await events.apply()
    payment = (await records.member_payments(member_id=people["member"].id))[0]
    refunded = await refunds.refund_payment(payment_id=payment.id, gateway=gateway, actor_id=None, end_membership=True)
    assert refunded.refunded_pence == 400 and refunded.stripe_payment_intent
    await events.apply()
    assert await Refund.count().run() == 1
    membership = await records.current_membership(member_id=people["member"].id)
    assert membership.status == "cancelled"
    subscription = fake_stripe.client().v1.subscriptions.retrieve(membership.stripe_subscription)
    assert subscription["status"] == "canceled"  # Stripe stops charging too


async def test_an_event_about_nobody_is_kept_and_changes_nothing(people, gateway, fake_stripe):
    await make_tiers()
    sent = fake_stripe.send(
        "checkout.session.completed",
        {
            "id": "cs_test_nobody",
            "object": "checkout.session",
            "mode": "payment",
            "payment_status": "paid",
            "amount_total": 900,
            "customer": "cus_unknown",
            "metadata": {},
        },
    )
    event = {k: v for k, v in sent["event"].items() if k != "deliveries"}
    assert await stripe_events.handle_stripe_event(event=event) == "unmatched"
    row = await StripeEvent.select().first().run()
    assert row["outcome"] == "unmatched" and "cus_unknown" in row["payload"]
    assert await Membership.count().run() == 0 and await Payment.count().run() == 0
    assert [e["event_id"] for e in await stripe_events.unmatched_events()] == [event["id"]]


async def test_a_delayed_payment_waits_until_it_settles(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    outcome = await start(people, gateway, t["yearly"])
    fake_stripe.pay(session_id(outcome.checkout_url), outcome="async")
    await events.apply()
    assert (await records.current_membership(member_id=people["member"].id)).status == "pending"
    fake_stripe.settle(session_id(outcome.checkout_url), succeed=True)
    await events.apply()
    assert (await records.current_membership(member_id=people["member"].id)).status == "active"


async def test_a_new_payment_page_closes_the_old_one_and_reuses_the_customer(people, gateway, fake_stripe):
    t = await make_tiers()
    events = Events(fake_stripe)
    first = await start(people, gateway, t["yearly"])
    second = await start(people, gateway, t["yearly"], amount=900)
    old = fake_stripe.client().v1.checkout.sessions.retrieve(session_id(first.checkout_url))
    assert old["status"] == "expired"
    fake_stripe.pay(session_id(second.checkout_url))
    await events.apply()
    membership = await records.current_membership(member_id=people["member"].id)
    assert membership.status == "active" and membership.amount_pence == 900
    assert (
        await Checkout.select(Checkout.status)
        .where(Checkout.session_id == session_id(first.checkout_url))
        .first()
        .run()
    )["status"] == "expired"
    customer = (await Membership.select(Membership.stripe_customer).first().run())["stripe_customer"]
    renewal = await start(people, gateway, t["yearly"], amount=500)
    sent = fake_stripe.requests()[-1]
    assert sent["params"].get("customer") == customer and "customer_email" not in sent["params"]
    assert renewal.checkout_url


async def test_below_stripes_minimum_online_is_refused(people, gateway):
    tier = await tiers.save_tier(values=TierInput(name="Pennies", min_pence=10, max_pence=100))
    with pytest.raises(errors.InvalidInput) as raised:
        await start(people, gateway, tier, amount=20)
    assert raised.value.code == "amount_below_card_minimum"
    assert await Membership.count().run() == 0


async def test_when_stripe_does_not_answer_the_membership_waits_and_nothing_is_lost(people):
    t = await make_tiers()
    unreachable = StripeGateway(secret_key="sk_test_x", webhook_secret="whsec_x", api_base="http://127.0.0.1:9")
    outcome = await start(people, unreachable, t["yearly"])
    assert outcome.checkout_url is None and outcome.pay_at_counter and outcome.payment_problem
    assert outcome.membership.status == "pending"
    assert (await Checkout.select(Checkout.status).first().run())["status"] == "failed"
