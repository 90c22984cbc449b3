"""The fake Stripe behaves like Stripe where the app depends on it.

Everything goes through the real ``stripe`` SDK and real HTTP, and every webhook is checked
with the SDK's own ``stripe.Webhook.construct_event``, so a test of the app that passes against
the fake is evidence about the real integration, not about a mock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import stripe

from tests.fakes.stripe import FakeStripe, FakeStripeError, running_fake_stripe

MONTH = 30 * 24 * 60 * 60
SUCCESS_URL = "https://library.example/thanks?session={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://library.example/join"


class Receiver:
    """A webhook endpoint that, like the app's, refuses anything whose signature fails."""

    def __init__(self, secret: str):
        self.secret = secret
        self.events: list[stripe.Event] = []
        self.rejected = 0
        self.delay = 0.0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                try:
                    time.sleep(receiver.delay)
                    try:
                        event = stripe.Webhook.construct_event(
                            body, self.headers.get("Stripe-Signature"), receiver.secret
                        )
                    except stripe.SignatureVerificationError:
                        with receiver.lock:
                            receiver.rejected += 1
                        status = 400
                    else:
                        with receiver.lock:
                            receiver.events.append(event)
                        status = 200
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stripe/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def about(self, *object_ids: str, type: str | None = None) -> list[stripe.Event]:
        """The verified events (in arrival order) whose object is one of ``object_ids``."""
        with self.lock:
            return [
                event
                for event in self.events
                if getattr(event.data.object, "id", None) in object_ids and (type is None or event.type == type)
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver("whsec_test_fake")
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def fake(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripe]:
    with running_fake_stripe(webhook_url=receiver.url, log_folder=tmp_path_factory.mktemp("fake-stripe")) as fake:
        yield fake


@pytest.fixture(scope="module")
def client(fake: FakeStripe) -> stripe.StripeClient:
    return fake.client()


def one_off(amount: int = 500, **extra) -> dict:
    return {
        "mode": "payment",
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "customer_email": "ada@example.com",
        "client_reference_id": "membership-4",
        "metadata": {"membership_id": "4"},
        "payment_intent_data": {"metadata": {"membership_id": "4"}},
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "gbp",
                    "unit_amount": amount,
                    "product_data": {"name": "Library membership"},
                },
            }
        ],
        **extra,
    }


def recurring(amount: int = 300, interval: str = "month", **extra) -> dict:
    return {
        "mode": "subscription",
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "customer_email": "grace@example.com",
        "metadata": {"membership_id": "7"},
        "subscription_data": {"metadata": {"membership_id": "7"}},
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "gbp",
                    "unit_amount": amount,
                    "product_data": {"name": "Monthly membership"},
                    "recurring": {"interval": interval},
                },
            }
        ],
        **extra,
    }


def subscribed(fake: FakeStripe, client: stripe.StripeClient) -> stripe.Subscription:
    session = client.v1.checkout.sessions.create(params=recurring())
    fake.pay(session.id)
    fake.wait_for_deliveries()
    return client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]}).subscription


def test_a_one_off_checkout_paid_on_the_payment_page(fake, client, receiver):
    session = client.v1.checkout.sessions.create(params=one_off())
    assert session.id.startswith("cs_test_") and len(session.id) == len("cs_test_") + 24
    assert (session.url, session.status, session.payment_status) == (
        f"{fake.base_url}/pay/{session.id}",
        "open",
        "unpaid",
    )
    assert (session.amount_total, session.currency, session.customer) == (500, "gbp", None)

    with httpx.Client(trust_env=False) as http:
        shown = http.get(session.url)
        assert shown.status_code == 200
        for fragment in (
            '<html lang="en">',
            "<title>",
            "<main>",
            "<h1>",
            "£5.00",
            'for="card_number"',
            'value="4242 4242 4242 4242"',
            ">Pay</button>",
            f'href="{CANCEL_URL}"',
        ):
            assert fragment in shown.text
        paid = http.post(session.url, data={"card_number": "4242 4242 4242 4242"}, follow_redirects=False)
    assert paid.status_code == 303
    assert paid.headers["location"] == f"https://library.example/thanks?session={session.id}"

    fake.wait_for_deliveries()
    [completed] = receiver.about(session.id, type="checkout.session.completed")
    paid_session = completed.data.object
    assert (paid_session.payment_status, paid_session.amount_total) == ("paid", 500)
    assert paid_session.metadata.membership_id == "4"
    assert paid_session.customer_details.email == "ada@example.com"
    assert completed.api_version == stripe.api_version

    intent = client.v1.payment_intents.retrieve(paid_session.payment_intent, params={"expand": ["latest_charge"]})
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 500, 500)
    assert intent.metadata.to_dict() == {"membership_id": "4"}
    assert intent.latest_charge.paid and intent.latest_charge.amount == 500
    assert client.v1.customers.retrieve(paid_session.customer).email == "ada@example.com"
    with httpx.Client(trust_env=False) as http:
        assert http.get(session.url).status_code == 409


