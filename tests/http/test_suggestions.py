"""Suggestions through HTTP: members suggest and support at /suggestions, coordinators decide
at /manage/suggestions, the guards on both, and the suggestions API."""

from __future__ import annotations

import re

import pytest

from lending.audit.tables import AuditEvent
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.suggestions import services as suggestions
from lending.suggestions.tables import Suggestion, Support
from tests.conftest import post_form, sign_in
from tests.http.test_api import bearer


def ranked_titles(page: str) -> list[str]:
    """The titles of the open suggestions, in the order the page lists them."""
    section = page.split('id="open-title"', 1)[1].split("</ol>", 1)[0]
    return re.findall(r"<h3[^>]*>([^<]+)</h3>", section)


async def test_member_suggests_supports_and_withdraws(client, people):
    other = await suggestions.suggest(title="Sewing machine", member_id=people["volunteer"].id)
    await sign_in(client, "member@example.org")
    page = await client.get("/suggestions")
    assert page.status_code == 200
    for text in (
        "<h1>Suggestions</h1>",
        "Suggest a thing",
        'for="field-title"',
        'for="field-details"',
        "Sewing machine",
        "1 member supports this.",
        "Your suggestions",
    ):
        assert text in page.text, text
    assert 'name="_csrf_token"' in page.text

    response = await post_form(client, "/suggestions/", {"title": "Pressure washer", "details": "For patios"})
    assert response.status_code == 303 and response.headers["location"] == "/suggestions#yours"
    page = await client.get("/suggestions")
    assert "“Pressure washer” is suggested" in page.text
    assert ranked_titles(page.text) == ["Sewing machine", "Pressure washer"]  # equal support: oldest first

    response = await post_form(client, f"/suggestions/{other.id}/support", {})
    assert response.status_code == 303 and response.headers["location"] == f"/suggestions#suggestion-{other.id}"
    assert (await post_form(client, f"/suggestions/{other.id}/support", {})).status_code == 303
    assert await Support.count().where(Support.suggestion == other.id).run() == 2
    page = await client.get("/suggestions")
    assert "Your support is counted." in page.text and "2 members support this." in page.text
    assert f'action="/suggestions/{other.id}/withdraw"' in page.text

    response = await post_form(client, f"/suggestions/{other.id}/withdraw", {})
    assert response.status_code == 303
    assert await Support.count().where(Support.suggestion == other.id).run() == 1
    assert f'action="/suggestions/{other.id}/support"' in (await client.get("/suggestions")).text


async def test_forms_need_a_csrf_token_and_bad_input_comes_back(client, people):
    await sign_in(client, "member@example.org")
    assert (await client.post("/suggestions/", data={"title": "Tent"})).status_code == 403
    made = await suggestions.suggest(title="Tent", member_id=people["volunteer"].id)
    assert (await client.post(f"/suggestions/{made.id}/support")).status_code == 403
    assert await Suggestion.count().run() == 1 and await Support.count().run() == 1

    response = await post_form(client, "/suggestions/", {"title": "", "details": "Something big"})
    assert response.status_code == 422
    assert "Say what the library should get." in response.text and "Something big" in response.text
    assert 'aria-invalid="true"' in response.text and 'href="#field-title"' in response.text
    response = await post_form(client, "/suggestions/", {"title": "x" * 5000})
    assert response.status_code == 422
    assert await Suggestion.count().run() == 1
    assert (await post_form(client, "/suggestions/9999/support", {})).status_code == 404


async def test_coordinator_ranks_and_decides(client, people):
    member = people["member"]
    tent = await suggestions.suggest(title="Tent", member_id=member.id)
    washer = await suggestions.suggest(title="Pressure washer", member_id=member.id)
    for role in ("volunteer", "link_worker"):
        await suggestions.support(suggestion_id=washer.id, member_id=people[role].id)
    item = await catalog.add_item(details=ItemDetails(name="Pressure washer 2000"))

    await sign_in(client, "coordinator@example.org")
    page = await client.get("/manage/suggestions")
    assert page.status_code == 200
    assert ranked_titles(page.text) == ["Pressure washer", "Tent"]
    assert "3 supporters" in page.text and "suggested by Test member" in page.text
    assert f'for="field-acquire-item_code-{washer.id}"' in page.text
    assert f'for="field-decline-reason-{tent.id}"' in page.text

    # Bad decisions come back with the problem beside the right field, and change nothing.
    response = await post_form(client, f"/manage/suggestions/{washer.id}/acquire", {"item_code": "ZZZZZZZZ"})
    assert response.status_code == 422
    assert "There is no item with the code ZZZZZZZZ." in response.text
    assert f'href="#field-acquire-item_code-{washer.id}"' in response.text and 'value="ZZZZZZZZ"' in response.text
    response = await post_form(client, f"/manage/suggestions/{tent.id}/decline", {"reason": "  "})
    assert response.status_code == 422 and "the member will see it" in response.text
    assert await Suggestion.count().where(Suggestion.status == "open").run() == 2

    response = await post_form(client, f"/manage/suggestions/{washer.id}/acquire", {"item_code": item.code})
    assert response.status_code == 303 and response.headers["location"] == "/manage/suggestions"
    response = await post_form(
        client, f"/manage/suggestions/{tent.id}/decline", {"reason": "We have nowhere dry to store tents."}
    )
    assert response.status_code == 303
    page = await client.get("/manage/suggestions")
    assert "is declined; the member will see your reason." in page.text
    assert "No open suggestions." in page.text and f'href="/i/{item.code}"' in page.text

    # Deciding again is refused and says why.
    response = await post_form(client, f"/manage/suggestions/{tent.id}/decline", {"reason": "Again"})
    assert response.status_code == 303
    assert "already been decided" in (await client.get("/manage/suggestions")).text
    assert await AuditEvent.count().where(AuditEvent.action == "suggestion.declined").run() == 1
    assert (await post_form(client, "/manage/suggestions/9999/decline", {"reason": "x"})).status_code == 404

    # The member sees both outcomes.
    client.cookies.clear()
    await sign_in(client, "member@example.org")
    page = (await client.get("/suggestions")).text
    assert "We have nowhere dry to store tents." in page and "Declined" in page
    assert f'href="/i/{item.code}"' in page and "See Pressure washer 2000" in page
    # A decided suggestion takes no more support.
    response = await post_form(client, f"/suggestions/{tent.id}/support", {})
    assert response.status_code == 303
    assert "already been decided" in (await client.get("/suggestions")).text


