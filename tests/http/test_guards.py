"""Every role against every role's pages: the permission table the routers must follow."""

from __future__ import annotations

import pytest

from tests.conftest import sign_in

PAGES = [
    "/account",
    "/desk",
    "/desk/members/new",
    "/referrals",
    "/manage",
    "/manage/people",
    "/manage/organisations",
    "/admin/",
]
ALLOWED = {
    "member": {"/account"},
    "volunteer": {"/account", "/desk", "/desk/members/new"},
    "link_worker": {"/account", "/referrals"},
    "coordinator": set(PAGES),
}


@pytest.mark.parametrize("role", list(ALLOWED))
async def test_each_role_reaches_only_its_pages(client, people, role):
    await sign_in(client, f"{role}@example.org")
    for page in PAGES:
        response = await client.get(page)
        if page in ALLOWED[role]:
            assert response.status_code == 200, (role, page, response.status_code)
        else:
            assert response.status_code == 403, (role, page, response.status_code)
            assert "You cannot see this page" in response.text or "Only coordinators" in response.text


async def test_anonymous_visitors_are_sent_to_sign_in(client, people):
    for page in PAGES:
        response = await client.get(page)
        assert response.status_code == 303, page
        assert response.headers["location"].startswith("/login?next=")
    assert (await client.get("/")).status_code == 200
    assert (await client.get("/login")).status_code == 200


async def test_navigation_shows_only_reachable_pages(client, people):
    await sign_in(client, "volunteer@example.org")
    page = (await client.get("/desk")).text
    assert 'href="/desk"' in page and 'href="/manage"' not in page and 'href="/referrals"' not in page
