"""Social prescribing in a real browser, on a phone: a link worker issues a referral and prints
its voucher; the referred person follows the voucher's QR, joins with the code and gets a free
membership; a volunteer lends them their first thing at the desk (without seeing who referred
them or why); and the link worker sees the referral in use. A code works once.

Each test issues its own referral (so runs and orders do not matter) and signs the people it
makes up with unique emails. The item lent is taken from the end of the catalogue by a name
no other browser test lends (tests/e2e/test_desk.py takes the ones it names).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_pages import assert_accessible, path_of, sign_in

pytestmark = pytest.mark.browser

LINK_WORKER = ("linkworker@demo.example", "demo-link-worker")
LINK_WORKER_ORGANISATION = "Riverside Surgery"
VOLUNTEER = ("volunteer@demo.example", "demo-volunteer")
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
NEED = "Learning a skill or hobby"  # the referral's need category, as the link worker's form names it
# Lent by no other browser test; the first one still on the shelf is lent.
ITEM_NAMES = ("PA speaker", "Urn (20 litre)", "Gazebo (3 x 3 m)", "Bike pump")
CODE_PATTERN = r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{2}"


# --- helpers ------------------------------------------------------------------------------------


def display_code(code: str) -> str:
    """As the pages show codes: groups of four joined by hyphens."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def unique() -> str:
    return uuid.uuid4().hex[:8]


def available_item(server) -> dict:
    """The last available copy of the first of ITEM_NAMES still on the shelf, from the public JSON API."""
    items, cursor = [], ""
    while True:
        query = urllib.parse.urlencode({"available": "1", **({"cursor": cursor} if cursor else {})})
        with urllib.request.urlopen(server.url(f"/api/v1/items?{query}"), timeout=10) as response:
            page = json.load(response)
        items += [item for item in page["items"] if item["status"] == "available"]
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    for name in ITEM_NAMES:
        found = [item for item in items if item["name"] == name]
        if found:
            return found[-1]
    pytest.fail(f"none of {ITEM_NAMES} is available in the demo catalogue; another test may have lent them")


def assert_no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate(
        "({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"], (
        f"{page.url} scrolls sideways: {widths['scroll']}px of content in a {widths['client']}px viewport"
    )


class Problems:
    """Axe and layout problems found along the flow, reported together at its end, so one page's
    problem does not hide the rest of the flow (or the other pages' problems)."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, page: Page, *, axe: bool = True) -> None:
        for step in (assert_accessible, assert_no_horizontal_scroll) if axe else (assert_no_horizontal_scroll,):
            try:
                step(page)
            except AssertionError as problem:
                self.found.append(str(problem))

    def assert_none(self) -> None:
        assert not self.found, f"{len(self.found)} problem(s) along the way:\n\n" + "\n\n".join(self.found)


def summary_value(page: Page, term: str):
    """The <dd> beside the <dt> called ``term`` in a page's dl.summary."""
    return (
        page.locator("dl.summary > div")
        .filter(has=page.locator("dt", has_text=re.compile(f"^{re.escape(term)}$")))
        .locator("dd")
    )


def issue_referral(page: Page, name: str, *, problems: Problems | None = None) -> str:
    """As the signed-in link worker, fill "Refer someone" on /referrals/; returns the code (canonical)."""
    page.goto("/referrals/")
    expect(page.get_by_role("heading", level=1, name="Referrals")).to_be_visible()
    if problems:
        problems.check(page)
    form = page.get_by_role("form", name="Refer someone")
    form.get_by_label("The name they want to be called").fill(name)
    form.get_by_label("Through me (the link worker)").check()
    form.get_by_label("Their language").select_option(label="Cymraeg")
    form.get_by_label("What the library might help with (optional)").select_option(label=NEED)
    form.get_by_label("Free membership, in months").select_option(label="3 months")
    expect(form.get_by_label("Code to be used by")).to_have_value(re.compile(r"^\d{4}-\d{2}-\d{2}$"))  # kept as given
    form.get_by_label("They agree to be referred to the library").check()
    form.get_by_label("They agree the library may tell you").check()
    with page.expect_navigation():
        form.get_by_role("button", name="Issue the referral").click()
    match = re.fullmatch(r"/referrals/([0-9A-Z]+)", path_of(page))
    assert match, f"issuing the referral led to {page.url}"
    return match.group(1)


