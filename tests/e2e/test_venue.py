"""The coordinator's venue pages in a real browser, on a phone-sized screen, with axe: the
settings, the messages and the setup file download."""

from __future__ import annotations

import json

from tests.e2e.test_pages import assert_accessible, sign_in


def test_the_venue_pages_work_on_a_phone_and_pass_axe(new_page):
    page = new_page(viewport={"width": 320, "height": 640})
    sign_in(page, "coordinator@demo.example", "demo-coordinator")
    page.goto("/manage/venue")
    assert page.locator("h1").inner_text() == "The venue"
    assert_accessible(page)
    page.get_by_label("Phone").fill("01970 123456")
    page.get_by_label("Colour of the page header").fill("#ffff00")
    page.get_by_role("button", name="Save the venue's details").click()
    assert "hard to read" in page.locator(".error-summary").inner_text()
    assert_accessible(page)
    page.get_by_label("Colour of the page header").fill("#5a2d82")
    page.get_by_role("button", name="Save the venue's details").click()
    assert "details are saved" in page.locator(".flash").inner_text()
    assert "01970 123456" in page.locator("footer").inner_text()
    header = page.locator(".site-header").evaluate("element => getComputedStyle(element).backgroundColor")
    assert header == "rgb(90, 45, 130)"
    assert page.evaluate("document.documentElement.scrollWidth") <= 320

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the setup file").click()
    setup = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert setup["venue"]["phone"] == "01970 123456" and "members" not in setup

    page.goto("/manage/emails")
    assert_accessible(page)
    page.get_by_role("link", name="Built-in words (Due back soon, Cymraeg)").click()
    assert_accessible(page)
    page.get_by_label("Subject").fill("Yn ôl yn fuan: {item}")
    page.get_by_label("Message").fill("Helo {name}, mae {item} yn ddyledus erbyn {due}.")
    page.get_by_role("button", name="Save these words").click()
    assert "words are saved" in page.locator(".flash").inner_text()

    page.goto("/manage/lending?site=1#hours")
    assert_accessible(page)