def test_a_declined_card_leaves_the_session_open(fake, client, receiver):
    session = client.v1.checkout.sessions.create(params=one_off())
    with httpx.Client(trust_env=False) as http:
        declined = http.post(session.url, data={"card_number": "4000 0000 0000 0002"}, follow_redirects=False)
    assert declined.status_code == 402
    assert "Your card was declined." in declined.text and 'role="alert"' in declined.text

    fake.wait_for_deliveries()
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert receiver.about(session.id) == []
    failed = [
        event
        for event in fake.events("payment_intent.payment_failed")
        if event["data"]["object"]["metadata"] == {"membership_id": "4"}
    ]
    assert failed and failed[-1]["data"]["object"]["last_payment_error"]["code"] == "card_declined"


def test_a_subscription_checkout_delivers_three_events_in_order(fake, client, receiver):
    session = client.v1.checkout.sessions.create(params=recurring())
    paid = fake.pay(session.id)
    subscription_id, invoice_id = paid["subscription"], paid["invoice"]
    assert (paid["status"], paid["payment_status"], paid["payment_intent"]) == ("complete", "paid", None)

    fake.wait_for_deliveries()
    events = receiver.about(session.id, subscription_id, invoice_id)
    assert [event.type for event in events] == [
        "customer.subscription.created",
        "checkout.session.completed",
        "invoice.paid",
    ]
    invoice = events[2].data.object
    assert invoice.parent.subscription_details.subscription == subscription_id
    assert invoice.parent.subscription_details.metadata.to_dict() == {"membership_id": "7"}
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == ("subscription_create", "paid", 300)
    assert invoice.lines.data[0].period.end - invoice.lines.data[0].period.start == MONTH
    assert "payments" not in invoice  # includable: only with expand, never in a webhook

    subscription = client.v1.subscriptions.retrieve(subscription_id)
    item = subscription.items.data[0]  # `items` is the API field: a StripeObject is not a dict
    assert (subscription.status, subscription.metadata.membership_id) == ("active", "7")
    assert (item.price.unit_amount, item.price.recurring.interval) == (300, "month")
    assert item.current_period_end - item.current_period_start == MONTH

    expanded = client.v1.invoices.retrieve(invoice_id, params={"expand": ["payments.data.payment.payment_intent"]})
    assert expanded.payments.data[0].payment.payment_intent.status == "succeeded"


