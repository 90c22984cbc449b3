"""Lending through HTTP: the desk's pages (find by card, scan items, one panel with every
reason, lend, check in), the member's pages and calendar feed, the coordinator's rules, and
the JSON API with its stable error codes. Bad input gets a clear 4xx and writes nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from lending import clock
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.loans import checkout, loan_policy, records
from lending.loans.tables import Loan, Reservation
from lending.members import services as members
from lending.memberships import counter_payments, tiers
from lending.memberships.tables import Membership
from lending.memberships.tiers import TierInput
from lending.venues import services as venues
from tests.conftest import bearer, csrf_token, post_form


@pytest.fixture
async def kit(people):
    venues.forget_cache()
    tier = await tiers.save_tier(
        values=TierInput(name="Free", min_pence=0, max_pence=5000, allow_free=True, loan_limit=3)
    )
    await counter_payments.record_counter_payment(
        member_id=people["member"].id, tier=tier.id, amount=0, method="cash", actor_id=None
    )
    drill = await catalog.add_item(details=ItemDetails(name="Cordless drill", parts="Drill\nCharger"))
    tent = await catalog.add_item(details=ItemDetails(name="Tent"))
    saw = await catalog.add_item(details=ItemDetails(name="Jigsaw"))
    return {"tier": tier, "drill": drill, "tent": tent, "saw": saw}


async def test_the_desk_finds_a_member_by_card_lends_two_items_and_checks_one_in(as_role, people, kit):
    member = people["member"]
    async with as_role("volunteer") as desk:
        found = await desk.get("/desk", params={"q": member.card_code.lower()})
        assert found.status_code == 303 and found.headers["location"] == f"/desk/members/{member.id}"
        scanned = await desk.get("/desk", params={"q": f"http://testserver.local/c/{member.card_code}"})
        assert scanned.headers["location"] == f"/desk/members/{member.id}"
        page = await desk.get(
            f"/desk/members/{member.id}",
            params={"item": kit["drill"].code, "add": f"http://testserver.local/i/{kit['tent'].code}"},
        )
        assert page.status_code == 200 and 'data-outcome="success"' in page.text and "Tent, due back by" in page.text
        assert "Lend 2 items" in page.text and 'data-scanner-input="item-code"' in page.text
        lent = await post_form(
            desk, f"/desk/members/{member.id}/loans", {"item": [kit["drill"].code, kit["tent"].code]}
        )
        assert lent.status_code == 303, lent.text
        after = await desk.get(lent.headers["location"].split("#")[0])
        assert "Lent 2 items" in after.text and "On loan now" in after.text and after.text.count("Renew") >= 2
        returns = await desk.get("/desk/returns", params={"item": kit["drill"].code})
        assert "Missing: Charger" in returns.text and "Lent to Test member" in returns.text
        loan = await records.open_loan_for_item(code=kit["drill"].code)
        back = await post_form(
            desk,
            "/desk/returns",
            {"item_code": kit["drill"].code, "loan_id": str(loan.id), "notes": "Battery weak", "condition": "fair"},
        )
        assert back.status_code == 303
        shown = await desk.get(back.headers["location"])
        assert "Checked in Cordless drill from Test member." in shown.text
        twice = await post_form(desk, "/desk/returns", {"item_code": kit["drill"].code, "loan_id": str(loan.id)})
        assert "already checked in; nothing changed" in (await desk.get(twice.headers["location"])).text
    assert (await records.get_loan(loan_id=loan.id)).return_notes == "Battery weak"


async def test_the_desk_panel_gives_every_reason_and_a_distinct_outcome(as_role, people, kit):
    member = people["member"]
    await checkout.check_out(member_id=member.id, item_codes=[kit["saw"].code], actor_id=None)
    await catalog.set_status(code=kit["tent"].code, status="maintenance", reason="torn")
    async with as_role("volunteer") as desk:
        unknown = await desk.get(f"/desk/members/{member.id}", params={"add": "ZZZZ-ZZZZ"})
        assert 'data-outcome="unknown"' in unknown.text and "No item has the code ZZZZZZZZ" in unknown.text
        repair = await desk.get(f"/desk/members/{member.id}", params={"add": kit["tent"].code})
        assert 'data-outcome="unavailable"' in repair.text and "being repaired or checked" in repair.text
        assert "Lend 1 item" not in repair.text and "No, because:" in repair.text
        out = await desk.get(f"/desk/members/{member.id}", params={"add": kit["saw"].code})
        assert "already on loan" in out.text
        refused = await post_form(desk, f"/desk/members/{member.id}/loans", {"item": kit["tent"].code})
        assert refused.status_code == 409 and "cannot go out" in refused.text
        bad_date = await post_form(
            desk,
            f"/desk/members/{member.id}/loans",
            {"item": kit["drill"].code, "backdate": "yes", "lent_at": "yesterday-ish"},
        )
        assert bad_date.status_code == 422 and "Enter a date and time" in bad_date.text
    assert await Loan.count().run() == 1


async def test_an_expired_member_is_blocked_with_the_reason(as_role, people, kit):
    await (
        Membership.update({Membership.ends_at: clock.now() - timedelta(days=3)})
        .where(Membership.member == people["member"].id)
        .run()
    )
    async with as_role("volunteer") as desk:
        page = await desk.get(f"/desk/members/{people['member'].id}", params={"add": kit["drill"].code})
        assert 'data-outcome="blocked"' in page.text and "membership has ended" in page.text


async def test_a_member_cannot_use_the_desk_and_a_card_qr_leads_each_role_to_its_page(client, as_role, people, kit):
    async with as_role("member") as member:
        assert (await member.get("/desk")).status_code == 403
        assert (await member.get(f"/c/{people['member'].card_code}")).headers["location"] == "/account#card"
        account = await member.get("/account")
        assert "<svg" in account.text and "Your loans" in account.text
        card = await member.get("/account/card")
        assert card.status_code == 200 and "<svg" in card.text
    anonymous = await client.get(f"/c/{people['member'].card_code}")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    async with as_role("volunteer") as desk:
        unknown = await desk.get("/c/ZZZZZZZZ")
        assert unknown.status_code == 404


async def test_members_renew_hold_book_and_subscribe_to_their_due_dates(as_role, client, people, kit):
    member = people["member"]
    [loan] = await checkout.check_out(member_id=member.id, item_codes=[kit["drill"].code], actor_id=None)
    async with as_role("member") as me:
        renewed = await post_form(me, f"/account/loans/{loan.id}/renew", {})
        assert renewed.status_code == 303
        page = await me.get("/account/loans")
        assert "Renewed Cordless drill" in page.text and "Cordless drill" in page.text
        feed_url = re.search(r'value="http://testserver.local(/calendar/[^"]+\.ics)"', page.text).group(1)
        held = await post_form(me, "/account/holds", {"item_code": kit["tent"].code})
        assert held.status_code == 303
        assert "put aside for you" in (await me.get("/account/loans")).text
        tomorrow = venues.today(await venues.calendar()) + timedelta(days=5)
        booked = await post_form(
            me,
            "/account/reservations",
            {
                "item_code": kit["saw"].code,
                "starts_on": tomorrow.isoformat(),
                "ends_on": (tomorrow + timedelta(days=2)).isoformat(),
            },
        )
        assert booked.status_code == 303 and booked.headers["location"].endswith("#bookings")
        bad = await post_form(
            me, "/account/reservations", {"item_code": kit["saw"].code, "starts_on": "soon", "ends_on": "later"}
        )
        assert bad.headers["location"].startswith(f"/i/{kit['saw'].code}")
    feed = await client.get(feed_url)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    assert "Due back: Cordless drill" in feed.text and "Booked: Jigsaw" in feed.text
    assert (await client.get("/calendar/not-a-token.ics")).status_code == 404
    assert await Reservation.count().run() == 1


async def test_the_item_page_offers_holds_and_says_when_it_is_due_back(as_role, people, kit):
    [loan] = await checkout.check_out(member_id=people["member"].id, item_codes=[kit["tent"].code], actor_id=None)
    async with as_role("member") as me:
        page = await me.get(f"/i/{kit['tent'].code}")
        assert "Place a hold" in page.text and "due back" in page.text and "Book it" in page.text
    assert loan.due_at


async def test_the_coordinator_sets_rules_hours_and_closures_with_clear_errors(as_role, kit):
    async with as_role("coordinator") as manage:
        page = await manage.get("/manage/lending")
        assert page.status_code == 200 and "Opening hours" in page.text
        bad = await post_form(
            manage,
            "/manage/lending/policy",
            {
                "renewal_limit": "lots",
                "buffer_hours": "0",
                "hold_days": "3",
                "due_soon_days": "2",
                "reserve_ahead_days": "90",
                "max_reservation_days": "14",
            },
        )
        assert bad.status_code == 422 and "Enter a whole number from 0 to 20" in bad.text
        good = await post_form(
            manage,
            "/manage/lending/policy",
            {
                "renewal_limit": "1",
                "buffer_hours": "2",
                "hold_days": "3",
                "due_soon_days": "2",
                "reserve_ahead_days": "90",
                "max_reservation_days": "14",
                "fees_enabled": "yes",
                "fee_per_day": "0.20",
                "fee_cap": "5",
                "block_over": "0",
            },
        )
        assert good.status_code == 303
        policy = await loan_policy.policy()
        assert policy.renewal_limit == 1 and policy.fees_enabled and policy.fee_per_day_pence == 20
        hours = await post_form(
            manage,
            "/manage/lending/hours",
            {"timezone": "Europe/London", "day_1": "10:00-13:00, 14:00-17:00", "day_5": "10-16"},
        )
        assert hours.status_code == 303
        overlapping = await post_form(
            manage, "/manage/lending/hours", {"timezone": "Europe/London", "day_1": "10:00-13:00, 12:00-17:00"}
        )
        assert overlapping.status_code == 422
        assert len((await venues.calendar(fresh=True)).sessions) == 3  # the good hours stand
        closure = await post_form(
            manage, "/manage/lending/closures", {"starts_on": "2026-12-24", "ends_on": "2026-12-23", "reason": "Xmas"}
        )
        assert closure.status_code == 422
        assert await venues.list_closures() == []


# --- the JSON API -------------------------------------------------------------------------------


async def test_api_loans_follow_the_contract(client, people, kit):
    desk = await bearer(people["volunteer"].id)
    created = await client.post(
        "/api/v1/loans", json={"item_code": kit["drill"].code, "card_code": people["member"].card_code}, headers=desk
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["item_code"] == kit["drill"].code and body["due_at"] and body["id"]
    again = await client.post(
        "/api/v1/loans", json={"item_code": kit["drill"].code, "member_id": people["member"].id}, headers=desk
    )
    assert again.status_code == 409 and again.json()["code"] == "item_unavailable"
    item = await client.get(f"/api/v1/items/{kit['drill'].code}")
    assert item.json()["status"] == "on_loan" and item.json()["due_back"]
    mine = await client.get("/api/v1/loans", headers=await bearer(people["member"].id))
    assert [loan["id"] for loan in mine.json()["loans"]] == [body["id"]]
    renewed = await client.post(f"/api/v1/loans/{body['id']}/renew", headers=await bearer(people["member"].id))
    assert renewed.status_code == 200 and renewed.json()["renewals"] == 1
    await client.post(f"/api/v1/loans/{body['id']}/renew", headers=desk)
    limit = await client.post(f"/api/v1/loans/{body['id']}/renew", headers=desk)
    assert limit.status_code == 409 and limit.json()["code"] == "renewal_limit"
    returned = await client.post(
        f"/api/v1/loans/{body['id']}/return", json={"condition": "good", "notes": "ok"}, headers=desk
    )
    assert returned.status_code == 200 and returned.json()["changed"] and returned.json()["returned_at"]
    twice = await client.post(f"/api/v1/loans/{body['id']}/return", json={"condition": "damaged"}, headers=desk)
    assert twice.status_code == 200 and twice.json()["changed"] is False
    assert twice.json()["return_condition"] == "good"  # the second return changed nothing
    closed = await client.post(f"/api/v1/loans/{body['id']}/renew", headers=desk)
    assert closed.status_code == 409 and closed.json()["code"] == "loan_closed"


async def test_api_bad_input_gets_stable_codes_and_writes_nothing(client, people, kit):
    desk = await bearer(people["volunteer"].id)
    cases = [
        ({"item_code": "ZZZZZZZZ", "member_id": people["member"].id}, 404, "item_not_found"),
        ({"item_code": kit["tent"].code, "card_code": "ZZZZZZZZ"}, 404, "member_not_found"),
        ({"item_code": kit["tent"].code}, 422, "member_required"),
        (
            {"item_code": kit["tent"].code, "member_id": people["member"].id, "lent_at": "31/12/2026"},
            422,
            "invalid_date",
        ),
        ({"item_code": kit["tent"].code, "member_id": people["link_worker"].id}, 422, "borrower_blocked"),
        ({"item_code": 7, "member_id": people["member"].id}, 400, "invalid_input"),
        ({"item_code": kit["tent"].code, "member_id": people["member"].id, "extra": 1}, 400, "invalid_input"),
    ]
    for payload, status, code in cases:
        response = await client.post("/api/v1/loans", json=payload, headers=desk)
        assert (response.status_code, response.json()["code"]) == (status, code), (payload, response.text)
    blocked = await client.post("/api/v1/loans", json=cases[4][0], headers=desk)
    assert [r["code"] for r in blocked.json()["reasons"]] == ["no_membership", "over_limit"]
    member = await bearer(people["member"].id)
    forbidden = await client.post(
        "/api/v1/loans", json={"item_code": kit["tent"].code, "member_id": people["member"].id}, headers=member
    )
    assert forbidden.status_code == 403
    assert (await client.post("/api/v1/loans/999/return", json={}, headers=desk)).json()["code"] == "loan_not_found"
    assert await Loan.count().run() == 0


async def test_api_returns_by_scan_and_eligibility(client, people, kit):
    desk = await bearer(people["volunteer"].id)
    check = await client.get(
        f"/api/v1/members/{people['member'].id}/eligibility",
        params={"item_code": [kit["tent"].code, "ZZZZZZZZ"]},
        headers=desk,
    )
    assert check.status_code == 200 and check.json()["ok"] is False
    assert [i["ok"] for i in check.json()["items"]] == [True, False]
    await client.post(
        "/api/v1/loans", json={"item_code": kit["tent"].code, "member_id": people["member"].id}, headers=desk
    )
    back = await client.post(
        "/api/v1/returns",
        json={"item_code": f"http://x/i/{kit['tent'].code}", "needs_repair": True, "notes": "zip broken"},
        headers=desk,
    )
    assert back.status_code == 200 and back.json()["needs_repair"] is True
    assert (await catalog.get_item(code=kit["tent"].code)).status == "maintenance"
    never = await client.post("/api/v1/returns", json={"item_code": kit["saw"].code}, headers=desk)
    assert never.status_code == 409 and never.json()["code"] == "not_on_loan"


async def test_api_holds_and_reservations(client, people, kit):
    desk = await bearer(people["volunteer"].id)
    member = await bearer(people["member"].id)
    other = await members.create_account(name="Other", email="other@example.org", role="member")
    await counter_payments.record_counter_payment(
        member_id=other.id, tier=kit["tier"].id, amount=0, method="cash", actor_id=None
    )
    await client.post("/api/v1/loans", json={"item_code": kit["tent"].code, "member_id": other.id}, headers=desk)
    hold = await client.post("/api/v1/holds", json={"item_code": kit["tent"].code}, headers=member)
    assert hold.status_code == 201 and hold.json()["position"] == 1 and hold.json()["status"] == "waiting"
    twice = await client.post("/api/v1/holds", json={"item_code": kit["tent"].code}, headers=member)
    assert twice.status_code == 409 and twice.json()["code"] == "hold_exists"
    renew = await client.post(
        f"/api/v1/loans/{(await records.open_loan_for_item(code=kit['tent'].code)).id}/renew", headers=desk
    )
    assert renew.status_code == 409 and renew.json()["code"] == "someone_waiting"
    listed = await client.get("/api/v1/holds", headers=member)
    assert [h["id"] for h in listed.json()["holds"]] == [hold.json()["id"]]
    gone = await client.delete(f"/api/v1/holds/{hold.json()['id']}", headers=member)
    assert gone.status_code == 204
    today = venues.today(await venues.calendar())
    start = today + timedelta(days=7)
    booking = {
        "item_code": kit["saw"].code,
        "starts_on": start.isoformat(),
        "ends_on": (start + timedelta(days=2)).isoformat(),
    }
    made = await client.post("/api/v1/reservations", json=booking, headers=member)
    assert made.status_code == 201, made.text
    clash = await client.post("/api/v1/reservations", json={**booking, "member_id": other.id}, headers=desk)
    assert clash.status_code == 409 and clash.json()["code"] == "reservation_conflict"
    malformed = await client.post("/api/v1/reservations", json={**booking, "starts_on": "next week"}, headers=member)
    assert malformed.status_code == 422 and malformed.json()["code"] == "invalid_date"
    backwards = await client.post(
        "/api/v1/reservations", json={**booking, "ends_on": today.isoformat()}, headers=member
    )
    assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_dates"
    await venues.add_closure(starts_on=start + timedelta(days=20))
    closed = await client.post(
        "/api/v1/reservations",
        json={
            **booking,
            "starts_on": (start + timedelta(days=20)).isoformat(),
            "ends_on": (start + timedelta(days=21)).isoformat(),
        },
        headers=member,
    )
    assert closed.status_code == 422 and closed.json()["code"] == "closed_day"
    not_mine = await client.post(
        "/api/v1/holds", json={"item_code": kit["saw"].code, "member_id": other.id}, headers=member
    )
    assert not_mine.status_code == 403
    assert await Reservation.count().run() == 1


async def test_the_session_api_needs_the_csrf_token(as_role, people, kit):
    async with as_role("volunteer") as desk:
        bare = await desk.post("/api/v1/loans", json={"item_code": kit["tent"].code, "member_id": people["member"].id})
        assert bare.status_code == 403
        ok = await desk.post(
            "/api/v1/loans",
            json={"item_code": kit["tent"].code, "member_id": people["member"].id},
            headers={"X-CSRFToken": await csrf_token(desk)},
        )
        assert ok.status_code == 201


async def test_the_admin_shows_loans_but_changes_them_only_through_the_desk(client, people, kit):
    from tests.conftest import sign_in

    [loan] = await checkout.check_out(member_id=people["member"].id, item_codes=[kit["tent"].code], actor_id=None)
    await sign_in(client, "coordinator@example.org")
    admin_csrf = (await client.get("/admin/api/tables/")).cookies.get("csrftoken") or client.cookies.get("csrftoken")
    headers = {"X-CSRFToken": admin_csrf or ""}
    listed = await client.get("/admin/api/tables/loan/", headers=headers)
    assert listed.status_code == 200 and listed.json()["rows"][0]["id"] == loan.id
    changed = await client.patch(f"/admin/api/tables/loan/{loan.id}/", json={"returned_at": None}, headers=headers)
    assert changed.status_code == 405
    assert (await client.delete(f"/admin/api/tables/loan/{loan.id}/", headers=headers)).status_code == 405
    added = await client.post(
        "/admin/api/tables/loan/", json={"item": 1, "member": people["member"].id}, headers=headers
    )
    assert added.status_code == 405
    too_long = await client.patch("/admin/api/tables/category/1/", json={"loan_days": 999}, headers=headers)
    assert too_long.status_code in (404, 422)
    assert (await records.get_loan(loan_id=loan.id)).open


async def test_the_desk_lists_what_is_overdue_and_finds_members_by_phone(as_role, people, kit):
    [loan] = await checkout.check_out(member_id=people["member"].id, item_codes=[kit["tent"].code], actor_id=None)
    await Loan.update({Loan.due_at: clock.now() - timedelta(days=2)}).where(Loan.id == loan.id).run()
    phoned = await members.register_member(name="Phone Only", phone="029 2000 1234")
    async with as_role("volunteer") as desk:
        page = await desk.get("/desk")
        overdue = page.text.split("<h2>Overdue</h2>", 1)[1].split("<h2>", 1)[0]
        assert "Tent" in overdue and "Test member" in overdue
        found = await desk.get("/desk", params={"q": "2000 1234"})
        assert f"/desk/members/{phoned.id}" in found.text
