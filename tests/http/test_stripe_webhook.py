"""Paying through Stripe end to end with real processes: a `lending run` server on SQLite and
on PostgreSQL, the fake Stripe delivering signed webhooks to it over HTTP, and the real SDK
between them. Joining pays on the stand-in's page and the membership activates from the
webhook alone; the same event delivered five times at once has one effect; a forged event
is refused; a renewal and a cancellation arrive the same way."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import stripe

from tests.conftest import SECRET
from tests.fakes.stripe import running_fake_stripe
from tests.http.test_processes import database_for
from tests.servers import run_command, running_server, server_env


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, tmp_path_factory):
    """One server and one fake per engine for the module; each test uses its own members."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    with database_for(request.param, tmp_path) as url, running_fake_stripe(log_folder=tmp_path) as fake:
        env = server_env(
            SECRET_KEY=SECRET,
            DATABASE_URL=url,
            STRIPE_SECRET_KEY=fake.secret_key,
            STRIPE_WEBHOOK_SECRET=fake.webhook_secret,
            STRIPE_API_BASE=fake.base_url,
            LENDING_DEMO="1",
        )
        run_command("demo", cwd=tmp_path, env=env)
        token = run_command(
            "token", "create", "--email", "coordinator@demo.example", cwd=tmp_path, env=env
        ).stdout.strip()
        with running_server(tmp_path, env) as server:
            fake.set_webhook(server.url("/webhooks/stripe"))
            yield server, fake, token


def tier_id(client: httpx.Client, server, name: str) -> int:
    tiers = client.get(server.url("/api/v1/membership-tiers")).json()["tiers"]
    return next(t["id"] for t in tiers if t["name"] == name)


def join(client: httpx.Client, server, tier: int, amount: str, email: str) -> httpx.Response:
    client.get(server.url(f"/join?tier={tier}"))
    agreement = re.search(
        r'name="agreement_version" type="checkbox" value="(\d+)"', client.get(server.url(f"/join?tier={tier}")).text
    ).group(1)
    return client.post(
        server.url("/join"),
        data={
            "tier": str(tier),
            "amount": "other",
            "amount_other": amount,
            "name": "Ffion Evans",
            "email": email,
            "password": "a long enough password",
            "language": "cy",
            "agreement_version": agreement,
            "_csrf_token": client.cookies["lending_csrf"],
        },
    )


def payments(server, token: str) -> list[dict]:
    return httpx.get(server.url("/api/v1/payments"), headers={"Authorization": f"Bearer {token}"}).json()["payments"]


def test_join_pay_on_the_stand_in_page_and_the_webhook_activates(stack):
    server, fake, token = stack
    with httpx.Client(follow_redirects=False, timeout=30) as client:
        response = join(client, server, tier_id(client, server, "Pay what you can"), "12.50", "ffion@example.org")
        assert response.status_code == 303, response.text
        pay_page = response.headers["location"]
        assert pay_page.startswith(fake.base_url + "/pay/cs_")
        assert "£12.50" in client.get(pay_page).text
        paid = client.post(pay_page, data={"card_number": "4242 4242 4242 4242"})
        assert paid.status_code == 303
        done = paid.headers["location"]
        assert done.startswith(server.url("/join/done?session_id=cs_"))
        fake.wait_for_deliveries()
        assert all(d["status"] == 200 for e in fake.events() for d in e["deliveries"])
        page = client.get(done)
        assert page.status_code == 200 and 'lang="cy"' in page.text
        mine = client.get(server.url("/api/v1/memberships/mine")).json()
        assert mine["membership"]["status"] == "active" and mine["membership"]["amount_pence"] == 1250
        assert [p["amount_pence"] for p in mine["payments"]] == [1250]
        # Someone else's session id in the address shows nothing and activates nothing.
        with httpx.Client(follow_redirects=False, timeout=30) as other:
            join(other, server, tier_id(other, server, "Pay what you can"), "5", "other@example.org")
            stolen = other.get(done)
            assert stolen.status_code == 404
            assert other.get(server.url("/api/v1/memberships/mine")).json()["membership"]["status"] == "pending"


