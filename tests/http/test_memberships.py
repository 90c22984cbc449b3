"""Memberships through HTTP: /join, the account page, the desk, the coordinators' pages, the
memberships API and the webhook's signature check (the in-process app, no Stripe process)."""

from __future__ import annotations

import json
import time

import stripe

from lending.members.tables import Account
from lending.memberships import agreements, counter_payments, joining, records, tiers
from lending.memberships.gateway import NO_GATEWAY
from lending.memberships.tables import Membership, Payment, StripeEvent
from lending.memberships.tiers import TierInput
from tests.conftest import PASSWORD, make_settings, post_form
from tests.http.test_api import bearer

WEBHOOK_SECRET = "whsec_in_process"


async def make_tiers():
    free = await tiers.save_tier(
        values=TierInput(
            name="Pay what you can",
            description="No means test.",
            suggested=[0, 500],
            min_pence=100,
            max_pence=5000,
            allow_free=True,
            gift_aid=True,
        )
    )
    monthly = await tiers.save_tier(
        values=TierInput(name="Monthly", min_pence=100, max_pence=2000, interval="month", position=1)
    )
    return free, monthly


def signed(event: dict, secret: str = WEBHOOK_SECRET) -> tuple[bytes, dict]:
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


async def test_the_join_page_lists_tiers_then_the_chosen_one(client, database):
    free, _ = await make_tiers()
    page = await client.get("/join")
    assert page.status_code == 200 and "Pay what you can" in page.text and f"/join?tier={free.id}" in page.text
    chosen = await client.get(f"/join?tier={free.id}")
    assert 'name="amount"' in chosen.text and "Nothing: a free membership" in chosen.text
    assert "Gift Aid" in chosen.text and 'name="password"' in chosen.text
    assert "pay it at the counter" in chosen.text  # no Stripe configured in this app


