"""A person's data on request: the export holds everything about them; erasure removes who
they are, keeps the anonymous records, and waits until nothing is on loan."""

from __future__ import annotations

import json

import pytest

from lending import errors
from lending.audit.tables import AuditEvent
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.loans import checkin, checkout
from lending.loans.tables import Loan
from lending.members import services as members
from lending.members.tables import Account
from lending.memberships import counter_payments, tiers
from lending.memberships.tiers import TierInput
from lending.venues import services as venues
from lending.workflows import person_data


@pytest.fixture
async def borrower(database):
    venues.forget_cache()
    tier = await tiers.save_tier(values=TierInput(name="Free", min_pence=0, max_pence=100, allow_free=True))
    person = await members.create_account(
        name="Nia Jones", email="nia@example.org", role="member", phone="029 2000 0000"
    )
    await counter_payments.record_counter_payment(
        member_id=person.id, tier=tier.id, amount=0, method="cash", actor_id=None
    )
    item = await catalog.add_item(details=ItemDetails(name="Tent"))
    [loan] = await checkout.check_out(member_id=person.id, item_codes=[item.code], actor_id=None)
    return person, item, loan


async def test_the_export_holds_their_account_membership_and_loans(borrower):
    person, item, _ = borrower
    document = json.loads(await person_data.export_person(account_id=person.id, actor_id=None))
    assert document["account"]["email"] == "nia@example.org" and document["account"]["phone"] == "029 2000 0000"
    assert [loan["item_code"] for loan in document["loans"]] == [item.code]
    assert len(document["memberships"]) == 1 and document["referrals"] == []
    assert await AuditEvent.exists().where(AuditEvent.action == "person.export").run()


async def test_erasure_waits_for_returns_then_keeps_only_anonymous_records(borrower):
    person, item, loan = borrower
    with pytest.raises(errors.Conflict) as caught:
        await person_data.erase_person(account_id=person.id, actor_id=None)
    assert caught.value.code == "open_loans"
    await checkin.check_in(loan_id=loan.id, notes="Left a jumper inside", actor_id=None)
    await person_data.erase_person(account_id=person.id, actor_id=None)
    row = await Account.select().where(Account.id == person.id).first().run()
    assert row["email"] is None and row["phone"] is None and row["name"] == "Erased person"
    assert not row["active"] and row["card_code"] != person.card_code
    assert await Loan.count().where(Loan.member == person.id).run() == 1  # the anonymous loan stays
    assert (await Loan.select(Loan.return_notes).first().run())["return_notes"] == ""
    assert await members.find_members(query="Nia") == []
    with pytest.raises(errors.NotFound):
        await person_data.erase_person(account_id=999_999, actor_id=None)
