"""Referrals through the services, on SQLite and PostgreSQL: issuing within the venue's
bounds, one redemption per code into a free membership, the states over time, who may read
what (each read logged), rate-limited guessing, and erasure that keeps the counts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lending import clock, codes, errors
from lending.audit.tables import AuditEvent
from lending.members import organisations
from lending.members import services as members
from lending.memberships import records, tiers
from lending.memberships.tiers import TierInput
from lending.referrals import rules
from lending.referrals import services as referrals
from lending.referrals.tables import Referral
from lending.venues import services as venues

PASSWORD = "correct horse battery"


@pytest.fixture
async def world(database):
    venues.forget_cache()
    tier = await tiers.save_tier(
        values=TierInput(name="Referral", min_pence=0, max_pence=0, allow_free=True, public=False, loan_limit=2)
    )
    await referrals.save_settings(tier_id=tier.id, months_options="3, 6, 12", redeem_days="60", erase_after_days="365")
    a = await organisations.create_organisation(name="Riverside Surgery", kind="gp_practice")
    b = await organisations.create_organisation(name="Hillside PCN", kind="primary_care_network")
    people = {
        "lw_a": await members.create_account(
            name="Lowri", email="lowri@example.org", role="link_worker", password=PASSWORD, organisation=a.id
        ),
        "lw_b": await members.create_account(
            name="Bryn", email="bryn@example.org", role="link_worker", password=PASSWORD, organisation=b.id
        ),
        "volunteer": await members.create_account(
            name="Val", email="val@example.org", role="volunteer", password=PASSWORD
        ),
        "coordinator": await members.create_account(
            name="Cari", email="cari@example.org", role="coordinator", password=PASSWORD
        ),
        "member": await members.create_account(name="Mo", email="mo@example.org", role="member"),
    }
    return {"tier": tier, "a": a, "b": b, **people}


def details(**changes) -> rules.Details:
    values = dict(
        name="Sam",
        contact_route="email",
        contact="sam@example.org",
        language="cy",
        access_needs="Large print, please",
        need_category="connection",
        months=6,
        redeem_by=clock.now().date() + timedelta(days=30),
        consent_referral=True,
        consent_share=True,
    )
    values.update(changes)
    return rules.Details(**values)


async def test_a_link_worker_issues_a_referral_with_an_unguessable_code(world):
    issued = await referrals.issue_referral(issuer=world["lw_a"], details=details())
    assert issued.status == "issued" and issued.organisation_id == world["a"].id
    assert len(issued.code) == rules.CODE_LENGTH and codes.normalise(issued.code) == issued.code
    assert 5 * rules.CODE_LENGTH >= 40  # Crockford base32: five bits a character
    others = {(await referrals.issue_referral(issuer=world["lw_a"], details=details())).code for _ in range(20)}
    assert issued.code not in others and len(others) == 20


async def test_bad_referral_details_are_each_named_and_nothing_is_written(world):
    with pytest.raises(errors.InvalidInput) as caught:
        await referrals.issue_referral(
            issuer=world["lw_a"],
            details=details(
                name="",
                contact_route="email",
                contact="nope",
                months=5,
                need_category="diabetes",
                redeem_by=clock.now().date() - timedelta(days=1),
                consent_referral=False,
                access_needs="x" * 400,
            ),
        )
    assert set(caught.value.errors) == {
        "name",
        "contact",
        "months",
        "need_category",
        "redeem_by",
        "consent_referral",
        "access_needs",
    }
    assert await Referral.count().run() == 0
    with pytest.raises(errors.NotAllowed):
        await referrals.issue_referral(issuer=world["volunteer"], details=details())


async def test_redeeming_gives_a_free_membership_once(world):
    issued = await referrals.issue_referral(issuer=world["lw_a"], details=details(months=3))
    membership = await referrals.redeem(code=issued.code.lower(), member_id=world["member"].id, address="1.2.3.4")
    assert membership.status == "active" and membership.tier_id == world["tier"].id and membership.amount_pence == 0
    assert 85 <= (membership.ends_at - clock.now()).days <= 93
    with pytest.raises(errors.Conflict) as twice:
        await referrals.redeem(code=issued.code, member_id=world["member"].id, address="1.2.3.4")
    assert twice.value.code == "referral_used"
    seen = await referrals.get_referral(viewer=world["lw_a"], code=issued.code)
    assert seen.status == "redeemed" and seen.member_id == world["member"].id


async def test_expired_withdrawn_and_unknown_codes_are_refused_clearly(world):
    old = await referrals.issue_referral(issuer=world["lw_a"], details=details())
    await (
        Referral.update({Referral.redeem_by: clock.now().date() - timedelta(days=1)})
        .where(Referral.code == old.code)
        .run()
    )
    with pytest.raises(errors.RuleViolation) as expired:
        await referrals.redeem(code=old.code, member_id=world["member"].id, address="5.6.7.8")
    assert expired.value.code == "referral_expired"
    gone = await referrals.issue_referral(issuer=world["lw_a"], details=details())
    await referrals.withdraw(viewer=world["lw_a"], code=gone.code)
    with pytest.raises(errors.RuleViolation) as withdrawn:
        await referrals.redeem(code=gone.code, member_id=world["member"].id, address="5.6.7.8")
    assert withdrawn.value.code == "referral_withdrawn"
    with pytest.raises(errors.NotFound) as unknown:
        await referrals.redeem(code="ZZZZZZZZZZ", member_id=world["member"].id, address="5.6.7.8")
    assert unknown.value.code == "referral_not_found"
    assert (await records.current_membership(member_id=world["member"].id)) is None


async def test_guessing_codes_is_paused_after_ten_wrong_tries(world):
    for n in range(rules.REDEEM_ATTEMPTS):
        with pytest.raises(errors.NotFound):
            await referrals.redeem(
                code=f"ZZZZZZZZZ{codes.ALPHABET[n]}", member_id=world["member"].id, address="9.9.9.9"
            )
    good = await referrals.issue_referral(issuer=world["lw_a"], details=details())
    with pytest.raises(errors.TooManyAttempts):
        await referrals.redeem(code=good.code, member_id=world["member"].id, address="9.9.9.9")
    assert (await referrals.redeem(code=good.code, member_id=world["member"].id, address="8.8.8.8")).status == "active"


async def test_each_organisation_sees_only_its_own_and_every_read_is_logged(world):
    mine = await referrals.issue_referral(issuer=world["lw_a"], details=details())
    theirs = await referrals.issue_referral(issuer=world["lw_b"], details=details(name="Other"))
    assert [r.code for r in await referrals.list_referrals(viewer=world["lw_a"])] == [mine.code]
    with pytest.raises(errors.NotFound):
        await referrals.get_referral(viewer=world["lw_a"], code=theirs.code)
    with pytest.raises(errors.NotFound):
        await referrals.withdraw(viewer=world["lw_a"], code=theirs.code)
    for outsider in ("volunteer", "member"):
        with pytest.raises(errors.NotAllowed):
            await referrals.list_referrals(viewer=world[outsider])
        with pytest.raises(errors.NotAllowed):
            await referrals.get_referral(viewer=world[outsider], code=mine.code)
    assert {r.code for r in await referrals.list_referrals(viewer=world["coordinator"])} == {mine.code, theirs.code}
    before = await AuditEvent.count().where(AuditEvent.action == "referral.view").run()
    await referrals.get_referral(viewer=world["coordinator"], code=theirs.code)
    views = await AuditEvent.select().where(AuditEvent.action == "referral.view").run()
    assert len(views) == before + 1 and views[-1]["actor"] == world["coordinator"].id


async def test_the_sweep_expires_completes_and_erases_but_keeps_the_counts(world):
    unused = await referrals.issue_referral(issuer=world["lw_a"], details=details())
    used = await referrals.issue_referral(issuer=world["lw_a"], details=details())
    await referrals.redeem(code=used.code, member_id=world["member"].id, address="1.1.1.1")
    await (
        Referral.update({Referral.redeem_by: clock.now().date() - timedelta(days=2)})
        .where(Referral.code == unused.code)
        .run()
    )
    await Referral.update({Referral.ends_at: clock.now() - timedelta(hours=1)}).where(Referral.code == used.code).run()
    assert await referrals.sweep() == (1, 1, 0)
    states = {r.code: r.status for r in await referrals.list_referrals(viewer=world["lw_a"])}
    assert states == {unused.code: "expired", used.code: "completed"}
    later = clock.now() + timedelta(days=400)
    assert (await referrals.sweep(now=later))[2] == 2
    rows = await Referral.select(
        Referral.name, Referral.contact, Referral.access_needs, Referral.status, Referral.need_category
    ).run()
    assert all(row["name"] == row["contact"] == row["access_needs"] == "" for row in rows)
    assert sorted(row["status"] for row in rows) == ["completed", "expired"]  # the counts stay


async def test_a_link_worker_extends_a_code_or_the_free_months(world):
    issued = await referrals.issue_referral(issuer=world["lw_a"], details=details(months=3))
    later = clock.now().date() + timedelta(days=50)
    assert (await referrals.extend(viewer=world["lw_a"], code=issued.code, redeem_by=later)).redeem_by == later
    first = await referrals.redeem(code=issued.code, member_id=world["member"].id, address="2.2.2.2")
    longer = await referrals.extend(viewer=world["lw_a"], code=issued.code, months=3)
    assert longer.months == 6 and longer.ends_at > first.ends_at
    with pytest.raises(errors.InvalidInput):
        await referrals.extend(viewer=world["lw_a"], code=issued.code, months=5)
    with pytest.raises(errors.NotFound):
        await referrals.extend(viewer=world["lw_b"], code=issued.code, months=3)


async def test_a_link_worker_whose_organisation_was_removed_cannot_issue(world):
    from lending.members.tables import Account, Organisation

    orphan = await organisations.create_organisation(name="Closed charity", kind="charity")
    worker = await members.create_account(
        name="Ola", email="ola@example.org", role="link_worker", password=PASSWORD, organisation=orphan.id
    )
    await Account.update({Account.organisation: None}).where(Account.id == worker.id).run()
    await Organisation.delete().where(Organisation.id == orphan.id).run()
    stale = worker  # the view still names the organisation, as a signed-in session would
    with pytest.raises(errors.Conflict) as caught:
        await referrals.issue_referral(issuer=stale, details=details())
    assert caught.value.code == "organisation_removed"
    assert await Referral.count().run() == 0


async def test_the_referrer_learns_how_it_went_only_with_consent(world):
    from lending.catalog import services as catalog
    from lending.catalog.services import ItemDetails
    from lending.loans import checkout

    tools = await catalog.create_category(name="Tools")
    drills = await catalog.create_category(name="Drills", parent_id=tools.id)
    drill = await catalog.add_item(details=ItemDetails(name="Drill", category_id=drills.id))
    sharing = await referrals.issue_referral(issuer=world["lw_a"], details=details(consent_share=True))
    private = await referrals.issue_referral(issuer=world["lw_a"], details=details(consent_share=False))
    quiet = await members.create_account(name="Quiet", email="quiet@example.org", role="member")
    await referrals.redeem(code=sharing.code, member_id=world["member"].id, address="1")
    await referrals.redeem(code=private.code, member_id=quiet.id, address="1")
    await checkout.check_out(member_id=world["member"].id, item_codes=[drill.code], actor_id=None)
    told = await referrals.outcome(viewer=world["lw_a"], code=sharing.code)
    assert told.shared and told.loans == 1 and told.kinds == (("Tools", 1),) and told.first_loan_at
    message = referrals.outcome_message(told)
    assert "1 loan so far." in message and "Tools (1)" in message
    kept = await referrals.outcome(viewer=world["lw_a"], code=private.code)
    assert kept.redeemed and not kept.shared and kept.loans == 0
    assert "did not agree to share" in referrals.outcome_message(kept)
    with pytest.raises(errors.NotFound):
        await referrals.outcome(viewer=world["lw_b"], code=sharing.code)