async def test_joining_free_through_the_form_signs_in_and_shows_the_membership(client, database):
    free, _ = await make_tiers()
    agreement = await agreements.publish_agreement(body="Bring it back clean.")
    response = await post_form(
        client,
        "/join",
        {
            "tier": str(free.id),
            "amount": "0.00",
            "name": "Nia Jones",
            "email": "nia@example.org",
            "password": PASSWORD,
            "language": "en",
            "agreement_version": str(agreement.version),
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/account", response.text
    account = await client.get("/account")
    assert account.status_code == 200 and "Active" in account.text and "Pay what you can" in account.text


async def test_a_bad_join_shows_every_problem_and_writes_nothing(client, database):
    free, _ = await make_tiers()
    await agreements.publish_agreement(body="Rules")
    response = await post_form(
        client,
        "/join",
        {"tier": str(free.id), "amount": "other", "amount_other": "-3", "name": "", "email": "bad", "password": "x"},
    )
    assert response.status_code == 422
    for field in ("amount", "name", "email", "password", "agreement"):
        assert f'href="#field-{field}"' in response.text, field
    assert await Account.count().run() == 0 and await Membership.count().run() == 0


async def test_the_tier_api_and_counter_payments(client, people):
    free, monthly = await make_tiers()
    offered = (await client.get("/api/v1/membership-tiers")).json()["tiers"]
    assert [t["name"] for t in offered] == ["Pay what you can", "Monthly"]
    assert offered[0]["suggested_pence"] == [0, 500] and offered[1]["interval"] == "month"
    headers = await bearer(people, "volunteer")
    response = await client.post(
        "/api/v1/memberships",
        headers=headers,
        json={
            "card_code": people["member"].card_code,
            "tier": free.id,
            "amount_pence": 1500,
            "method": "cash",
            "forward_pence": 500,
            "gift_aid": {"full_name": "Test Member", "house": "1", "postcode": "CF10 1AA"},
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["membership"]["status"] == "active" and body["membership"]["may_borrow"]
    assert body["payment"]["amount_pence"] == 2000 and body["payment"]["forward_pence"] == 500
    assert body["payment"]["gift_aid"]
    member_headers = await bearer(people, "member")
    mine = (await client.get("/api/v1/memberships/mine", headers=member_headers)).json()
    assert mine["membership"]["tier"] == "Pay what you can" and len(mine["payments"]) == 1


async def test_bad_counter_payments_get_a_stable_code_and_change_nothing(client, people):
    free, _ = await make_tiers()
    headers = await bearer(people, "volunteer")
    cases = [
        ({"amount_pence": 50}, 422, "amount_below_minimum"),
        ({"amount_pence": 5001}, 422, "amount_above_maximum"),
        ({"amount_pence": -100}, 422, "amount_negative"),
        ({"amount_pence": 250.5}, 422, "amount_fractional_pence"),
        ({"amount_pence": "lots"}, 422, "amount_not_a_number"),
        ({"amount_pence": True}, 400, "invalid_input"),
        ({"method": "cheque"}, 422, "invalid_method"),
        ({"tier": 999}, 422, "tier_not_found"),
        ({"member_id": None, "card_code": "ZZZZZZZZ"}, 404, "member_not_found"),
        ({"gift_aid": {"full_name": "", "house": "", "postcode": "x"}}, 422, "invalid_input"),
    ]
    for changes, status, code in cases:
        body = {"member_id": people["member"].id, "tier": free.id, "amount_pence": 500, "method": "cash", **changes}
        response = await client.post("/api/v1/memberships", headers=headers, json=body)
        assert response.status_code == status, (changes, response.text)
        assert response.json()["code"] == code, (changes, response.json())
    member_headers = await bearer(people, "member")
    response = await client.post(
        "/api/v1/memberships",
        headers=member_headers,
        json={"member_id": people["member"].id, "amount_pence": 500, "method": "cash"},
    )
    assert response.status_code == 403
    assert await Payment.count().run() == 0 and await Membership.count().run() == 0


async def test_a_member_checks_out_for_nothing_through_the_api(client, people):
    await make_tiers()
    headers = await bearer(people, "member")
    response = await client.post(
        "/api/v1/memberships/checkout", headers=headers, json={"amount_pence": 0, "interval": "one_off"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["checkout_url"] is None and response.json()["membership"]["status"] == "active"
    response = await client.post(
        "/api/v1/memberships/checkout", headers=headers, json={"amount_pence": 0, "interval": "month"}
    )
    assert response.status_code == 422 and response.json()["code"] == "free_not_allowed"


async def test_at_the_desk_a_volunteer_takes_cash_and_the_member_sees_the_receipt(as_role, people):
    free, _ = await make_tiers()
    async with as_role("volunteer") as volunteer:
        desk = await volunteer.get("/desk", params={"q": "Test member"})
        assert f"/desk/members/{people['member'].id}" in desk.text
        page = await volunteer.get(f"/desk/members/{people['member'].id}/membership")
        assert page.status_code == 200 and "Take a payment" in page.text
        bad = await post_form(
            volunteer,
            f"/desk/members/{people['member'].id}/payments",
            {"tier": str(free.id), "amount": "0.5", "method": "cash"},
        )
        assert bad.status_code == 422 and "The smallest amount" in bad.text
        response = await post_form(
            volunteer,
            f"/desk/members/{people['member'].id}/payments",
            {"tier": str(free.id), "amount": "7.50", "method": "card_reader"},
        )
        assert response.status_code == 303 and response.headers["location"].startswith("/desk/receipts/")
        receipt = await volunteer.get(response.headers["location"])
        assert "£7.50" in receipt.text and "Card reader" in receipt.text
    code = response.headers["location"].rsplit("/", 1)[1]
    async with as_role("member") as member:
        assert (await member.get(f"/account/receipts/{code}")).status_code == 200
        assert "£7.50" in (await member.get("/account")).text
    other = await joining.join(
        name="Other",
        email="other@example.org",
        password=PASSWORD,
        tier=free.id,
        amount=0,
        agreement_version=None,
        gateway=NO_GATEWAY,
        base_url="http://x",
    )
    assert other.account is not None


async def test_another_member_cannot_read_a_receipt(as_role, people, app):
    free, _ = await make_tiers()
    _, payment = await counter_payments.record_counter_payment(
        member_id=people["member"].id, tier=free.id, amount=500, method="cash", actor_id=None
    )
    from lending.members import services as members
    from tests.conftest import http_client, sign_in

    await members.create_account(name="Nosy", email="nosy@example.org", role="member", password=PASSWORD)
    async with http_client(app) as nosy:
        await sign_in(nosy, "nosy@example.org")
        assert (await nosy.get(f"/account/receipts/{payment.receipt_code}")).status_code == 404


async def test_coordinators_manage_tiers_the_agreement_and_payments(as_role, people):
    free, _ = await make_tiers()
    await counter_payments.record_counter_payment(
        member_id=people["member"].id, tier=free.id, amount=500, method="cash", actor_id=people["volunteer"].id
    )
    async with as_role("coordinator") as coordinator:
        bad = await post_form(
            coordinator,
            "/manage/memberships/tiers",
            {
                "name": "Family",
                "interval": "year",
                "min_pence": "10",
                "max_pence": "5",
                "loan_limit": "3",
                "loan_days": "14",
                "public": "yes",
                "active": "yes",
            },
        )
        assert bad.status_code == 422 and "at least the smallest" in bad.text
        made = await post_form(
            coordinator,
            "/manage/memberships/tiers",
            {
                "name": "Family",
                "interval": "year",
                "min_pence": "10",
                "max_pence": "60",
                "suggested": "20, 30",
                "loan_limit": "6",
                "loan_days": "14",
                "public": "yes",
                "active": "yes",
            },
        )
        assert made.status_code == 303
        page = await coordinator.get("/manage/memberships")
        assert "Family" in page.text
        published = await post_form(coordinator, "/manage/memberships/agreement", {"body": "Be kind.", "body_cy": ""})
        assert published.status_code == 303
        payments = await coordinator.get("/manage/payments")
        assert payments.status_code == 200 and "£5.00" in payments.text
        exported = await coordinator.get("/manage/payments/export.csv")
        assert exported.headers["content-type"].startswith("text/csv") and "Test member" in exported.text
    family = [t for t in await tiers.list_tiers() if t.name == "Family"][0]
    assert family.suggested == [2000, 3000] and family.loan_limit == 6
    assert (await agreements.current_agreement()).body == "Be kind."
    async with as_role("volunteer") as volunteer:
        assert (await volunteer.get("/manage/payments")).status_code == 403
        assert (await volunteer.get("/manage/payments/export.csv")).status_code == 403


async def test_the_webhook_refuses_a_bad_signature_and_keeps_an_unknown_event(database):
    from lending.app import create_app
    from tests.conftest import http_client

    app = create_app(make_settings(database, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET))
    event = {
        "id": "evt_test_1",
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": "cs_test_unknown",
                "object": "checkout.session",
                "payment_status": "paid",
                "mode": "payment",
                "customer": "cus_nobody",
                "metadata": {},
            }
        },
    }
    async with http_client(app) as client:
        body, headers = signed(event, "whsec_wrong")
        forged = await client.post("/webhooks/stripe", content=body, headers=headers)
        assert forged.status_code == 400 and forged.json()["code"] == "bad_signature"
        unsigned = await client.post("/webhooks/stripe", content=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 400
        body, headers = signed(event)
        tampered = await client.post(
            "/webhooks/stripe", content=body.replace(b"cus_nobody", b"cus_someone"), headers=headers
        )
        assert tampered.status_code == 400
        assert await StripeEvent.count().run() == 0
        accepted = await client.post("/webhooks/stripe", content=body, headers=headers)
        assert accepted.status_code == 200 and accepted.json()["outcome"] == "unmatched"
        again = await client.post("/webhooks/stripe", content=body, headers=headers)
        assert again.json()["outcome"] == "duplicate"
    assert await Membership.count().run() == 0


async def test_a_tampered_success_address_activates_nothing(as_role, people):
    async with as_role("member") as member:
        response = await member.get("/join/done", params={"session_id": "cs_test_made_up"})
        assert response.status_code == 404 and "could not find that payment" in response.text
        status = await member.get("/api/v1/memberships/checkouts/cs_test_made_up")
        assert status.status_code == 404
    assert await Membership.count().run() == 0


async def test_admin_edits_of_tiers_follow_the_tier_rules_and_money_is_read_only(client, people):
    from tests.conftest import sign_in

    free, _ = await make_tiers()
    _, payment = await counter_payments.record_counter_payment(
        member_id=people["member"].id, tier=free.id, amount=500, method="cash", actor_id=None
    )
    await sign_in(client, "coordinator@example.org")
    admin_csrf = (await client.get("/admin/api/tables/")).cookies.get("csrftoken") or client.cookies.get("csrftoken")
    headers = {"X-CSRFToken": admin_csrf or ""}
    bad = await client.patch(f"/admin/api/tables/membership_tier/{free.id}/", json={"max_pence": 50}, headers=headers)
    assert bad.status_code == 422, bad.text
    good = await client.patch(
        f"/admin/api/tables/membership_tier/{free.id}/", json={"max_pence": 9000}, headers=headers
    )
    assert good.status_code == 200, good.text
    assert (await tiers.get_tier(tier_id=free.id)).max_pence == 9000
    for path in (f"/admin/api/tables/payment/{payment.id}/", "/admin/api/tables/membership/1/"):
        changed = await client.patch(path, json={"amount_pence": 1}, headers=headers)
        assert changed.status_code == 405, (path, changed.text)
        assert (await client.delete(path, headers=headers)).status_code == 405
    assert (await records.get_payment(payment_id=payment.id)).amount_pence == 500
