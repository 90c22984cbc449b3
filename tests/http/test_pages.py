"""The web shell: error pages, the language switch, flash messages, health, the admin."""

from __future__ import annotations

import pytest

from lending import db
from lending.audit.tables import AuditEvent
from lending.members.tables import Account, Organisation
from tests.conftest import post_form, sign_in


async def test_health_answers_while_the_database_does(client):
    response = await client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_health_is_503_when_the_database_does_not_answer(client, monkeypatch):
    class Unreachable:
        async def run_ddl(self, *args, **kwargs):
            raise OSError("connection refused")

    monkeypatch.setattr(db, "engine", Unreachable)
    response = await client.get("/health")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


async def test_not_found_is_an_accessible_page_for_people_and_json_for_machines(client):
    response = await client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in response.text and '<html lang="en">' in response.text
    response = await client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.json()["code"] == "not_found"


async def test_an_unexpected_error_is_a_500_page_without_details(client, people, monkeypatch):
    from lending.members import services

    async def explode(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "count_by_role", explode)
    await sign_in(client, "coordinator@example.org")
    response = await client.get("/manage")
    assert response.status_code == 500
    assert "Sorry, something went wrong on our side" in response.text
    assert "secret internals" not in response.text


@pytest.fixture
async def coordinator(people):
    return people["coordinator"]


async def test_welsh_switch_translates_pages_and_sticks_to_the_account(client, people):
    response = await client.get("/language/cy", params={"next": "/login"})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    page = await client.get("/login")
    assert '<html lang="cy">' in page.text
    assert "Mewngofnodi" in page.text
    await sign_in(client, "member@example.org")
    await client.get("/language/cy", params={"next": "/account"})
    row = await Account.select(Account.language).where(Account.email == "member@example.org").first().run()
    assert row["language"] == "cy"
    client.cookies.delete("lang")  # another browser, same account: the account's choice holds
    assert '<html lang="cy">' in (await client.get("/account")).text
    assert (await client.get("/language/fr")).status_code == 404
    off_site = await client.get("/language/en", params={"next": "https://evil.example/"})
    assert off_site.headers["location"] == "/"


async def test_browser_language_is_the_default(client):
    page = await client.get("/", headers={"Accept-Language": "cy-GB,cy;q=0.9,en;q=0.5"})
    assert '<html lang="cy">' in page.text
    page = await client.get("/", headers={"Accept-Language": "fr-FR"})
    assert '<html lang="en">' in page.text


async def test_flash_message_shows_once(client, people):
    response = await sign_in(client, "volunteer@example.org")
    assert response.status_code == 303
    first = await client.get("/desk")
    assert "You are signed in as Test volunteer" in first.text
    second = await client.get("/desk")
    assert "You are signed in as Test volunteer" not in second.text


async def test_volunteer_registers_a_member_at_the_counter(client, people):
    await sign_in(client, "volunteer@example.org")
    response = await post_form(
        client, "/desk/members/", {"name": "Rhys Evans", "email": "", "phone": "", "language": "cy"}
    )
    assert response.status_code == 422
    assert "Enter an email address or a phone number" in response.text
    assert 'value="Rhys Evans"' in response.text  # nothing typed is lost
    response = await post_form(
        client, "/desk/members/", {"name": "Rhys Evans", "phone": "029 2000 0000", "language": "cy"}
    )
    assert response.status_code == 303
    rhys = await Account.select(Account.id, Account.card_code).where(Account.name == "Rhys Evans").first().run()
    assert response.headers["location"] == f"/desk/members/{rhys['id']}"
    desk = await client.get(response.headers["location"])
    assert "Rhys Evans is registered" in desk.text and "<h1>Rhys Evans</h1>" in desk.text
    assert rhys["card_code"][:4] in desk.text


async def test_coordinator_adds_an_organisation_and_a_link_worker(client, people):
    await sign_in(client, "coordinator@example.org")
    response = await post_form(client, "/manage/organisations/", {"name": "Canton Community Team", "kind": "council"})
    assert response.status_code == 303
    organisation = await Organisation.select().where(Organisation.name == "Canton Community Team").first().run()
    response = await post_form(
        client,
        "/manage/people/",
        {
            "name": "Lin Worker",
            "email": "lin@example.org",
            "role": "link_worker",
            "password": "long enough pass",
            "organisation": str(organisation["id"]),
            "language": "en",
        },
    )
    assert response.status_code == 303, response.text
    page = await client.get("/manage/people")
    assert "Lin Worker" in page.text and "Canton Community Team" in page.text
    # Bad input: the form comes back with every problem and the values typed, and nothing is written.
    before = await Account.count().run()
    response = await post_form(
        client,
        "/manage/people/",
        {"name": "", "email": "member@example.org", "role": "link_worker", "password": "short"},
    )
    assert response.status_code == 422
    for text in (
        "Enter a name.",
        "Passwords must be at least 10 characters long.",
        "Link workers belong to a referring organisation",
    ):
        assert text in response.text
    assert await Account.count().run() == before
    assert await AuditEvent.count().where(AuditEvent.action == "account.create").run() >= 1


