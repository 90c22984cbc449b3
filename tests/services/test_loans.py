"""Lending through the services, on SQLite and PostgreSQL: check-out with every reason,
check-in that changes nothing twice, renewals, holds that pass on, bookings, fees, backdating
and the audit trail."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from lending import clock, errors
from lending.audit.tables import AuditEvent
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.catalog.tables import Item
from lending.loans import (
    availability,
    calendar_feed,
    checkin,
    checkout,
    facts,
    fees,
    holds,
    loan_policy,
    records,
    reminders,
    renewals,
    reservations,
)
from lending.loans.tables import Fee, Hold, Loan
from lending.mail.tables import Email
from lending.members import services as members
from lending.memberships import counter_payments, tiers
from lending.memberships.tables import Membership
from lending.memberships.tiers import TierInput
from lending.venues import services as venues


async def member_with_membership(name: str, *, tier_id: int, email: str | None = None, language: str = "en"):
    member = await members.create_account(
        name=name, email=email or f"{name.lower()}@example.org", role="member", language=language
    )
    await counter_payments.record_counter_payment(
        member_id=member.id, tier=tier_id, amount=0, method="cash", actor_id=None
    )
    return member


@pytest.fixture
async def library(database):
    venues.forget_cache()
    tier = await tiers.save_tier(
        values=TierInput(name="Free", min_pence=0, max_pence=5000, allow_free=True, loan_limit=2, loan_days=7)
    )
    volunteer = await members.create_account(
        name="Val", email="val@example.org", role="volunteer", password="correct horse battery"
    )
    ann = await member_with_membership("Ann", tier_id=tier.id)
    bob = await member_with_membership("Bob", tier_id=tier.id, language="cy")
    drill = await catalog.add_item(details=ItemDetails(name="Cordless drill", parts="Drill\nCharger\nCase"))
    drill2 = await catalog.add_item(details=ItemDetails(name="Cordless drill"), copy_of=drill.code)
    tent = await catalog.add_item(details=ItemDetails(name="Tent", loan_days=3))
    ladder = await catalog.add_item(details=ItemDetails(name="Ladder"))
    return {
        "tier": tier,
        "volunteer": volunteer,
        "ann": ann,
        "bob": bob,
        "drill": drill,
        "drill2": drill2,
        "tent": tent,
        "ladder": ladder,
    }


async def lend(library, member, *items):
    return await checkout.check_out(
        member_id=member.id, item_codes=[i.code for i in items], actor_id=library["volunteer"].id
    )


async def test_a_check_out_lends_every_item_in_one_step_with_due_dates_and_a_receipt(library):
    lent = await lend(library, library["ann"], library["drill"], library["tent"])
    assert [loan.item_code for loan in lent] == sorted([library["drill"].code, library["tent"].code])
    by_code = {loan.item_code: loan for loan in lent}
    assert (by_code[library["tent"].code].due_at - clock.now()).days in (2, 3)  # the thing's own 3 days
    assert (by_code[library["drill"].code].due_at - clock.now()).days in (6, 7)  # the membership's 7
    assert (await catalog.get_item(code=library["drill"].code)).status == "on_loan"
    assert (await availability.get_item(code=library["drill"].code)).due_back == by_code[library["drill"].code].due_at
    receipt = await Email.select().where(Email.key.like("loan-receipt:%")).run()
    assert len(receipt) == 1 and "Cordless drill" in receipt[0]["body"] and "Tent" in receipt[0]["body"]
    events = await AuditEvent.select().where(AuditEvent.action == "loan.check_out").run()
    assert len(events) == 2 and all("via:desk" in e["detail"] and e["actor"] == library["volunteer"].id for e in events)


async def test_an_item_already_out_is_409_and_nothing_of_the_basket_is_lent(library):
    await lend(library, library["ann"], library["drill"])
    with pytest.raises(errors.Conflict) as caught:
        await lend(library, library["bob"], library["tent"], library["drill"])
    assert caught.value.code == "item_unavailable"
    assert [r["code"] for r in caught.value.reasons] == ["item_unavailable"]
    assert await Loan.count().where(Loan.member == library["bob"].id).run() == 0  # not the tent either
    assert (await catalog.get_item(code=library["tent"].code)).status == "available"


async def test_every_reason_a_member_cannot_borrow_is_given(library):
    expired = await members.create_account(name="Eve", email="eve@example.org", role="member")
    await counter_payments.record_counter_payment(
        member_id=expired.id, tier=library["tier"].id, amount=0, method="cash", actor_id=None
    )
    await (
        Membership.update({Membership.ends_at: clock.now() - timedelta(days=2)})
        .where(Membership.member == expired.id)
        .run()
    )
    assessment = await checkout.assess(
        member_id=expired.id, item_codes=[library["drill"].code, library["tent"].code, library["ladder"].code]
    )
    assert not assessment.ok
    assert [r.code for r in assessment.borrower_reasons] == ["membership_expired", "over_limit"]
    with pytest.raises(errors.RuleViolation) as caught:
        await lend(library, expired, library["drill"])
    assert caught.value.code == "borrower_blocked"
    nobody = await members.create_account(name="New", email="new@example.org", role="member")
    assert [r.code for r in (await checkout.assess(member_id=nobody.id, item_codes=[])).borrower_reasons] == [
        "no_membership",
        "over_limit",
    ]


async def test_overdue_items_and_the_limit_block_new_loans(library):
    [loan] = await lend(library, library["ann"], library["drill"])
    await Loan.update({Loan.due_at: clock.now() - timedelta(days=1)}).where(Loan.id == loan.id).run()
    codes = [
        r.code
        for r in (
            await checkout.assess(member_id=library["ann"].id, item_codes=[library["tent"].code])
        ).borrower_reasons
    ]
    assert codes == ["overdue_items"]
    await Loan.update({Loan.due_at: clock.now() + timedelta(days=1)}).where(Loan.id == loan.id).run()
    codes = [
        r.code
        for r in (
            await checkout.assess(
                member_id=library["ann"].id, item_codes=[library["tent"].code, library["ladder"].code]
            )
        ).borrower_reasons
    ]
    assert codes == ["over_limit"]


async def test_unknown_retired_and_maintenance_items_each_say_why(library):
    await catalog.set_status(code=library["ladder"].code, status="maintenance", reason="wobbly rung")
    await catalog.set_status(code=library["drill2"].code, status="retired", reason="burnt out")
    assessment = await checkout.assess(
        member_id=library["ann"].id, item_codes=["ZZZZZZZZ", library["ladder"].code, library["drill2"].code]
    )
    assert [line.reasons[0].code for line in assessment.lines] == [
        "item_not_found",
        "item_in_maintenance",
        "item_retired",
    ]
    with pytest.raises(errors.NotFound) as caught:
        await checkout.check_out(member_id=library["ann"].id, item_codes=["ZZZZZZZZ"], actor_id=None)
    assert caught.value.code == "item_not_found"


async def test_a_scanned_label_url_and_a_typed_code_with_look_alikes_both_work(library):
    code = library["tent"].code
    url = f"http://testserver.local/i/{code}"
    assert facts.code_from_scan(url) == code
    assert facts.code_from_scan(f"{code[:4].lower()}-{code[4:].lower()}") == code
    [loan] = await checkout.check_out(member_id=library["ann"].id, item_codes=[url], actor_id=None)
    assert loan.item_code == code


async def test_checking_in_twice_changes_nothing_and_needs_repair_goes_to_maintenance(library):
    [loan] = await lend(library, library["ann"], library["drill"])
    back = await checkin.check_in(
        item_code=library["drill"].code,
        condition="worn",
        notes="Chuck sticks",
        parts_missing=["Case"],
        actor_id=library["volunteer"].id,
    )
    assert back.changed and back.needs_repair and back.loan.parts_missing == ["Case"]
    item = await catalog.get_item(code=library["drill"].code)
    assert item.status == "maintenance" and item.condition == "worn" and item.status_reason == "Chuck sticks"
    again = await checkin.check_in(item_code=library["drill"].code, actor_id=library["volunteer"].id)
    assert not again.changed and again.loan.id == loan.id and again.loan.return_notes == "Chuck sticks"
    by_id = await checkin.check_in(loan_id=loan.id, actor_id=library["volunteer"].id)
    assert not by_id.changed and by_id.loan.returned_at == back.loan.returned_at
    assert await AuditEvent.count().where(AuditEvent.action == "loan.check_in").run() == 1
    with pytest.raises(errors.Conflict) as never_lent:
        await checkin.check_in(item_code=library["tent"].code, actor_id=None)
    assert never_lent.value.code == "not_on_loan"
    await lend(library, library["ann"], library["tent"])
    with pytest.raises(errors.InvalidInput):
        await checkin.check_in(item_code=library["tent"].code, parts_missing=["Wheels"], actor_id=None)
    assert (await records.open_loan_for_item(code=library["tent"].code)) is not None  # still out


async def test_a_forgotten_check_out_and_check_in_are_backdated_and_the_log_says_so(library):
    earlier = (clock.now() - timedelta(days=2)).replace(microsecond=0)
    [loan] = await checkout.check_out(
        member_id=library["ann"].id, item_codes=[library["drill"].code], actor_id=None, lent_at=earlier
    )
    assert loan.lent_at == earlier and loan.recorded_at > earlier
    assert (loan.due_at - earlier).days in (6, 7)
    with pytest.raises(errors.InvalidInput) as before_loan:
        await checkin.check_in(loan_id=loan.id, returned_at=earlier - timedelta(hours=1), actor_id=None)
    assert before_loan.value.code == "invalid_date"
    with pytest.raises(errors.InvalidInput):
        await checkout.check_out(
            member_id=library["ann"].id, item_codes=[library["tent"].code], actor_id=None, lent_at="last tuesday"
        )
    with pytest.raises(errors.InvalidInput):
        await checkout.check_out(
            member_id=library["ann"].id,
            item_codes=[library["tent"].code],
            actor_id=None,
            lent_at=clock.now() - timedelta(days=90),
        )
    back = await checkin.check_in(loan_id=loan.id, returned_at=earlier + timedelta(days=1), actor_id=None)
    assert back.loan.returned_at == earlier + timedelta(days=1)
    details = [e["detail"] for e in await AuditEvent.select().where(AuditEvent.action.like("loan.%")).run()]
    assert all("backdated to" in detail for detail in details), details
    assert await Loan.count().where(Loan.member == library["ann"].id).run() == 1  # the refused ones wrote nothing


async def test_renewals_stop_at_the_limit_and_when_someone_is_waiting(library):
    [loan] = await lend(library, library["ann"], library["tent"])
    first = await renewals.renew(loan_id=loan.id, actor_id=None, borrower_id=library["ann"].id, via="account")
    assert first.due_at > loan.due_at and first.renewals == 1
    await renewals.renew(loan_id=loan.id, actor_id=library["volunteer"].id)
    with pytest.raises(errors.Conflict) as limit:
        await renewals.renew(loan_id=loan.id, actor_id=None)
    assert limit.value.code == "renewal_limit"
    with pytest.raises(errors.NotFound):  # not Bob's to renew
        await renewals.renew(loan_id=loan.id, actor_id=None, borrower_id=library["bob"].id)
    [ladder] = await lend(library, library["ann"], library["ladder"])
    await holds.place_hold(member_id=library["bob"].id, item_code=library["ladder"].code)
    with pytest.raises(errors.Conflict) as waiting:
        await renewals.renew(loan_id=ladder.id, actor_id=None)
    assert waiting.value.code == "someone_waiting"


async def test_a_hold_queues_then_the_return_puts_the_copy_aside_and_tells_the_member(library):
    await lend(library, library["ann"], library["tent"])
    hold = await holds.place_hold(member_id=library["bob"].id, item_code=library["tent"].code)
    assert hold.status == "waiting" and hold.position == 1
    with pytest.raises(errors.Conflict) as twice:
        await holds.place_hold(member_id=library["bob"].id, item_code=library["tent"].code)
    assert twice.value.code == "hold_exists"
    back = await checkin.check_in(item_code=library["tent"].code, actor_id=None)
    assert back.hold_for == "Bob"
    ready = await records.get_hold(hold_id=hold.id)
    assert ready.status == "ready" and ready.item_code == library["tent"].code and ready.expires_at > clock.now()
    assert (await catalog.get_item(code=library["tent"].code)).status == "reserved"
    message = await Email.select().where(Email.key == f"hold-ready:{hold.id}").first().run()
    assert message and message["to_address"] == "bob@example.org" and "Tent" in message["subject"]
    blocked = await checkout.assess(member_id=library["ann"].id, item_codes=[library["tent"].code])
    assert blocked.lines[0].reasons[0].code == "held_for_other"
    [loan] = await lend(library, library["bob"], library["tent"])
    assert (await records.get_hold(hold_id=hold.id)).status == "collected" and loan.member_id == library["bob"].id


async def test_an_uncollected_hold_expires_and_passes_to_the_next_member(library):
    carol = await member_with_membership("Carol", tier_id=library["tier"].id)
    await lend(library, library["ann"], library["tent"])
    bobs = await holds.place_hold(member_id=library["bob"].id, item_code=library["tent"].code)
    carols = await holds.place_hold(member_id=carol.id, item_code=library["tent"].code)
    assert carols.position == 2
    await checkin.check_in(item_code=library["tent"].code, actor_id=None)
    await Hold.update({Hold.expires_at: clock.now() - timedelta(minutes=1)}).where(Hold.id == bobs.id).run()
    assert await holds.expire_holds() == 1
    assert (await records.get_hold(hold_id=bobs.id)).status == "expired"
    assert (await records.get_hold(hold_id=carols.id)).status == "ready"
    await holds.cancel_hold(hold_id=carols.id, actor_id=carol.id, member_id=carol.id)
    assert (await catalog.get_item(code=library["tent"].code)).status == "available"


async def test_a_hold_on_a_thing_with_a_copy_on_the_shelf_is_ready_at_once(library):
    await lend(library, library["ann"], library["drill"])
    hold = await holds.place_hold(member_id=library["bob"].id, item_code=library["drill"].code)
    assert hold.status == "ready" and hold.item_code == library["drill2"].code


async def test_copies_back_from_repair_go_to_the_queue_first(library):
    await catalog.set_status(code=library["ladder"].code, status="maintenance", reason="check")
    hold = await holds.place_hold(member_id=library["bob"].id, item_code=library["ladder"].code)
    assert hold.status == "waiting"
    await holds.set_item_status(code=library["ladder"].code, status="available")
    assert (await records.get_hold(hold_id=hold.id)).status == "ready"


async def test_bookings_check_overlaps_loans_buffers_and_closed_days(library):
    today = venues.today(await venues.calendar())
    start, end = today + timedelta(days=10), today + timedelta(days=12)
    booking = await reservations.reserve(
        member_id=library["ann"].id, item_code=library["tent"].code, starts_on=start, ends_on=end
    )
    assert booking.status == "booked"
    with pytest.raises(errors.Conflict) as overlap:
        await reservations.reserve(
            member_id=library["bob"].id,
            item_code=library["tent"].code,
            starts_on=end.isoformat(),
            ends_on=(end + timedelta(days=1)).isoformat(),
        )
    assert overlap.value.code == "reservation_conflict"
    # Another copy of the same thing is booked instead of refusing.
    drill = await reservations.reserve(
        member_id=library["ann"].id, item_code=library["drill"].code, starts_on=start, ends_on=end
    )
    other = await reservations.reserve(
        member_id=library["bob"].id, item_code=library["drill"].code, starts_on=start, ends_on=end
    )
    assert {drill.item_code, other.item_code} == {library["drill"].code, library["drill2"].code}
    with pytest.raises(errors.InvalidInput) as malformed:
        await reservations.reserve(
            member_id=library["bob"].id, item_code=library["ladder"].code, starts_on="31/12/2026", ends_on="2027-01-02"
        )
    assert malformed.value.code == "invalid_date"
    await venues.add_closure(starts_on=start + timedelta(days=20), reason="Stocktake")
    with pytest.raises(errors.RuleViolation) as closed:
        await reservations.reserve(
            member_id=library["bob"].id,
            item_code=library["ladder"].code,
            starts_on=start + timedelta(days=20),
            ends_on=start + timedelta(days=21),
        )
    assert closed.value.code == "closed_day"
    # Someone else's booking stops a loan that would run into it.
    bookings_start = today + timedelta(days=3)
    await reservations.reserve(
        member_id=library["ann"].id,
        item_code=library["ladder"].code,
        starts_on=bookings_start,
        ends_on=bookings_start + timedelta(days=1),
    )
    assessment = await checkout.assess(member_id=library["bob"].id, item_codes=[library["ladder"].code])
    assert [r.code for r in assessment.lines[0].reasons] == ["reserved_by_other"]


async def test_due_dates_land_on_open_days(library):
    await venues.set_hours(timezone_name="Europe/London", hours={5: "10:00-13:00"})  # Saturdays only
    [loan] = await lend(library, library["ann"], library["tent"])
    local = loan.due_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/London"))
    assert local.weekday() == 5 and (local.hour, local.minute) == (13, 0)
    with pytest.raises(errors.InvalidInput) as bad:
        await venues.set_hours(timezone_name="Mars/Olympus", hours={0: "25:00-26:00"})
    assert set(bad.value.errors) == {"timezone", "day_0"}
    assert (await venues.calendar(fresh=True)).sessions[0].weekday == 5  # nothing half-written


async def test_late_returns_cost_nothing_unless_the_venue_charges_and_fees_can_be_written_off(library):
    [loan] = await lend(library, library["ann"], library["tent"])
    await Loan.update({Loan.due_at: clock.now() - timedelta(days=3)}).where(Loan.id == loan.id).run()
    assert (await checkin.check_in(loan_id=loan.id, actor_id=None)).fee_pence == 0
    await loan_policy.save_policy(
        values={
            "renewal_limit": 2,
            "buffer_hours": 0,
            "hold_days": 3,
            "due_soon_days": 2,
            "reserve_ahead_days": 90,
            "max_reservation_days": 14,
            "fee_per_day_pence": 50,
            "fee_cap_pence": 100,
            "block_over_pence": 0,
            "fees_enabled": True,
        }
    )
    [again] = await lend(library, library["ann"], library["tent"])
    await Loan.update({Loan.due_at: clock.now() - timedelta(days=3)}).where(Loan.id == again.id).run()
    assert (await checkin.check_in(loan_id=again.id, actor_id=None)).fee_pence == 100  # capped
    [fee] = await fees.list_fees(member_id=library["ann"].id)
    await fees.settle_fee(fee_id=fee.id, settlement="written_off", note="first time", actor_id=None)
    assert await fees.list_fees(member_id=library["ann"].id) == []
    assert (await Fee.select().first().run())["settlement"] == "written_off"
    with pytest.raises(errors.InvalidInput):
        await loan_policy.save_policy(values={"renewal_limit": -1})


async def test_a_buffer_keeps_a_returned_copy_back_for_cleaning(library):
    await loan_policy.save_policy(
        values={
            "renewal_limit": 2,
            "buffer_hours": 24,
            "hold_days": 3,
            "due_soon_days": 2,
            "reserve_ahead_days": 90,
            "max_reservation_days": 14,
            "fee_per_day_pence": 0,
            "fee_cap_pence": 0,
            "block_over_pence": 0,
        }
    )
    await lend(library, library["ann"], library["tent"])
    await checkin.check_in(item_code=library["tent"].code, actor_id=None)
    assessment = await checkout.assess(member_id=library["bob"].id, item_codes=[library["tent"].code])
    assert [r.code for r in assessment.lines[0].reasons] == ["in_buffer"]


async def test_reminders_are_queued_once_per_loan_and_due_date_in_the_members_language(library):
    [soon] = await lend(library, library["bob"], library["tent"])
    [late] = await lend(library, library["ann"], library["drill"])
    await Loan.update({Loan.due_at: clock.now() + timedelta(hours=20)}).where(Loan.id == soon.id).run()
    await Loan.update({Loan.due_at: clock.now() - timedelta(days=1)}).where(Loan.id == late.id).run()
    dry = await reminders.queue_loan_reminders(dry_run=True)
    assert (dry.due_soon, dry.overdue) == (1, 1)
    counts = await reminders.queue_loan_reminders()
    assert (counts.due_soon, counts.overdue) == (1, 1)
    again = await reminders.queue_loan_reminders()
    assert (again.due_soon, again.overdue) == (0, 0)
    welsh = await Email.select().where(Email.key.like(f"loan-due-soon:{soon.id}:%")).first().run()
    assert welsh["to_address"] == "bob@example.org" and "Tent" in welsh["subject"]
    assert welsh["subject"] != "Due back soon: Tent"  # Bob reads Welsh


async def test_the_calendar_feed_lists_due_dates_and_a_new_address_stops_the_old(library):
    await lend(library, library["ann"], library["tent"])
    token = await calendar_feed.calendar_token(member_id=library["ann"].id)
    assert await calendar_feed.calendar_token(member_id=library["ann"].id) == token
    feed = await calendar_feed.calendar_feed(member_id=library["ann"].id, base_url="http://testserver.local")
    assert (
        feed.startswith("BEGIN:VCALENDAR\r\n") and "SUMMARY:Due back: Tent" in feed and feed.count("BEGIN:VEVENT") == 1
    )
    assert all(len(line.encode()) <= 75 for line in feed.split("\r\n"))
    fresh = await calendar_feed.calendar_token(member_id=library["ann"].id, renew=True)
    assert fresh != token and await calendar_feed.member_for_calendar(token=fresh) == library["ann"].id
    with pytest.raises(errors.NotFound):
        await calendar_feed.member_for_calendar(token=token)


async def test_the_loan_index_refuses_a_second_open_loan_even_past_the_service(library):
    [loan] = await lend(library, library["ann"], library["tent"])
    from lending import db

    with pytest.raises(Exception) as caught:
        await Loan.insert(
            Loan(
                item=(await Item.select(Item.id).where(Item.code == library["tent"].code).first().run())["id"],
                member=library["bob"].id,
                lent_at=clock.now(),
                due_at=clock.now(),
                recorded_at=clock.now(),
            )
        ).run()
    assert db.is_unique_violation(caught.value)
    assert loan.id


def test_days_between_bookings_round_the_buffer_up():
    from lending.loans import rules

    assert rules.buffer_days(rules.Policy(buffer_hours=0)) == 0
    assert rules.buffer_days(rules.Policy(buffer_hours=1)) == 1
    assert rules.buffer_days(rules.Policy(buffer_hours=48)) == 2
    assert (
        rules.late_fee(
            policy=rules.Policy(fees_enabled=True, fee_per_day_pence=20),
            due_on=date(2026, 1, 1),
            returned_on=date(2026, 1, 4),
        )
        == 60
    )


async def test_a_copy_lent_after_its_hold_lapsed_is_not_offered_to_the_queue_while_out(library):
    carol = await member_with_membership("Carol", tier_id=library["tier"].id)
    await lend(library, library["ann"], library["tent"])
    bobs = await holds.place_hold(member_id=library["bob"].id, item_code=library["tent"].code)
    await checkin.check_in(item_code=library["tent"].code, actor_id=None)
    await Hold.update({Hold.expires_at: clock.now() - timedelta(minutes=1)}).where(Hold.id == bobs.id).run()
    carols = await holds.place_hold(member_id=carol.id, item_code=library["drill"].code)  # another thing
    [loan] = await lend(library, library["ann"], library["tent"])  # the lapsed hold no longer holds it
    assert (await records.get_hold(hold_id=bobs.id)).status == "expired"
    assert await holds.expire_holds() == 0
    assert (await catalog.get_item(code=library["tent"].code)).status == "on_loan"
    assert loan.item_code == library["tent"].code and carols.status == "ready"


async def test_loans_of_one_copy_never_overlap_in_time_under_concurrent_desks(library):
    """Several desks lending and checking in the same copy at once: one loan at a time, and the
    recorded times agree (a loan never starts before the return it waited for)."""
    import asyncio

    people = [library["ann"], library["bob"]] + [
        await member_with_membership(f"M{n}", tier_id=library["tier"].id) for n in range(4)
    ]
    done = 0

    async def desk(member) -> None:
        nonlocal done
        for _ in range(15):
            try:
                [loan] = await checkout.check_out(member_id=member.id, item_codes=[library["tent"].code], actor_id=None)
            except errors.Conflict:
                await asyncio.sleep(0.001)
                continue
            await checkin.check_in(loan_id=loan.id, actor_id=None)
            done += 1

    await asyncio.gather(*(desk(member) for member in people))
    rows = await Loan.select(Loan.lent_at, Loan.returned_at).order_by(Loan.lent_at).run()
    assert done == len(rows) and done >= 1
    for earlier, later in zip(rows, rows[1:]):
        assert earlier["returned_at"] is not None and earlier["returned_at"] <= later["lent_at"]
