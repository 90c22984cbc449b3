"""Referrals through HTTP: the link worker's pages and voucher, redeeming online or at the
desk, and the permission matrix through pages and the API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lending import clock
from lending.members import organisations
from lending.members import services as members
from lending.memberships import records, tiers
from lending.memberships.tiers import TierInput
from lending.referrals import services as referrals
from lending.referrals.tables import Referral
from lending.venues import services as venues
from tests.conftest import PASSWORD, bearer, csrf_token, post_form, sign_in


@pytest.fixture
async def setup(people):
    venues.forget_cache()
    tier = await tiers.save_tier(
        values=TierInput(name="Concession", min_pence=0, max_pence=0, allow_free=True, public=False)
    )
    await referrals.save_settings(tier_id=tier.id, months_options="3,6,12", redeem_days="60", erase_after_days="365")
    other = await organisations.create_organisation(name="Hillside PCN", kind="primary_care_network")
    outsider = await members.create_account(
        name="Bryn", email="bryn@example.org", role="link_worker", password=PASSWORD, organisation=other.id
    )
    return {"tier": tier, "other": other, "outsider": outsider}


def form(**changes) -> dict:
    values = {
        "name": "Sam",
        "contact_route": "through_me",
        "language": "cy",
        "need_category": "connection",
        "months": "6",
        "redeem_by": (clock.now().date() + timedelta(days=30)).isoformat(),
        "consent_referral": "yes",
        "consent_share": "yes",
    }
    values.update(changes)
    return values


async def test_a_link_worker_issues_a_referral_and_prints_a_welsh_voucher(as_role, setup):
    async with as_role("link_worker") as lw:
        page = await lw.get("/referrals/")
        assert page.status_code == 200 and "Refer someone" in page.text
        bad = await post_form(lw, "/referrals/", form(months="5", consent_referral=""))
        assert bad.status_code == 422 and "must agree to be referred" in bad.text
        assert await Referral.count().run() == 0
        made = await post_form(lw, "/referrals/", form())
        assert made.status_code == 303
        code = made.headers["location"].rsplit("/", 1)[1]
        shown = await lw.get(made.headers["location"])
        assert "Sam" in shown.text and "Print the voucher" in shown.text
        voucher = await lw.get(f"/referrals/{code}/voucher")
        assert voucher.status_code == 200 and "<svg" in voucher.text and 'lang="cy"' in voucher.text
        english = await lw.get(f"/referrals/{code}/voucher", params={"lang": "en"})
        assert "A free membership of the library of things" in english.text
        listed = await lw.get("/referrals/")
        assert code[:4] in listed.text


async def test_the_referred_person_joins_with_the_code_once(client, people, setup):
    referral = await referrals.issue_referral(
        issuer=people["link_worker"],
        details=__import__("lending.referrals.rules", fromlist=["Details"]).Details(
            name="Sam",
            contact_route="through_me",
            months=3,
            redeem_by=clock.now().date() + timedelta(days=10),
            consent_referral=True,
        ),
    )
    target = await client.get(f"/r/{referral.code}")
    assert target.status_code == 303 and target.headers["location"] == f"/redeem?code={referral.code}"
    page = await client.get(target.headers["location"])
    assert referral.code in page.text and "Start my free membership" in page.text
    joined = await post_form(
        client,
        "/redeem",
        {
            "code": referral.code,
            "name": "Sam Jones",
            "email": "sam@example.org",
            "password": "a long enough password",
            "language": "en",
        },
    )
    assert joined.status_code == 303 and joined.headers["location"] == "/account"
    account = await client.get("/account")
    assert "Sam Jones" in account.text
    again = await post_form(client, "/redeem", {"code": referral.code})
    assert again.status_code == 409 and "already been used" in again.text


async def test_a_used_code_does_not_make_an_account(client, people, setup):
    from lending.referrals import rules

    referral = await referrals.issue_referral(
        issuer=people["link_worker"],
        details=rules.Details(
            name="Sam",
            contact_route="through_me",
            months=3,
            redeem_by=clock.now().date() + timedelta(days=10),
            consent_referral=True,
        ),
    )
    await referrals.redeem(code=referral.code, member_id=people["member"].id, address="x")
    before = await members.list_accounts()
    tried = await post_form(
        client,
        "/redeem",
        {
            "code": referral.code,
            "name": "Late",
            "email": "late@example.org",
            "password": "a long enough password",
            "language": "en",
        },
    )
    assert tried.status_code == 409
    assert len(await members.list_accounts()) == len(before)


async def test_a_volunteer_redeems_at_the_desk_and_sees_no_referral(as_role, people, setup):
    from lending.referrals import rules

    referral = await referrals.issue_referral(
        issuer=people["link_worker"],
        details=rules.Details(
            name="Sam",
            contact_route="through_me",
            months=3,
            redeem_by=clock.now().date() + timedelta(days=10),
            consent_referral=True,
            need_category="connection",
        ),
    )
    async with as_role("volunteer") as desk:
        done = await post_form(desk, f"/desk/members/{people['member'].id}/referral", {"code": referral.code})
        assert done.status_code == 303
        page = await desk.get(done.headers["location"])
        assert "The code is accepted" in page.text
        for secret in ("Riverside Surgery", "Meeting people", "Sam", "Test link_worker"):
            assert secret not in page.text  # who referred them, and why, stays with the referrer
        assert (await desk.get("/referrals/")).status_code == 403
        assert (await desk.get(f"/referrals/{referral.code}")).status_code == 403
    membership = await records.current_membership(member_id=people["member"].id)
    assert membership.status == "active" and membership.tier_name == "Concession"


async def test_the_permission_matrix_through_pages_and_the_api(client, app, people, setup):
    from lending.referrals import rules

    mine = await referrals.issue_referral(
        issuer=people["link_worker"],
        details=rules.Details(
            name="Sam",
            contact_route="through_me",
            months=3,
            redeem_by=clock.now().date() + timedelta(days=10),
            consent_referral=True,
        ),
    )
    theirs = await referrals.issue_referral(
        issuer=setup["outsider"],
        details=rules.Details(
            name="Other person",
            contact_route="through_me",
            months=3,
            redeem_by=clock.now().date() + timedelta(days=10),
            consent_referral=True,
        ),
    )
    api = await client.get("/api/v1/referrals", headers=await bearer(people["link_worker"].id))
    assert [r["code"] for r in api.json()["referrals"]] == [mine.code]
    assert (await client.get("/api/v1/referrals", headers=await bearer(people["volunteer"].id))).status_code == 403
    assert (await client.get("/api/v1/referrals", headers=await bearer(people["member"].id))).status_code == 403
    everyone = await client.get("/api/v1/referrals", headers=await bearer(people["coordinator"].id))
    assert {r["code"] for r in everyone.json()["referrals"]} == {mine.code, theirs.code}
    await sign_in(client, "link_worker@example.org")
    assert (await client.get(f"/referrals/{theirs.code}")).status_code == 404
    assert "Other person" not in (await client.get("/referrals/")).text
    assert (await client.get(f"/referrals/{theirs.code}/voucher")).status_code == 404


async def test_the_api_issues_and_redeems_with_stable_codes(client, people, setup):
    lw = await bearer(people["link_worker"].id)
    body = {
        "name": "Sam",
        "contact_route": "email",
        "contact": "sam@example.org",
        "months": 6,
        "redeem_by": (clock.now().date() + timedelta(days=20)).isoformat(),
        "consent_referral": True,
    }
    made = await client.post("/api/v1/referrals", json=body, headers=lw)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "issued" and made.json()["expires_at"] == body["redeem_by"]
    code = made.json()["code"]
    for bad, status, error in (
        ({**body, "months": 7}, 422, "invalid_referral"),
        ({**body, "redeem_by": "soon"}, 422, "invalid_referral"),
        ({**body, "diagnosis": "x"}, 400, "invalid_input"),
    ):
        response = await client.post("/api/v1/referrals", json=bad, headers=lw)
        assert (response.status_code, response.json()["code"]) == (status, error), response.text
    member = await bearer(people["member"].id)
    used = await client.post(f"/api/v1/referrals/{code}/redeem", json={}, headers=member)
    assert used.status_code == 200 and used.json()["status"] == "active"
    twice = await client.post(f"/api/v1/referrals/{code}/redeem", json={}, headers=member)
    assert twice.status_code == 409 and twice.json()["code"] == "referral_used"
    nobody = await client.post(
        f"/api/v1/referrals/{code}/redeem", json={"member_id": 999_999}, headers=await bearer(people["volunteer"].id)
    )
    assert nobody.status_code == 404 and nobody.json()["code"] == "member_not_found"
    staff = await client.post(
        f"/api/v1/referrals/{code}/redeem",
        json={"member_id": people["coordinator"].id},
        headers=await bearer(people["volunteer"].id),
    )
    assert staff.status_code == 422 and staff.json()["code"] == "not_a_member"
    unknown = await client.post("/api/v1/referrals/ZZZZZZZZZZ/redeem", json={}, headers=member)
    assert unknown.status_code == 404 and unknown.json()["code"] == "referral_not_found"
    not_for_others = await client.post(
        f"/api/v1/referrals/{code}/redeem", json={"member_id": people["volunteer"].id}, headers=member
    )
    assert not_for_others.status_code == 403
    assert (await client.post("/api/v1/referrals", json=body, headers=member)).status_code == 403


async def test_the_coordinator_sets_the_referral_bounds(as_role, setup):
    async with as_role("coordinator") as manage:
        page = await manage.get("/manage/organisations/")
        assert "Referral settings" in page.text
        bad = await post_form(
            manage,
            "/manage/organisations/settings",
            {"tier": str(setup["tier"].id), "months_options": "0, 99", "redeem_days": "60", "erase_after_days": "365"},
        )
        assert bad.status_code == 422
        good = await post_form(
            manage,
            "/manage/organisations/settings",
            {"tier": str(setup["tier"].id), "months_options": "6, 12", "redeem_days": "30", "erase_after_days": "180"},
        )
        assert good.status_code == 303
    assert (await referrals.settings()).months_options == (6, 12)


async def test_the_session_api_needs_csrf_for_redeeming(as_role, people, setup):
    async with as_role("member") as me:
        bare = await me.post("/api/v1/referrals/ZZZZZZZZZZ/redeem", json={})
        assert bare.status_code == 403
        token = await csrf_token(me)
        checked = await me.post("/api/v1/referrals/ZZZZZZZZZZ/redeem", json={}, headers={"X-CSRFToken": token})
        assert checked.status_code == 404


async def test_the_referral_page_says_how_it_went_and_offers_the_message(as_role, people, setup):
    from lending.referrals import rules

    referral = await referrals.issue_referral(
        issuer=people["link_worker"],
        details=rules.Details(
            name="Sam",
            contact_route="through_me",
            months=3,
            redeem_by=clock.now().date() + timedelta(days=10),
            consent_referral=True,
            consent_share=True,
        ),
    )
    await referrals.redeem(code=referral.code, member_id=people["member"].id, address="x")
    from lending.audit.tables import AuditEvent

    async with as_role("link_worker") as lw:
        page = await lw.get(f"/referrals/{referral.code}")
        assert "How it went" in page.text and "First visit to borrow" in page.text
        assert await AuditEvent.count().where(AuditEvent.action == "referral.view").run() == 1  # one view, one row
        message = await lw.get(f"/referrals/{referral.code}/outcome.txt")
        assert message.status_code == 200 and "They have not borrowed anything yet." in message.text
        assert "attachment" in message.headers["content-disposition"]