def test_renewals_move_the_period_and_the_status(fake, client, receiver):
    subscription = subscribed(fake, client)
    first = subscription.items.data[0]

    renewed = fake.renew(subscription.id)
    invoice, after = renewed["invoice"], renewed["subscription"]
    assert (invoice["status"], invoice["billing_reason"], invoice["amount_paid"]) == ("paid", "subscription_cycle", 300)
    assert invoice["lines"]["data"][0]["period"] == {
        "start": first.current_period_end,
        "end": first.current_period_end + MONTH,
    }
    assert after["items"]["data"][0]["current_period_start"] == first.current_period_end
    assert after["status"] == "active" and after["latest_invoice"] == invoice["id"]

    failed = fake.renew(subscription.id, succeed=False)
    assert (failed["invoice"]["status"], failed["invoice"]["attempt_count"]) == ("open", 1)
    assert failed["subscription"]["status"] == "past_due"
    assert (
        client.v1.subscriptions.retrieve(subscription.id).items.data[0].current_period_end
        == first.current_period_end + 2 * MONTH
    )

    fake.wait_for_deliveries()
    events = receiver.about(subscription.id, invoice["id"], failed["invoice"]["id"])[1:]  # after .created
    assert [event.type for event in events] == [
        "invoice.paid",
        "customer.subscription.updated",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    assert events[3].data.previous_attributes.status == "active"


def test_a_subscription_changes_price_then_cancels_at_period_end(fake, client, receiver):
    subscription = subscribed(fake, client)
    item = subscription.items.data[0]

    changed = client.v1.subscriptions.update(
        subscription.id,
        params={
            "items": [
                {
                    "id": item.id,
                    "price_data": {
                        "currency": "gbp",
                        "product": item.price.product,
                        "unit_amount": 700,
                        "recurring": {"interval": "month"},
                    },
                }
            ],
            "proration_behavior": "none",
        },
    )
    new_price = changed.items.data[0].price
    assert new_price.unit_amount == 700 and new_price.id != item.price.id
    assert new_price.product == item.price.product

    ending = client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    assert ending.cancel_at_period_end and ending.status == "active"
    assert ending.cancel_at == item.current_period_end and ending.canceled_at is not None
    with pytest.raises(FakeStripeError):
        fake.renew(subscription.id)

    ended = fake.end_subscription(subscription.id)
    assert ended["status"] == "canceled" and ended["ended_at"]

    fake.wait_for_deliveries()
    events = receiver.about(subscription.id)[1:]
    assert [event.type for event in events] == [
        "customer.subscription.updated",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    assert events[0].data.previous_attributes["items"].data[0].price.unit_amount == 300
    assert events[1].data.previous_attributes.cancel_at_period_end is False


def test_deleting_a_subscription_cancels_it_at_once(fake, client, receiver):
    subscription = subscribed(fake, client)
    canceled = client.v1.subscriptions.cancel(subscription.id)
    assert canceled.status == "canceled" and canceled.canceled_at and canceled.ended_at
    fake.wait_for_deliveries()
    assert receiver.about(subscription.id)[-1].type == "customer.subscription.deleted"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})


def test_refunds_of_a_payment_intent(fake, client, receiver):
    session = client.v1.checkout.sessions.create(params=one_off(amount=1000))
    intent_id = fake.pay(session.id)["payment_intent"]

    refund = client.v1.refunds.create(
        params={"payment_intent": intent_id, "amount": 400, "reason": "requested_by_customer"}
    )
    assert (refund.object, refund.amount, refund.status, refund.payment_intent) == (
        "refund",
        400,
        "succeeded",
        intent_id,
    )
    charge = client.v1.charges.retrieve(refund.charge)
    assert (charge.amount_refunded, charge.refunded) == (400, False)

    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 601})
    assert too_much.value.code == "amount_too_large"

    rest = client.v1.refunds.create(params={"payment_intent": intent_id})
    assert rest.amount == 600 and client.v1.charges.retrieve(refund.charge).refunded is True
    assert client.v1.refunds.retrieve(rest.id).amount == 600

    fake.wait_for_deliveries()
    events = receiver.about(refund.charge, refund.id, rest.id)
    assert [event.type for event in events] == ["charge.refunded", "refund.created"] * 2
    assert [events[0].data.object.amount_refunded, events[2].data.object.amount_refunded] == [400, 1000]
    assert events[2].data.previous_attributes.to_dict() == {"amount_refunded": 400, "refunded": False}


def test_stripes_minimum_charge_is_enforced(client):
    with pytest.raises(stripe.InvalidRequestError) as small:
        client.v1.checkout.sessions.create(params=one_off(amount=29))
    assert small.value.code == "amount_too_small"
    assert client.v1.checkout.sessions.create(params=one_off(amount=30)).amount_total == 30


def test_parameters_are_checked_as_stripe_checks_them(client):
    cases = [
        (one_off(colour="blue"), "parameter_unknown", "colour"),
        (
            {
                **one_off(),
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": "gbp",
                            "unit_amount": 500,
                            "product_data": {"name": "x"},
                            "recurring": {"interval": "month"},
                        },
                    }
                ],
            },
            None,
            "line_items[0]",
        ),
        (recurring(interval="fortnight"), None, "line_items[0][price_data][recurring][interval]"),
        ({**one_off(), "customer_email": None, "customer": "cus_missing"}, "resource_missing", "customer"),
        ({key: value for key, value in one_off().items() if key != "mode"}, "parameter_missing", "mode"),
    ]
    for params, code, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.checkout.sessions.create(params=params)
        assert (refused.value.code, refused.value.param, refused.value.http_status) == (code, param, 400)
    with pytest.raises(stripe.InvalidRequestError) as absent:
        client.v1.checkout.sessions.retrieve("cs_test_missing")
    assert (absent.value.http_status, absent.value.code) == (404, "resource_missing")


