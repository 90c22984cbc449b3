"""The whole member journey in Welsh, in a real browser: switch to Cymraeg, join (the free,
pay-what-you-can way, with the Stripe stand-in configured so the note that Stripe's page is in
English shows), sign in again from another browser and get Welsh back from the account, browse
the catalogue, open an item and place a hold, then see the account and loans, with dates in
Welsh. A volunteer's desk and a link worker's referrals page load in Welsh too. Every page is
checked with axe, in Welsh.

Its own server and demo database (as in test_membership), because the volunteer and link worker
switching to Welsh saves that choice on their demo accounts. Expected Welsh comes from the
catalogue (``cy()``), so a reworded translation does not break this test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from lending import i18n
from tests.e2e.conftest import demo_server_with_stripe, pages_on
from tests.e2e.test_pages import assert_accessible, path_of
from tests.servers import Server

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
WELSH_MONTHS = (
    "Ionawr",
    "Chwefror",
    "Mawrth",
    "Ebrill",
    "Mai",
    "Mehefin",
    "Gorffennaf",
    "Awst",
    "Medi",
    "Hydref",
    "Tachwedd",
    "Rhagfyr",
)
WELSH_DATE = re.compile(r"\d{1,2} (" + "|".join(WELSH_MONTHS) + r") \d{4}")
WELSH_DAY = re.compile(r"Dydd (Llun|Mawrth|Mercher|Iau|Gwener|Sadwrn|Sul) \d{1,2} (" + "|".join(WELSH_MONTHS) + ")")
PASSWORD = "a long enough password"


def cy(message: str, **variables) -> str:
    """The Welsh the pages show for ``message``; fails if there is none."""
    with i18n.in_language("cy"):
        text = i18n.gettext(message, **variables)
    assert text != (message % variables if variables else message), f"{message!r} has no Welsh"
    return text


def assert_welsh(page: Page) -> None:
    """The page says it is Welsh, and axe finds nothing wrong with it."""
    expect(page.locator("html")).to_have_attribute("lang", "cy")
    expect(page.get_by_role("navigation", name=cy("Main"))).to_be_visible()
    assert_accessible(page)


@pytest.fixture(scope="module")
def welsh_server() -> Iterator[Server]:
    with demo_server_with_stripe("lending-e2e-cy-") as (server, _fake):
        yield server


@pytest.fixture
def open_page(browser, welsh_server: Server):
    with pages_on(browser, welsh_server, timeout_ms=15_000) as opened:
        yield opened


def sign_in_then_switch_to_welsh(page: Page, email: str, password: str) -> None:
    """Sign in on the Welsh sign-in page; the account's own language (English, for the demo's
    staff) comes back, and the switch, used while signed in, makes it Welsh on the account."""
    page.goto("/language/cy?next=/login")
    expect(page.locator("html")).to_have_attribute("lang", "cy")
    page.get_by_label(cy("Email address")).fill(email)
    page.get_by_label(cy("Password")).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name=cy("Sign in")).click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    with page.expect_navigation():
        page.get_by_role("navigation", name="Language").get_by_role("link", name="Cymraeg").click()
    expect(page.locator("html")).to_have_attribute("lang", "cy")


def test_a_member_joins_borrows_and_reads_their_account_in_welsh(open_page) -> None:
    email = f"ffion-{uuid.uuid4().hex[:8]}@example.org"
    page = open_page(**PHONE)

    # 1. The switch at the top of every page.
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("navigation", name="Language").get_by_role("link", name="Cymraeg").click()
    expect(page.get_by_role("heading", level=1, name=cy("Borrow the things you need"))).to_be_visible()
    assert_welsh(page)

    # 2. Joining, the free way: Stripe is set up, so the page warns that its payment page is English.
    page.get_by_role("link", name=cy("Join the library")).click()
    expect(page.get_by_role("heading", level=1, name=cy("Join the library"))).to_be_visible()
    assert_welsh(page)
    page.get_by_role("link", name="Pay what you can").click()
    assert_welsh(page)
    note = page.get_by_text(cy("Stripe's payment page is in English only; the library's pages are in Welsh."))
    expect(note).to_be_visible()
    page.get_by_label(cy("Nothing: a free membership")).check()
    page.get_by_label(cy("Name"), exact=True).fill("Ffion Evans")
    page.get_by_label(cy("Email address")).fill(email)
    page.get_by_label(cy("Password")).fill(PASSWORD)
    expect(page.get_by_label(cy("Language for messages"))).to_have_value("cy")  # the language being read
    page.get_by_label(cy("I accept the borrowing agreement (version %(version)d).", version=1)).check()
    with page.expect_navigation():
        page.get_by_role("button", name=cy("Join")).click()
    assert path_of(page) == "/account", page.url
    expect(page.get_by_role("heading", level=1, name=cy("Your account"))).to_be_visible()
    expect(page.get_by_text(cy("Active"), exact=True)).to_be_visible()
    expect(page.locator("dl.summary").last).to_contain_text(WELSH_DATE)  # runs until ... in Welsh
    assert_welsh(page)

    # 3. Another browser that reads English: signing in brings the account's Welsh back.
    other = open_page()
    other.goto("/login")
    expect(other.locator("html")).to_have_attribute("lang", "en")
    other.get_by_label("Email address").fill(email)
    other.get_by_label("Password").fill(PASSWORD)
    with other.expect_navigation():
        other.get_by_role("button", name="Sign in").click()
    expect(other.locator("html")).to_have_attribute("lang", "cy")
    expect(other.get_by_text(cy("You are signed in as %(name)s.", name="Ffion Evans"))).to_be_visible()
    expect(other.get_by_label(cy("Language for pages and emails"))).to_have_value("cy")
    assert_welsh(other)

    # 4. The catalogue, an item, a hold.
    other.get_by_role("navigation", name=cy("Main")).get_by_role("link", name=cy("Catalogue")).click()
    expect(other.get_by_role("heading", level=1, name=cy("Catalogue"))).to_be_visible()
    assert_welsh(other)
    other.get_by_label(cy("Only things available now")).check()
    with other.expect_navigation():
        other.get_by_role("button", name=cy("Search"), exact=True).click()
    assert_welsh(other)
    first = other.locator("ul.catalogue li a").first
    item_name = first.locator(".item-name").inner_text()
    first.click()
    expect(other.get_by_role("heading", level=1, name=item_name)).to_be_visible()
    assert_welsh(other)
    with other.expect_navigation():
        other.get_by_role("button", name=cy("Place a hold")).click()
    assert_welsh(other)

    # 5. Loans and holds: the copy put aside is to be collected by a Welsh day and date.
    other.goto("/account/loans")
    expect(other.get_by_role("heading", level=1, name=cy("Your loans"))).to_be_visible()
    held = other.locator("#holds ~ ul li").filter(has_text=item_name)
    expect(held).to_contain_text(WELSH_DAY)
    assert_welsh(other)

    # 6. The member's own account page: switching back to English there saves it.
    other.goto("/account")
    other.get_by_label(cy("Language for pages and emails")).select_option("en")
    with other.expect_navigation():
        other.get_by_role("button", name=cy("Save language")).click()
    expect(other.locator("html")).to_have_attribute("lang", "en")
    expect(other.get_by_role("heading", level=1, name="Your account")).to_be_visible()
    assert_accessible(other)


def test_a_volunteers_desk_and_a_link_workers_referrals_in_welsh(open_page) -> None:
    volunteer = open_page()
    sign_in_then_switch_to_welsh(volunteer, "volunteer@demo.example", "demo-volunteer")
    assert path_of(volunteer) == "/desk"
    expect(volunteer.get_by_role("heading", level=1, name=cy("Desk"))).to_be_visible()
    assert_welsh(volunteer)
    volunteer.get_by_label(cy("Lend: find the member")).fill("Dewi")
    volunteer.get_by_role("button", name=cy("Find"), exact=True).click()
    volunteer.get_by_role("link", name="Dewi Morgan").click()
    expect(volunteer.get_by_role("heading", level=1, name="Dewi Morgan")).to_be_visible()
    expect(volunteer.get_by_role("heading", level=2, name=cy("Their language"))).to_be_visible()
    assert_welsh(volunteer)

    worker = open_page()
    sign_in_then_switch_to_welsh(worker, "linkworker@demo.example", "demo-link-worker")
    assert path_of(worker) == "/referrals"
    expect(worker.get_by_role("heading", level=1, name=cy("Referrals"))).to_be_visible()
    assert_welsh(worker)