def join_with_code(page: Page, *, name: str, email: str, password: str) -> None:
    """On /redeem (the code already filled in), sign up and start the free membership."""
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Choose a password").fill(password)
    page.get_by_label("Language for messages").select_option("en")
    with page.expect_navigation():
        page.get_by_role("button", name="Start my free membership").click()


# --- 1. from the referral to the first loan -----------------------------------------------------


def test_referral_to_first_loan_on_a_phone(new_page, server) -> None:
    suffix = unique()
    first_name = f"Nia {suffix}"
    full_name = f"Nia Referred {suffix}"
    email = f"nia-{suffix}@example.org"
    password = "a long enough password"
    item = available_item(server)
    problems = Problems()

    # 1. The link worker issues the referral and opens its voucher.
    worker = new_page(**PHONE)
    sign_in(worker, *LINK_WORKER)
    assert path_of(worker) == "/referrals"
    code = issue_referral(worker, first_name, problems=problems)
    expect(worker.get_by_role("heading", level=1)).to_have_text(f"Referral {display_code(code)}")
    flash = worker.locator(".flash").filter(has_text="Referral issued")
    expect(flash).to_contain_text(display_code(code))
    expect(flash).to_have_attribute("role", "status")
    expect(summary_value(worker, "Name")).to_have_text(first_name)
    expect(summary_value(worker, "State")).to_have_text("Issued, not yet used")
    expect(summary_value(worker, "Contact")).to_have_text("Through me (the link worker)")
    expect(summary_value(worker, "Language")).to_have_text("Cymraeg")
    expect(summary_value(worker, "Language")).to_have_attribute("lang", "cy")
    expect(summary_value(worker, "Free membership")).to_have_text("3 months")
    expect(summary_value(worker, "What the library might help with")).to_have_text(NEED)
    expect(summary_value(worker, "May the library tell you how it went?")).to_have_text("Yes")
    referral_path = path_of(worker)
    problems.check(worker)

    with worker.expect_navigation():
        worker.get_by_role("link", name="Print the voucher").click()
    assert path_of(worker) == f"{referral_path}/voucher"
    voucher = worker.locator("article.voucher")
    expect(voucher).to_have_attribute("lang", "cy")  # in the person's language
    expect(voucher.locator("strong.code")).to_have_text(display_code(code))
    qr = voucher.locator(".member-card-qr")
    expect(qr).to_have_attribute("role", "img")
    expect(qr.locator("svg")).to_be_visible()
    target = qr.locator("svg title").text_content()
    assert target == server.url(f"/r/{code}"), f"the voucher's QR leads to {target!r}"
    expect(voucher).to_contain_text(f"/r/{code}")  # the address, for those who type it
    problems.check(worker)

    # 2. The referred person follows the QR, in a browser of their own, and joins.
    person = new_page(**PHONE)
    response = person.goto(target)
    assert response is not None and response.status == 200
    assert path_of(person) == "/redeem"
    assert urllib.parse.parse_qs(urllib.parse.urlparse(person.url).query).get("code") == [code], person.url
    expect(person.get_by_role("heading", level=1, name="Use a referral code")).to_be_visible()
    expect(person.get_by_label("Your code")).to_have_value(code)
    problems.check(person)

    join_with_code(person, name=full_name, email=email, password=password)
    assert path_of(person) == "/account", f"joining with the code led to {person.url}"
    welcome = person.locator(".flash").filter(has_text="Welcome! Your free membership is active")
    expect(welcome).to_be_visible()
    expect(welcome).to_contain_text("show your card at the counter to borrow")
    expect(summary_value(person, "Name")).to_have_text(full_name)
    card = summary_value(person, "Card number")
    expect(card).to_have_text(re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4})+$"))
    card_code = card.inner_text().strip()
    expect(person.get_by_role("button", name="Sign out")).to_be_visible()
    problems.check(person)

    # 3. A volunteer lends them their first thing.
    desk = new_page(**PHONE)
    sign_in(desk, *VOLUNTEER)
    assert path_of(desk) == "/desk"
    search = desk.get_by_role("search")
    search.get_by_label("Lend: find the member").fill(card_code)
    with desk.expect_navigation():
        search.get_by_role("button", name="Find").click()
    assert re.fullmatch(r"/desk/members/\d+", path_of(desk)), f"the card number led to {desk.url}"
    member_path = path_of(desk)
    expect(desk.get_by_role("heading", level=1, name=full_name)).to_be_visible()
    expect(desk.locator("#verdict")).to_contain_text(f"Can {full_name} borrow this?")
    expect(desk.locator("#verdict")).to_contain_text("Yes")

    form = desk.locator("form#add-item")
    form.get_by_label("Scan or type an item's code").fill(display_code(item["code"]))
    with desk.expect_navigation():
        form.get_by_role("button", name="Add").click()
    outcome = desk.locator("#outcome[data-outcome]")
    expect(outcome).to_have_attribute("data-outcome", "success")
    expect(outcome).to_contain_text(f"Added: {item['name']}")
    expect(desk.locator("#verdict")).to_contain_text("Yes.")
    with desk.expect_navigation():
        desk.get_by_role("button", name="Lend 1 item").click()
    assert path_of(desk) == member_path
    expect(desk.locator(".flash").filter(has_text="Lent 1 item")).to_be_visible()
    loans = desk.locator("h2#loans + table")
    expect(loans.locator("tr", has_text=display_code(item["code"]))).to_contain_text(item["name"])
    # The desk learns only that the membership is active: not who referred them, nor why.
    main = desk.locator("main")
    expect(main).not_to_contain_text(LINK_WORKER_ORGANISATION)
    expect(main).not_to_contain_text(NEED)
    content = desk.content()
    assert LINK_WORKER_ORGANISATION not in content and NEED not in content, "the desk page gives the referral away"
    problems.check(desk)

    # The person sees the loan on their own account.
    person.goto("/account")
    expect(person.locator("main")).to_contain_text(item["name"])

    # 4. The link worker sees the referral in use.
    worker.goto(referral_path)
    expect(summary_value(worker, "State")).to_have_text("In use")
    expect(summary_value(worker, "Used on")).to_be_visible()
    expect(summary_value(worker, "Free until")).to_be_visible()
    expect(worker.get_by_role("link", name="Print the voucher")).to_have_count(0)
    worker.goto("/referrals/")
    row = worker.locator("tr", has=worker.get_by_role("link", name=display_code(code)))
    expect(row).to_contain_text("In use")
    problems.assert_none()


