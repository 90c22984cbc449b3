"""The catalogue in a real browser: browsing, an item page reached from its QR, and a
volunteer adding an item with a photo from a phone, each page checked with axe."""

from __future__ import annotations

import io
import json
import urllib.request

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.test_pages import assert_accessible, path_of, sign_in

pytestmark = pytest.mark.browser
PHONE = {"width": 360, "height": 740}


def demo_item_code(server, query: str) -> str:
    with urllib.request.urlopen(server.url(f"/api/v1/items?q={query}")) as response:
        return json.load(response)["items"][0]["code"]


def test_catalogue_search_and_item_page(page: Page, server) -> None:
    page.goto("/items")
    assert_accessible(page)
    page.get_by_label("Search for a thing").fill("drill")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Cordless drill").first.click()
    assert path_of(page).startswith("/i/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cordless drill")
    assert_accessible(page)


def test_item_page_fits_a_phone_and_takes_a_problem_report(new_page, server) -> None:
    code = demo_item_code(server, "tent")
    page = new_page(viewport=PHONE)
    page.goto(f"/i/{code}")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_label("What is wrong with it?").fill("A pole is bent")
    page.get_by_role("button", name="Send report").click()
    expect(page.get_by_text("Thank you. A volunteer will look at it.")).to_be_visible()
    assert_accessible(page)


def test_volunteer_adds_an_item_with_a_photo_on_a_phone(new_page, server, tmp_path) -> None:
    page = new_page(viewport=PHONE)
    sign_in(page, "volunteer@demo.example", "demo-volunteer")
    page.goto("/desk/items/new")
    assert_accessible(page)
    photo = tmp_path / "camera.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (30, 120, 90)).save(buffer, "JPEG")
    photo.write_bytes(buffer.getvalue())
    page.get_by_label("Name", exact=True).fill("Bread maker")
    page.get_by_label("Photo").set_input_files(str(photo))
    page.get_by_label("Parts and accessories").fill("Bread maker\nPaddle\nMeasuring cup")
    page.get_by_role("button", name="Add item").click()
    expect(page.get_by_text("Bread maker is added with the code")).to_be_visible()
    assert path_of(page).startswith("/desk/items/")
    assert_accessible(page)
    code = path_of(page).rsplit("/", 1)[1]
    page.goto(f"/i/{code}")
    expect(page.get_by_role("img", name="Photo of Bread maker")).to_be_visible()
    page.goto("/desk/labels/")
    assert_accessible(page)
    page.goto("/desk")
    assert_accessible(page)


def test_coordinator_catalogue_setup_page(page: Page) -> None:
    sign_in(page, "coordinator@demo.example", "demo-coordinator")
    page.goto("/manage/catalogue")
    expect(page.get_by_role("heading", name="Categories", exact=True)).to_be_visible()
    assert_accessible(page)


def test_member_suggests_a_thing_and_the_coordinator_sees_it(new_page) -> None:
    member = new_page()
    sign_in(member, "member2@demo.example", "demo-member2")
    member.goto("/suggestions")
    assert_accessible(member)
    member.locator("#field-title").fill("Tile cutter")
    member.get_by_role("button", name="Send suggestion").click()
    expect(member.get_by_text("Tile cutter").first).to_be_visible()
    assert_accessible(member)
    coordinator = new_page()
    sign_in(coordinator, "coordinator@demo.example", "demo-coordinator")
    coordinator.goto("/manage/suggestions")
    expect(coordinator.get_by_text("Tile cutter").first).to_be_visible()
    assert_accessible(coordinator)