def test_an_idempotency_key_replays_the_first_response(fake, client):
    first = client.v1.checkout.sessions.create(params=one_off(), options={"idempotency_key": "k1"})
    again = client.v1.checkout.sessions.create(params=one_off(), options={"idempotency_key": "k1"})
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    logged = [request for request in fake.requests() if request["idempotency_key"] == "k1"]
    assert [(request["method"], request["path"]) for request in logged] == [("POST", "/v1/checkout/sessions")] * 2
    assert logged[0]["params"]["line_items"][0]["price_data"]["unit_amount"] == 500
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(params=one_off(amount=600), options={"idempotency_key": "k1"})


def test_a_bad_api_key_is_refused(fake):
    wrong = stripe.StripeClient("sk_live_real", base_addresses={"api": fake.base_url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        wrong.v1.customers.create(params={"email": "ada@example.com"})


def test_an_event_resent_five_times_at_once(fake, client, receiver):
    session = client.v1.checkout.sessions.create(params=one_off())
    fake.pay(session.id)
    fake.wait_for_deliveries()
    [original] = receiver.about(session.id)
    receiver.delay, receiver.most_in_flight = 0.2, 0
    try:
        statuses = fake.resend(original.id, times=5, concurrent=True)
    finally:
        receiver.delay = 0.0
    assert statuses == [200] * 5
    copies = receiver.about(session.id)
    assert [event.id for event in copies] == [original.id] * 6
    assert all(event.to_dict() == original.to_dict() for event in copies)
    assert receiver.most_in_flight >= 2
    [stored] = [event for event in fake.events("checkout.session.completed") if event["id"] == original.id]
    assert [delivery["status"] for delivery in stored["deliveries"]] == [200] * 6


def test_a_delayed_payment_settles_later(fake, client, receiver):
    cleared = client.v1.checkout.sessions.create(params=one_off())
    bounced = client.v1.checkout.sessions.create(params=one_off())
    assert fake.pay(cleared.id, outcome="async")["payment_status"] == "unpaid"
    fake.pay(bounced.id, outcome="async")
    assert fake.settle(cleared.id)["payment_status"] == "paid"
    assert fake.settle(bounced.id, succeed=False)["payment_status"] == "unpaid"

    fake.wait_for_deliveries()
    assert [event.type for event in receiver.about(cleared.id)] == [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    ]
    assert [event.type for event in receiver.about(bounced.id)] == [
        "checkout.session.completed",
        "checkout.session.async_payment_failed",
    ]
    assert receiver.about(cleared.id)[0].data.object.payment_status == "unpaid"


def test_any_event_can_be_sent_and_deliveries_are_recorded(fake, receiver):
    sent = fake.send(
        "customer.subscription.updated", {"id": "sub_made_up", "object": "subscription", "status": "unpaid"}
    )
    assert sent["statuses"] == [200] and sent["event"]["id"].startswith("evt_")
    assert receiver.about("sub_made_up")[0].data.object.status == "unpaid"

    fake.set_webhook(receiver.url, "whsec_not_the_one_the_app_knows")
    try:
        assert fake.send("ping", {"id": "obj_unsigned", "object": "thing"})["statuses"] == [400]
    finally:
        fake.set_webhook(receiver.url, "whsec_test_fake")
    assert receiver.about("obj_unsigned") == []
    assert fake.events("ping")[-1]["deliveries"] == [{"status": 400, "error": None}]


def test_an_expired_session_cannot_be_paid(fake, client, receiver):
    session = client.v1.checkout.sessions.create(params=one_off())
    assert client.v1.checkout.sessions.expire(session.id).status == "expired"
    with httpx.Client(trust_env=False) as http:
        assert http.get(session.url).status_code == 410
    with pytest.raises(FakeStripeError):
        fake.pay(session.id)
    fake.wait_for_deliveries()
    assert [event.type for event in receiver.about(session.id)] == ["checkout.session.expired"]
    event = client.v1.events.retrieve(receiver.about(session.id)[0].id)
    assert json.loads(json.dumps(event.to_dict()))["data"]["object"]["status"] == "expired"
