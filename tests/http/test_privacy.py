"""The coordinator's person page: download someone's data, erase them on confirmation."""

from __future__ import annotations

from lending.members.tables import Account
from tests.conftest import post_form


async def test_a_coordinator_downloads_and_then_erases_a_persons_data(as_role, people):
    member = people["member"]
    async with as_role("coordinator") as manage:
        page = await manage.get(f"/manage/people/{member.id}")
        assert page.status_code == 200 and "Download their data" in page.text
        export = await manage.get(f"/manage/people/{member.id}/export")
        assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
        assert export.json()["account"]["email"] == "member@example.org"
        unconfirmed = await post_form(manage, f"/manage/people/{member.id}/erase", {})
        assert unconfirmed.status_code == 303
        assert (await Account.select(Account.email).where(Account.id == member.id).first().run())["email"]
        erased = await post_form(manage, f"/manage/people/{member.id}/erase", {"confirm": "yes"})
        assert erased.status_code == 303
    assert (await Account.select(Account.email).where(Account.id == member.id).first().run())["email"] is None
    async with as_role("volunteer") as desk:
        assert (await desk.get(f"/manage/people/{people['volunteer'].id}/export")).status_code == 403