async def test_guards(client, people):
    for page in ("/suggestions", "/manage/suggestions"):
        response = await client.get(page)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    response = await post_form(client, "/suggestions/", {"title": "Tent"})
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert await Suggestion.count().run() == 0
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    for role in ("member", "volunteer", "link_worker"):
        client.cookies.clear()
        await sign_in(client, f"{role}@example.org")
        assert (await client.get("/suggestions")).status_code == 200, role
        response = await client.get("/manage/suggestions")
        assert response.status_code == 403 and "You cannot see this page" in response.text, role
        response = await post_form(client, f"/manage/suggestions/{made.id}/decline", {"reason": "No"})
        assert response.status_code == 403, role
    assert (await suggestions.get_suggestion(suggestion_id=made.id)).status == "open"
    assert 'href="/manage/suggestions"' not in (await client.get("/suggestions")).text
    client.cookies.clear()
    await sign_in(client, "coordinator@example.org")
    assert 'href="/manage/suggestions"' in (await client.get("/suggestions")).text


async def test_api(client, people):
    member, coordinator = await bearer(people, "member"), await bearer(people, "coordinator")
    assert (await client.get("/api/v1/suggestions")).status_code == 401
    response = await client.post("/api/v1/suggestions", json={"title": "Tent", "details": "For four"}, headers=member)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "open" and body["supporters"] == 1 and body["supported_by_me"] and body["suggested_by_me"]
    suggestion_id = body["id"]
    response = await client.post("/api/v1/suggestions", json={"title": ""}, headers=member)
    assert response.status_code == 422 and response.json()["code"] == "invalid_suggestion"
    assert "title" in response.json()["errors"]

    volunteer = await bearer(people, "volunteer")
    for _ in range(2):
        response = await client.put(f"/api/v1/suggestions/{suggestion_id}/support", headers=volunteer)
        assert response.status_code == 200 and response.json()["supporters"] == 2
    listed = (await client.get("/api/v1/suggestions", headers=volunteer)).json()["suggestions"]
    assert [(s["title"], s["supported_by_me"], s["suggested_by_me"]) for s in listed] == [("Tent", True, False)]
    response = await client.delete(f"/api/v1/suggestions/{suggestion_id}/support", headers=volunteer)
    assert response.status_code == 200 and response.json()["supporters"] == 1

    decision = {"outcome": "declined", "reason": "No room"}
    response = await client.post(f"/api/v1/suggestions/{suggestion_id}/decision", json=decision, headers=member)
    assert response.status_code == 403
    response = await client.post(
        f"/api/v1/suggestions/{suggestion_id}/decision", json={"outcome": "declined"}, headers=coordinator
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_decision"
    response = await client.post(f"/api/v1/suggestions/{suggestion_id}/decision", json=decision, headers=coordinator)
    assert response.status_code == 200 and response.json()["status"] == "declined"
    response = await client.post(f"/api/v1/suggestions/{suggestion_id}/decision", json=decision, headers=coordinator)
    assert response.status_code == 409 and response.json()["code"] == "suggestion_decided"
    mine = (await client.get("/api/v1/suggestions/mine", headers=member)).json()["suggestions"]
    assert [(s["status"], s["decision_reason"]) for s in mine] == [("declined", "No room")]
    assert (await client.put("/api/v1/suggestions/9999/support", headers=member)).status_code == 404


@pytest.mark.parametrize("path", ["/suggestions", "/manage/suggestions"])
async def test_pages_have_one_main_heading_and_labelled_controls(client, people, path):
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    await sign_in(client, "coordinator@example.org")
    page = (await client.get(path)).text
    assert page.count("<h1>") == 1
    ids = re.findall(r'<(?:input|textarea|select)[^>]* id="([^"]+)"', page)
    assert ids and len(ids) == len(set(ids))
    for control_id in ids:
        assert f'for="{control_id}"' in page, control_id
    assert made.title in page