# --- 2. a code works once -----------------------------------------------------------------------


def test_a_used_code_cannot_be_used_again(new_page, server) -> None:
    suffix = unique()
    worker = new_page(**PHONE)
    sign_in(worker, *LINK_WORKER)
    code = issue_referral(worker, f"Twm {suffix}")

    first = new_page(**PHONE)
    first.goto(f"/r/{code}")
    join_with_code(
        first, name=f"Twm Referred {suffix}", email=f"twm-{suffix}@example.org", password="a long enough password"
    )
    assert path_of(first) == "/account", f"the first use of the code led to {first.url}"
    expect(first.locator(".flash").filter(has_text="Welcome! Your free membership is active")).to_be_visible()

    # A second person, not signed in, tries the same code (typed, in lower case with spaces).
    second_email = f"twm-again-{suffix}@example.org"
    second = new_page(**PHONE)
    second.goto("/redeem")
    second.get_by_label("Your code").fill(display_code(code).lower().replace("-", " "))
    join_with_code(second, name=f"Someone Else {suffix}", email=second_email, password="another long password")
    assert path_of(second) == "/redeem"
    summary = second.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_have_attribute("role", "alert")
    expect(summary).to_contain_text("This code has already been used")
    expect(second.get_by_label("Choose a password")).to_have_value("")
    expect(second.get_by_role("button", name="Sign out")).to_have_count(0)
    assert_accessible(second)
    # ...and no account was made for them.
    sign_in(second, second_email, "another long password")
    assert path_of(second) == "/login", "an account was made although the code was refused"
    expect(second.get_by_role("alert")).to_contain_text("not right")

    # A signed-in member (the one who used it) posts it again.
    first.goto(f"/redeem?code={code}")
    expect(first.get_by_text("The membership will be added to your account")).to_be_visible()
    with first.expect_navigation():
        first.get_by_role("button", name="Start my free membership").click()
    assert path_of(first) == "/redeem"
    expect(first.locator(".error-summary")).to_contain_text("This code has already been used")
    assert_accessible(first)