def test_the_same_event_five_times_at_once_has_one_effect(stack):
    server, fake, token = stack
    with httpx.Client(follow_redirects=False, timeout=30) as client:
        response = join(client, server, tier_id(client, server, "Pay what you can"), "8", "five@example.org")
        fake.pay(response.headers["location"].rsplit("/", 1)[1])
        fake.wait_for_deliveries()
        [completed] = [
            e
            for e in fake.events("checkout.session.completed")
            if e["data"]["object"]["customer_email"] == "five@example.org"
        ]
        statuses = fake.resend(completed["id"], times=5, concurrent=True)
        assert statuses == [200] * 5
        mine = client.get(server.url("/api/v1/memberships/mine")).json()
        assert len(mine["payments"]) == 1 and mine["membership"]["status"] == "active"
        ends_at = mine["membership"]["ends_at"]
        fake.resend(completed["id"], times=2, concurrent=False)
        assert client.get(server.url("/api/v1/memberships/mine")).json()["membership"]["ends_at"] == ends_at
    assert len([p for p in payments(server, token) if p["amount_pence"] == 800]) == 1


def test_a_forged_or_replayed_webhook_changes_nothing(stack):
    server, fake, token = stack
    before = payments(server, token)
    outcomes_before = len(fake.events())
    event = {
        "id": "evt_forged",
        "object": "event",
        "type": "checkout.session.completed",
        "created": 1,
        "data": {
            "object": {
                "id": "cs_test_forged",
                "object": "checkout.session",
                "mode": "payment",
                "payment_status": "paid",
                "amount_total": 100000,
                "metadata": {"checkout_id": "1"},
            }
        },
    }
    payload = json.dumps(event)
    forged = httpx.post(
        server.url("/webhooks/stripe"),
        content=payload,
        headers={
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(payload, "whsec_guess"),
            "Content-Type": "application/json",
        },
    )
    assert forged.status_code == 400 and forged.json()["code"] == "bad_signature"
    old = stripe.WebhookSignature.generate_signature_header(payload, fake.webhook_secret, timestamp=1)
    replayed = httpx.post(
        server.url("/webhooks/stripe"),
        content=payload,
        headers={"Stripe-Signature": old, "Content-Type": "application/json"},
    )
    assert replayed.status_code == 400  # outside the SDK's five-minute tolerance
    assert payments(server, token) == before
    assert len(fake.events()) == outcomes_before


def test_a_monthly_membership_renews_fails_and_is_cancelled(stack):
    server, fake, token = stack
    with httpx.Client(follow_redirects=False, timeout=30) as client:
        response = join(client, server, tier_id(client, server, "Monthly supporter"), "3", "monthly@example.org")
        session = fake.pay(response.headers["location"].rsplit("/", 1)[1])
        fake.wait_for_deliveries()

        def mine() -> dict:
            return client.get(server.url("/api/v1/memberships/mine")).json()

        assert mine()["membership"]["status"] == "active" and mine()["membership"]["interval"] == "month"
        fake.renew(session["subscription"], succeed=True)
        fake.wait_for_deliveries()
        assert len(mine()["payments"]) == 2
        fake.renew(session["subscription"], succeed=False)
        fake.wait_for_deliveries()
        assert mine()["membership"]["status"] == "past_due"
        fake.renew(session["subscription"], succeed=True)
        fake.wait_for_deliveries()
        assert mine()["membership"]["status"] == "active"
        cancelled = client.post(
            server.url("/api/v1/memberships/mine/cancel"), headers={"X-CSRFToken": client.cookies["lending_csrf"]}
        )
        assert cancelled.status_code == 200 and cancelled.json()["cancel_at_period_end"]
        fake.end_subscription(session["subscription"])
        fake.wait_for_deliveries()
        assert mine()["membership"]["status"] == "cancelled"