async def test_admin_is_for_coordinators_with_the_same_sign_in(client, people):
    response = await client.get("/admin/")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fadmin%2F"
    assert (await client.get("/admin/api/tables/")).status_code == 401
    await sign_in(client, "volunteer@example.org")
    assert (await client.get("/admin/")).status_code == 403
    assert (await client.get("/admin/api/tables/")).status_code == 403
    client.cookies.clear()
    response = await sign_in(client, "coordinator@example.org")
    response = await client.get("/admin/")
    assert response.status_code == 200 and "<html" in response.text.lower()
    tables = await client.get("/admin/api/tables/")
    assert tables.status_code == 200
    assert {"account", "organisation", "audit_event"} <= set(tables.json())


async def test_admin_edits_follow_the_account_rules(client, people):
    await sign_in(client, "coordinator@example.org")
    admin_csrf = (await client.get("/admin/api/tables/")).cookies.get("csrftoken") or client.cookies.get("csrftoken")
    headers = {"X-CSRFToken": admin_csrf or ""}
    member = people["member"]
    response = await client.patch(
        f"/admin/api/tables/account/{member.id}/", json={"role": "coordinator"}, headers=headers
    )
    assert response.status_code == 200, response.text
    row = await Account.select(Account.role, Account.admin).where(Account.id == member.id).first().run()
    assert row["role"] == "coordinator" and row["admin"]
    response = await client.patch(f"/admin/api/tables/account/{member.id}/", json={"role": "wizard"}, headers=headers)
    assert response.status_code == 422
    assert (await Account.select(Account.role).where(Account.id == member.id).first().run())["role"] == "coordinator"
    response = await client.delete("/admin/api/tables/audit_event/1/", headers=headers)
    assert response.status_code == 405


async def test_error_pages_are_in_the_readers_language_even_off_route(client):
    page = await client.get("/no-such-page", headers={"Accept-Language": "cy", "Accept": "text/html"})
    assert page.status_code == 404 and '<html lang="cy">' in page.text
    assert "Page not found" not in page.text
    client.cookies.set("lang", "cy")
    response = await client.delete("/api/v1/me")
    assert response.status_code == 405 and response.json()["detail"] != "Method Not Allowed"


async def test_admin_catalogue_edits_follow_the_catalogue_rules(client, people):
    from lending.catalog import services as catalog
    from lending.catalog.services import ItemDetails
    from lending.catalog.tables import Item as ItemTable
    from lending.catalog.tables import ItemGroup

    item = await catalog.add_item(details=ItemDetails(name="Ladder"))
    item_id = (await ItemTable.select(ItemTable.id).where(ItemTable.code == item.code).first().run())["id"]
    await sign_in(client, "coordinator@example.org")
    await client.get("/admin/api/tables/")
    headers = {"X-CSRFToken": client.cookies.get("csrftoken") or ""}
    tables = (await client.get("/admin/api/tables/")).json()
    assert {"item", "item_group", "category", "site"} <= set(tables)
    response = await client.patch(f"/admin/api/tables/item/{item_id}/", json={"status": "retired"}, headers=headers)
    assert response.status_code == 422 and "retired" in response.text
    response = await client.patch(
        f"/admin/api/tables/item/{item_id}/",
        json={"status": "retired", "status_reason": "Broken rung"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert (await catalog.get_item(code=item.code)).status == "retired"
    response = await client.patch(f"/admin/api/tables/item_group/{item.group_id}/", json={"name": ""}, headers=headers)
    assert response.status_code == 422
    response = await client.patch(
        f"/admin/api/tables/item_group/{item.group_id}/", json={"name": "Tall ladder"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert (await ItemGroup.select(ItemGroup.name).first().run())["name"] == "Tall ladder"
    assert (await client.delete(f"/admin/api/tables/item/{item_id}/", headers=headers)).status_code == 405
    assert (await client.post("/admin/api/tables/item/", json={"code": "X"}, headers=headers)).status_code == 405


async def test_admin_category_changes_keep_the_tree_and_the_search_right(client, people):
    from lending.catalog import services as catalog
    from lending.catalog.services import ItemDetails

    tools = await catalog.create_category(name="Tools")
    saws = await catalog.create_category(name="Saws", parent_id=tools.id)
    await catalog.add_item(details=ItemDetails(name="Jigsaw", category_id=saws.id))
    await sign_in(client, "coordinator@example.org")
    await client.get("/admin/api/tables/")
    headers = {"X-CSRFToken": client.cookies.get("csrftoken") or ""}
    cycle = await client.patch(f"/admin/api/tables/category/{tools.id}/", json={"parent": saws.id}, headers=headers)
    assert cycle.status_code == 422
    renamed = await client.patch(f"/admin/api/tables/category/{saws.id}/", json={"name": "Cutting"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    found, _ = await catalog.list_items(query="cutting")
    assert [item.name for item in found] == ["Jigsaw"]


async def test_accounts_are_not_added_in_the_admin(client, people):
    """piccolo_admin makes users through BaseUser.create_user, past every hook, so accounts are
    added on the People page, where the account rules and card codes apply."""
    await sign_in(client, "coordinator@example.org")
    await client.get("/admin/api/tables/")
    headers = {"X-CSRFToken": client.cookies.get("csrftoken") or ""}
    before = await Account.count().run()
    response = await client.post(
        "/admin/api/tables/account/",
        headers=headers,
        json={
            "name": "Admin Made",
            "email": "made@example.org",
            "role": "wizard",
            "password": "long enough pass",
            "username": "made",
        },
    )
    assert response.status_code == 405 and "People page" in response.text
    assert await Account.count().run() == before
