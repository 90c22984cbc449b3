"""Memberships through the services, on every database engine: tiers, joining for free or
waiting for the counter, the agreement, counter payments and renewals, refunds of cash,
the income figures, the CSV and the expiry sweep. (Stripe's part is in test_stripe_flow.py.)"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from lending import clock, errors
from lending.members.tables import Account
from lending.memberships import agreements, counter_payments, expiry, joining, records, refunds, reports, tiers
from lending.memberships.amounts import GiftAid
from lending.memberships.gateway import StripeGateway
from lending.memberships.tables import AgreementAcceptance, GiftAidDeclaration, Membership, Payment
from lending.memberships.tiers import TierInput
from lending.spreadsheets import safe_cell
from tests.conftest import PASSWORD

OFFLINE = StripeGateway(secret_key="", webhook_secret="")
BASE = "http://testserver.local"


async def make_tiers() -> dict:
    sliding = await tiers.save_tier(
        values=TierInput(
            name="Pay what you can",
            description="Choose what you can afford; nobody asks why.",
            suggested=[0, 500, 1500],
            min_pence=100,
            max_pence=5000,
            allow_free=True,
            interval="one_off",
            gift_aid=True,
        )
    )
    monthly = await tiers.save_tier(
        values=TierInput(
            name="Monthly", suggested=[300, 500], min_pence=100, max_pence=2000, interval="month", position=1
        )
    )
    concession = await tiers.save_tier(
        values=TierInput(name="Concession", min_pence=0, max_pence=0, allow_free=True, public=False, position=2)
    )
    return {"sliding": sliding, "monthly": monthly, "concession": concession}


def join_details(**changes) -> dict:
    details = dict(
        name="Nia Jones",
        email="nia@example.org",
        password=PASSWORD,
        language="cy",
        tier="Pay what you can",
        amount="0",
        agreement_version=None,
        gateway=OFFLINE,
        base_url=BASE,
        pounds=True,
    )
    details.update(changes)
    return details


async def test_tiers_are_listed_in_order_and_counter_only_ones_are_not_public(database):
    made = await make_tiers()
    assert [t.name for t in await tiers.list_tiers(public_only=True)] == ["Pay what you can", "Monthly"]
    assert len(await tiers.list_tiers()) == 3
    assert made["sliding"].suggested == [0, 500, 1500]
    with pytest.raises(errors.Conflict) as raised:
        await tiers.save_tier(values=TierInput(name="Monthly", interval="year", min_pence=100))
    assert raised.value.code == "tier_name_taken"
    with pytest.raises(errors.InvalidInput) as raised:
        await tiers.save_tier(values=TierInput(name="Odd", suggested=[9000], max_pence=5000))
    assert "suggested" in raised.value.errors


async def test_joining_for_nothing_activates_at_once_and_records_the_agreement(database):
    await make_tiers()
    agreement = await agreements.publish_agreement(
        body="Bring things back clean.", body_cy="Dewch â phethau'n ôl yn lân."
    )
    outcome = await joining.join(**join_details(agreement_version=agreement.version))
    assert outcome.checkout_url is None and not outcome.pay_at_counter
    assert outcome.membership.status == "active" and outcome.membership.method == "free"
    assert outcome.membership.ends_at > clock.now() + timedelta(days=360)
    assert outcome.account.language == "cy" and outcome.session_token
    acceptance = (
        await AgreementAcceptance.select(
            AgreementAcceptance.agreement.version.as_alias("v"), AgreementAcceptance.accepted_at
        )
        .first()
        .run()
    )
    assert acceptance["v"] == 1 and acceptance["accepted_at"] is not None
    assert await Payment.count().run() == 0


async def test_joining_reports_every_problem_and_writes_nothing(database):
    await make_tiers()
    await agreements.publish_agreement(body="Rules")
    with pytest.raises(errors.InvalidInput) as raised:
        await joining.join(
            **join_details(name="", email="nope", password="short", amount="99999", agreement_version=None)
        )
    assert {"name", "email", "password", "agreement", "amount"} <= set(raised.value.errors)
    assert await Account.count().run() == 0
    assert await Membership.count().run() == 0


@pytest.mark.parametrize(
    "amount, code",
    [
        ("0.50", "amount_below_minimum"),
        ("50.01", "amount_above_maximum"),
        ("-3", "amount_negative"),
        ("3.333", "amount_fractional_pence"),
        ("lots", "amount_not_a_number"),
    ],
)
async def test_amounts_outside_the_scale_are_refused(database, amount, code):
    await make_tiers()
    with pytest.raises(errors.InvalidInput) as raised:
        await joining.join(**join_details(amount=amount))
    assert raised.value.code == code and "amount" in raised.value.errors
    assert await Account.count().run() == 0


async def test_the_agreement_must_be_the_version_shown(database):
    await make_tiers()
    await agreements.publish_agreement(body="Version one")
    await agreements.publish_agreement(body="Version two")
    with pytest.raises(errors.InvalidInput) as raised:
        await joining.join(**join_details(agreement_version=1))
    assert "agreement" in raised.value.errors
    outcome = await joining.join(**join_details(agreement_version=2))
    assert await agreements.accepted_version(account_id=outcome.account.id) == 2


async def test_without_online_payments_a_paid_choice_waits_for_the_counter(database):
    await make_tiers()
    outcome = await joining.join(**join_details(amount="5"))
    assert outcome.pay_at_counter and outcome.membership.status == "pending"
    assert outcome.membership.amount_pence == 500


async def test_an_existing_email_is_a_conflict_and_nothing_is_left(people):
    await make_tiers()
    with pytest.raises(errors.Conflict) as raised:
        await joining.join(**join_details(email="member@example.org"))
    assert raised.value.code == "email_taken"
    assert await Membership.count().run() == 0


async def test_a_counter_payment_activates_then_renews_from_the_end(people):
    made = await make_tiers()
    member, volunteer = people["member"], people["volunteer"]
    membership, payment = await counter_payments.record_counter_payment(
        member_id=member.id,
        tier=made["sliding"].id,
        amount="10",
        forward="2",
        pounds=True,
        method="cash",
        actor_id=volunteer.id,
        gift_aid=GiftAid(full_name="Test Member", house="4", postcode="cf5 1qj"),
    )
    assert membership.status == "active" and membership.method == "cash"
    assert payment.amount_pence == 1200 and payment.forward_pence == 200 and payment.gift_aid
    assert payment.recorded_by_name == "Test volunteer" and len(payment.receipt_code) == 10
    first_end = membership.ends_at
    renewed, second = await counter_payments.record_counter_payment(
        member_id=member.id, tier=made["sliding"].id, amount=300, method="card_reader", actor_id=volunteer.id
    )
    assert renewed.id == membership.id
    assert renewed.ends_at.year == first_end.year + 1
    assert await Membership.count().run() == 1
    assert (await GiftAidDeclaration.select().first().run())["postcode"] == "CF5 1QJ"
    assert [p.receipt_code for p in await records.member_payments(member_id=member.id)] == [
        second.receipt_code,
        payment.receipt_code,
    ]


async def test_counter_only_tiers_are_chosen_at_the_counter_but_not_online(people):
    made = await make_tiers()
    membership, payment = await counter_payments.record_counter_payment(
        member_id=people["member"].id,
        tier=made["concession"].id,
        amount=0,
        method="cash",
        actor_id=people["volunteer"].id,
    )
    assert membership.status == "active" and payment is None
    with pytest.raises(errors.InvalidInput) as raised:
        await joining.start_membership(
            member_id=people["member"].id, tier=made["concession"].id, amount=0, gateway=OFFLINE, base_url=BASE
        )
    assert raised.value.code == "tier_not_found"


async def test_a_free_membership_renews_only_in_its_last_weeks(people):
    made = await make_tiers()
    await joining.start_membership(
        member_id=people["member"].id, tier=made["sliding"].id, amount=0, gateway=OFFLINE, base_url=BASE
    )
    with pytest.raises(errors.Conflict) as raised:
        await joining.start_membership(
            member_id=people["member"].id, tier=made["sliding"].id, amount=0, gateway=OFFLINE, base_url=BASE
        )
    assert raised.value.code == "renewal_not_open"
    later = clock.now() + timedelta(days=350)
    renewed = await joining.start_membership(
        member_id=people["member"].id, tier=made["sliding"].id, amount=0, gateway=OFFLINE, base_url=BASE, now=later
    )
    assert renewed.membership.ends_at > later + timedelta(days=370)


@pytest.mark.parametrize(
    "changes, code",
    [
        ({"method": "cheque"}, "invalid_method"),
        ({"amount": 99}, "amount_below_minimum"),
        ({"amount": 5.5}, "amount_fractional_pence"),
        ({"tier": 9999}, "tier_not_found"),
    ],
)
async def test_bad_counter_payments_are_refused_and_nothing_is_written(people, changes, code):
    made = await make_tiers()
    details = dict(
        member_id=people["member"].id,
        tier=made["sliding"].id,
        amount=500,
        method="cash",
        actor_id=people["volunteer"].id,
    )
    details.update(changes)
    with pytest.raises(errors.DomainError) as raised:
        await counter_payments.record_counter_payment(**details)
    assert raised.value.code == code
    assert await Payment.count().run() == 0 and await Membership.count().run() == 0


async def test_a_cash_refund_is_bounded_and_can_end_the_membership(people):
    made = await make_tiers()
    membership, payment = await counter_payments.record_counter_payment(
        member_id=people["member"].id,
        tier=made["sliding"].id,
        amount=1000,
        method="cash",
        actor_id=people["volunteer"].id,
    )
    part = await refunds.refund_payment(
        payment_id=payment.id, amount=400, gateway=OFFLINE, actor_id=people["coordinator"].id, reason="Moved away"
    )
    assert part.refunded_pence == 400
    with pytest.raises(errors.InvalidInput) as raised:
        await refunds.refund_payment(payment_id=payment.id, amount=601, gateway=OFFLINE, actor_id=None)
    assert raised.value.code == "refund_too_large"
    rest = await refunds.refund_payment(payment_id=payment.id, gateway=OFFLINE, actor_id=None, end_membership=True)
    assert rest.refunded_pence == 1000
    assert (await records.get_membership(membership_id=membership.id)).status == "cancelled"


async def test_income_by_month_and_method_and_the_csv(people):
    made = await make_tiers()
    for amount, method in ((500, "cash"), (700, "cash"), (300, "card_reader")):
        _, payment = await counter_payments.record_counter_payment(
            member_id=people["member"].id,
            tier=made["sliding"].id,
            amount=amount,
            method=method,
            actor_id=people["volunteer"].id,
        )
    await refunds.refund_payment(payment_id=payment.id, amount=100, gateway=OFFLINE, actor_id=None)
    rows = {row.method: row for row in await reports.income_by_month()}
    assert rows["cash"].payments == 2 and rows["cash"].received_pence == 1200
    assert rows["card_reader"].net_pence == 200
    text = await reports.export_payments_csv()
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [r["amount"] for r in exported] == ["5.00", "7.00", "3.00"]
    assert exported[2]["refunded"] == "1.00" and exported[0]["recorded_by"] == "Test volunteer"


async def test_csv_cells_cannot_become_formulas(database):
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert safe_cell("Nia") == "Nia"


async def test_the_sweep_expires_lapsed_memberships(people):
    made = await make_tiers()
    membership, _ = await counter_payments.record_counter_payment(
        member_id=people["member"].id, tier=made["sliding"].id, amount=500, method="cash", actor_id=None
    )
    assert await expiry.expire_lapsed() == 0
    later = membership.ends_at + timedelta(seconds=1)
    assert (await records.current_membership(member_id=people["member"].id, now=later)).status == "expired"
    assert await expiry.expire_lapsed(now=later) == 1
    row = await Membership.select(Membership.status).first().run()
    assert row["status"] == "expired"
    # A new payment opens a fresh membership from that day.
    renewed, _ = await counter_payments.record_counter_payment(
        member_id=people["member"].id, tier=made["sliding"].id, amount=500, method="cash", actor_id=None, now=later
    )
    assert renewed.id != membership.id and renewed.status == "active"


async def test_the_agreement_can_be_accepted_at_the_counter(people):
    made = await make_tiers()
    await agreements.publish_agreement(body="One")
    await agreements.publish_agreement(body="Two")
    with pytest.raises(errors.InvalidInput) as raised:
        await counter_payments.record_counter_payment(
            member_id=people["member"].id,
            tier=made["sliding"].id,
            amount=500,
            method="cash",
            agreement_version=1,
            actor_id=None,
        )
    assert raised.value.code == "agreement_not_accepted"
    assert await Membership.count().run() == 0 and await AgreementAcceptance.count().run() == 0
    await counter_payments.record_counter_payment(
        member_id=people["member"].id,
        tier=made["sliding"].id,
        amount=500,
        method="cash",
        agreement_version=2,
        actor_id=people["volunteer"].id,
    )
    assert await agreements.accepted_version(account_id=people["member"].id) == 2


async def test_renewing_online_accepts_a_newer_agreement(people):
    made = await make_tiers()
    await agreements.publish_agreement(body="One")
    member = people["member"].id
    await joining.start_membership(
        member_id=member, tier=made["sliding"].id, amount=0, agreement_version=1, gateway=OFFLINE, base_url=BASE
    )
    await agreements.publish_agreement(body="Two")
    later = clock.now() + timedelta(days=350)
    with pytest.raises(errors.InvalidInput) as raised:
        await joining.start_membership(
            member_id=member, tier=made["sliding"].id, amount=0, gateway=OFFLINE, base_url=BASE, now=later
        )
    assert raised.value.code == "agreement_not_accepted"
    await joining.start_membership(
        member_id=member,
        tier=made["sliding"].id,
        amount=0,
        agreement_version=2,
        gateway=OFFLINE,
        base_url=BASE,
        now=later,
    )
    assert await agreements.accepted_version(account_id=member) == 2
