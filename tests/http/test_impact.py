"""The impact report through HTTP: the coordinator's and the link worker's pages, the CSV, and
the API; who may read it, small numbers suppressed, and dates checked."""

from __future__ import annotations

import csv
import io

import pytest

from lending.members import organisations
from tests.conftest import bearer
from tests.services.test_impact import issue, setup_world


@pytest.fixture
async def world(people):
    found = await setup_world()
    # The people fixture's link worker belongs to Riverside Surgery, as does world["lw_a"].
    assert people["link_worker"].organisation_id == found["a"].id
    return found


async def test_suppressed_counts_are_null_in_the_api_and_fewer_than_5_on_the_page(client, as_role, people, world):
    await issue(people["link_worker"], 6, redeem=4)
    api = await client.get("/api/v1/reports/impact", headers=await bearer(people["link_worker"].id))
    assert api.status_code == 200, api.text
    body = api.json()
    assert body["totals"] == {"issued": 6, "redeemed": None, "in_use": None, "take_up_percent": None}
    assert body["organisation"] == "Riverside Surgery" and body["suppressed_below"] == 5
    assert len(body["by_month"]) == 12 and body["referred_members"] is None
    async with as_role("link_worker") as lw:
        page = await lw.get("/referrals/impact")
        assert page.status_code == 200
        assert "fewer than 5" in page.text and "<caption" in page.text and 'scope="row"' in page.text
        assert 'role="img"' in page.text and "<title id=" in page.text and "style=" not in page.text
        assert "Sam Secret" not in page.text
    await issue(people["link_worker"], 1, redeem=1, name="Late")
    body = (await client.get("/api/v1/reports/impact", headers=await bearer(people["link_worker"].id))).json()
    assert (body["totals"]["issued"], body["totals"]["redeemed"], body["totals"]["in_use"]) == (7, 5, 5)


async def test_a_link_worker_never_sees_another_organisations_counts(client, as_role, people, world):
    await issue(people["link_worker"], 5)
    await issue(world["lw_b"], 9, redeem=7)
    body = (await client.get("/api/v1/reports/impact", headers=await bearer(people["link_worker"].id))).json()
    assert [row["organisation"] for row in body["by_organisation"]] == ["Riverside Surgery"]
    assert body["totals"]["issued"] == 5 and body["totals"]["redeemed"] == 0
    assert "Hillside PCN" not in str(body) and 9 not in [row["issued"] for row in body["by_month"]]
    async with as_role("link_worker") as lw:
        page = await lw.get("/referrals/impact")
        assert "Hillside PCN" not in page.text
        exported = await lw.get("/referrals/impact.csv")
        assert "Hillside PCN" not in exported.text
        assert (await lw.get("/manage/impact")).status_code == 403
    everyone = (await client.get("/api/v1/reports/impact", headers=await bearer(people["coordinator"].id))).json()
    assert {row["organisation"]: row["issued"] for row in everyone["by_organisation"]} == {
        "Hillside PCN": 9,
        "Riverside Surgery": 5,
    }
    async with as_role("coordinator") as coordinator:
        page = await coordinator.get("/manage/impact")
        assert page.status_code == 200 and "Hillside PCN" in page.text and "Riverside Surgery" in page.text
        assert 'href="/manage/impact"' in (await coordinator.get("/manage")).text


async def test_volunteers_and_members_are_refused(client, as_role, people, world):
    await issue(people["link_worker"], 5)
    for role in ("volunteer", "member"):
        assert (await client.get("/api/v1/reports/impact", headers=await bearer(people[role].id))).status_code == 403
        async with as_role(role) as other:
            for path in ("/referrals/impact", "/manage/impact", "/referrals/impact.csv", "/manage/impact.csv"):
                response = await other.get(path)
                assert response.status_code == 403, (role, path)
                assert "Riverside" not in response.text
    anonymous = await client.get("/api/v1/reports/impact")
    assert anonymous.status_code == 401
    assert (await client.get("/manage/impact")).status_code == 303  # to sign in


async def test_the_csv_downloads_without_names_and_without_formulas(as_role, people, world):
    await organisations.create_organisation(name='=HYPERLINK("http://x")', kind="other")
    made = await issue(people["link_worker"], 5, redeem=5)
    async with as_role("coordinator") as coordinator:
        page = await coordinator.get("/manage/impact")
        assert 'href="/manage/impact.csv?from=' in page.text
        exported = await coordinator.get("/manage/impact.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"].startswith("attachment; filename=")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["section", "group", "measure", "value"]
    assert ["summary", "", "redeemed", "5"] in rows
    assert ["organisation", "Riverside Surgery", "issued", "5"] in rows
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert ["organisation", '\'=HYPERLINK("http://x")', "issued", "0"] in rows
    for secret in ("Sam Secret", "Test link_worker", "@example.org", *(code for code, _ in made)):
        assert secret not in exported.text


async def test_bad_dates_are_refused_with_422(client, as_role, people, world):
    headers = await bearer(people["coordinator"].id)
    for query, code in (
        ({"from": "2026-13-01"}, "invalid_date"),
        ({"to": "yesterday"}, "invalid_date"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "invalid_range"),
    ):
        response = await client.get("/api/v1/reports/impact", params=query, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == code
    chosen = await client.get(
        "/api/v1/reports/impact", params={"from": "2026-01-01", "to": "2026-03-31"}, headers=headers
    )
    assert chosen.status_code == 200
    assert (chosen.json()["from"], chosen.json()["to"]) == ("2026-01-01", "2026-03-31")
    assert [row["month"] for row in chosen.json()["by_month"]] == ["2026-01", "2026-02", "2026-03"]
    async with as_role("coordinator") as coordinator:
        page = await coordinator.get("/manage/impact", params={"from": "31/01/2026"})
        assert page.status_code == 422 and "There is a problem" in page.text and 'aria-invalid="true"' in page.text
        assert (await coordinator.get("/manage/impact.csv", params={"to": "x"})).status_code == 422
