"""Work, not time: how many SQL statements lending sends. A check-out loads every fact for the
whole basket in a few statements and writes in batches, so a further item costs (almost)
nothing; a check-in is one load and a handful of writes. These fail when a new rule fetches a
fact per item instead of adding it to the load step. Counted on both engines, in process,
after the configuration the venue keeps (policy, calendar, categories) has been read once."""

from __future__ import annotations

import pytest

from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.loans import checkin, checkout
from lending.members import services as members
from lending.memberships import counter_payments, tiers
from lending.memberships.tiers import TierInput
from tests.statements import counted

ONE_ITEM_CHECK_OUT = 12
EACH_FURTHER_ITEM = 2
CHECK_IN = 8


@pytest.fixture
async def shelf(database):
    tier = await tiers.save_tier(
        values=TierInput(name="Free", min_pence=0, max_pence=5000, allow_free=True, loan_limit=10)
    )
    member = await members.create_account(name="Ann", email="ann@example.org", role="member")
    await counter_payments.record_counter_payment(
        member_id=member.id, tier=tier.id, amount=0, method="cash", actor_id=None
    )
    tools = await catalog.create_category(name="Tools")
    items = [await catalog.add_item(details=ItemDetails(name=f"Drill {n}", category_id=tools.id)) for n in range(5)]
    warm = await checkout.check_out(member_id=member.id, item_codes=[items[4].code], actor_id=None)
    await checkin.check_in(loan_id=warm[0].id, actor_id=None)  # the kept configuration is read once
    return member, [item.code for item in items[:4]]


async def test_a_check_out_is_a_few_statements_whatever_the_basket(shelf):
    member, codes = shelf
    counts = {}
    for size in (1, 2, 4):
        with counted() as statements:
            lent = await checkout.check_out(member_id=member.id, item_codes=codes[:size], actor_id=None)
        counts[size] = len(statements)
        assert len(lent) == size
        for loan in lent:
            await checkin.check_in(loan_id=loan.id, actor_id=None)
    assert counts[1] <= ONE_ITEM_CHECK_OUT, counts
    assert counts[4] - counts[1] <= 3 * EACH_FURTHER_ITEM, counts


async def test_a_check_in_is_a_few_statements(shelf):
    member, codes = shelf
    [loan] = await checkout.check_out(member_id=member.id, item_codes=codes[:1], actor_id=None)
    with counted() as statements:
        back = await checkin.check_in(loan_id=loan.id, condition="good", actor_id=None)
    assert back.changed and len(statements) <= CHECK_IN, statements


async def test_the_count_sees_every_statement(shelf):
    """The counter is not blind: a check-out counts its loans' insert and the copies' update."""
    member, codes = shelf
    with counted() as statements:
        await checkout.check_out(member_id=member.id, item_codes=codes[:2], actor_id=None)
    assert any(s.startswith('INSERT INTO "loan"') for s in statements)
    assert any(s.startswith('UPDATE "item"') for s in statements)
