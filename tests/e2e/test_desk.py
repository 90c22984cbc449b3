"""The volunteers' desk in a real browser: finding a member by card, lending two items and
checking one back in on a phone; what the desk says after an unknown or unavailable code; and
the camera scanner reading a real item label (and a member card) from Chromium's fake webcam.

Each test takes its own items, by name, from the end of the catalogue (the session's server is
shared with the other browser tests, which use the tent and the first copies), and lends only to
Alex Member (member@demo.example), whose membership allows three at a time.
"""

from __future__ import annotations

import io
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.camera import write_y4m
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, assert_no_csp_violations, watch_csp
from tests.e2e.test_pages import assert_accessible, path_of, sign_in

pytestmark = pytest.mark.browser

VOLUNTEER = ("volunteer@demo.example", "demo-volunteer")
MEMBER = ("member@demo.example", "demo-member")
MEMBER_NAME = "Alex Member"
PHONE = {"viewport": {"width": 320, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


# --- helpers ------------------------------------------------------------------------------------


def display_code(code: str) -> str:
    """As the pages show codes: groups of four joined by hyphens."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def _get_json(server, path: str) -> dict:
    with urllib.request.urlopen(server.url(path), timeout=10) as response:
        return json.load(response)


def available_item(server, name: str) -> dict:
    """The last available copy of the demo item called ``name``, from the public JSON API."""
    found, cursor = [], ""
    while True:
        query = urllib.parse.urlencode({"available": "1", **({"cursor": cursor} if cursor else {})})
        page = _get_json(server, f"/api/v1/items?{query}")
        found += [item for item in page["items"] if item["name"] == name and item["status"] == "available"]
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    assert found, f"no available {name!r} in the demo catalogue; another test may have lent it"
    return found[-1]


def member_card_code(new_page) -> str:
    """Alex's card number as Alex sees it on their account page (e.g. "ABCD-EFGH")."""
    member = new_page()
    sign_in(member, *MEMBER)
    assert path_of(member) == "/account"
    card = member.locator("dl.summary div").filter(has=member.locator("dt", has_text="Card number")).locator("dd")
    expect(card).to_have_text(re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4})+$"))
    return card.inner_text().strip()


def assert_no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate(
        "({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["client"], (
        f"{page.url} scrolls sideways: {widths['scroll']}px of content in a {widths['client']}px viewport"
    )


class Problems:
    """Layout and axe problems found along a flow, reported together at its end, so one page's
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


def open_member_by_card(page: Page, card_code: str) -> str:
    """From /desk, type the card number into the member search; returns the member page's path."""
    page.goto("/desk")
    search = page.get_by_role("search")
    search.get_by_label("Lend: find the member").fill(card_code)
    with page.expect_navigation():
        search.get_by_role("button", name="Find").click()
    assert re.fullmatch(r"/desk/members/\d+", path_of(page)), f"the card number led to {page.url}"
    expect(page.get_by_role("heading", level=1, name=MEMBER_NAME)).to_be_visible()
    return path_of(page)


def add_item(page: Page, code: str) -> None:
    """Type a code into the member page's item box and press Add (as a USB scanner would)."""
    form = page.locator("form#add-item")
    form.get_by_label("Scan or type an item's code").fill(code)
    with page.expect_navigation():
        form.get_by_role("button", name="Add").click()


def active_id(page: Page) -> str:
    """The id of the focused element, once the page has loaded (document.activeElement, not
    :focus: the window itself need not have focus in a headless run)."""
    page.wait_for_load_state("load")
    page.wait_for_timeout(200)  # let anything that runs after load have its say
    return page.evaluate("document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : ''")


def outcome(page: Page):
    return page.locator("#outcome[data-outcome]")


def basket(page: Page):
    return page.locator("#verdict table.basket")


def on_loan_now(page: Page):
    return page.locator("h2#loans + table")


def check_in_with_note(page: Page, item: dict, note: str) -> None:
    """From /desk, the check-in box finds the item's open loan; check it in with a note."""
    page.goto("/desk")
    box = page.locator("form[action='/desk/returns']")
    box.get_by_label("Check in: scan the item").fill(display_code(item["code"]))
    with page.expect_navigation():
        box.get_by_role("button", name="Check in").click()
    assert path_of(page) == "/desk/returns"
    loan = page.get_by_role("region", name=re.compile(re.escape(item["name"])))
    expect(loan).to_be_visible()
    expect(loan).to_contain_text(f"Lent to {MEMBER_NAME}")
    if item["parts"]:  # the parts checklist, one box per part, none ticked
        checklist = loan.get_by_role("group", name="Parts checklist: tick any that are missing")
        for part in item["parts"]:
            expect(checklist.get_by_label(f"Missing: {part}", exact=True)).not_to_be_checked()
    page.get_by_label("Notes (optional)").fill(note)
    with page.expect_navigation():
        loan.get_by_role("button", name="Check in").click()


# --- 1. the whole desk flow on a phone ----------------------------------------------------------


def test_lend_two_items_and_check_one_in_on_a_phone(new_page, server) -> None:
    first = available_item(server, "Wallpaper stripper")  # has a parts checklist on return
    second = available_item(server, "Wheelbarrow")
    card_code = member_card_code(new_page)
    problems = Problems()

    page = new_page(**PHONE)
    sign_in(page, *VOLUNTEER)
    assert path_of(page) == "/desk"
    expect(page.get_by_label("Lend: find the member")).to_be_visible()
    expect(page.get_by_label("Check in: scan the item")).to_be_visible()
    problems.check(page)

    member_path = open_member_by_card(page, card_code)
    expect(page.locator("#verdict")).to_contain_text(f"Can {MEMBER_NAME} borrow this?")
    problems.check(page, axe=False)

    add_item(page, first["code"])
    expect(outcome(page)).to_have_attribute("data-outcome", "success")
    expect(outcome(page)).to_contain_text(f"Added: {first['name']}")
    add_item(page, second["code"].lower())  # typed in lower case: still the same code
    expect(outcome(page)).to_have_attribute("data-outcome", "success")
    expect(outcome(page)).to_contain_text(f"Added: {second['name']}")
    expect(outcome(page)).to_have_attribute("role", "status")

    table = basket(page)
    expect(table.locator("caption")).to_have_text("2 items to lend")
    expect(table.locator("tbody tr")).to_have_count(2)
    for item in (first, second):
        expect(table).to_contain_text(item["name"])
        expect(table).to_contain_text(display_code(item["code"]))
    expect(page.locator("#verdict")).to_contain_text("Yes.")
    problems.check(page)

    with page.expect_navigation():
        page.get_by_role("button", name="Lend 2 items").click()
    assert path_of(page) == member_path
    flash = page.locator(".flash").filter(has_text="Lent 2 items")
    expect(flash).to_be_visible()
    expect(flash).to_have_attribute("role", "status")
    loans = on_loan_now(page)
    for item in (first, second):
        expect(loans.locator("tr", has_text=display_code(item["code"]))).to_contain_text(item["name"])
    expect(basket(page)).to_have_count(0)  # the basket is empty again
    problems.check(page)

    check_in_with_note(page, first, "Steam plate scratched; still works.")
    assert path_of(page) == "/desk/returns"
    flash = page.locator(".flash").filter(has_text=f"Checked in {first['name']} from {MEMBER_NAME}")
    expect(flash).to_be_visible()
    done = page.locator("#outcome[data-outcome='returned']")
    expect(done).to_contain_text("Checked in")
    expect(done).to_contain_text("Steam plate scratched; still works.")
    assert active_id(page) == "return-code", "the code box should have focus, ready for the next return"
    problems.check(page)

    page.goto(member_path)
    loans = on_loan_now(page)
    expect(loans.locator("tr", has_text=display_code(second["code"]))).to_be_visible()
    expect(loans.locator("tr", has_text=display_code(first["code"]))).to_have_count(0)
    problems.assert_none()


def test_returns_page_with_a_loan_is_accessible_on_a_phone(new_page, server) -> None:
    """The check-in form itself (parts checklist, condition, notes, repair), axe-checked at 320px."""
    item = available_item(server, "Slow cooker")  # parts: pot, lid, base
    card_code = member_card_code(new_page)
    problems = Problems()
    page = new_page(**PHONE)
    sign_in(page, *VOLUNTEER)
    open_member_by_card(page, card_code)
    add_item(page, item["code"])
    with page.expect_navigation():
        page.get_by_role("button", name="Lend 1 item").click()
    expect(page.locator(".flash").filter(has_text="Lent 1 item")).to_be_visible()

    page.goto(f"/desk/returns?item={item['code']}")
    loan = page.get_by_role("region", name=re.compile(re.escape(item["name"])))
    expect(loan).to_contain_text(f"Lent to {MEMBER_NAME}")
    checklist = loan.get_by_role("group", name="Parts checklist: tick any that are missing")
    expect(checklist.get_by_role("checkbox")).to_have_count(len(item["parts"]))
    expect(loan.get_by_label("Condition now")).to_be_visible()
    expect(loan.get_by_label("Notes (optional)")).to_be_visible()
    expect(loan.get_by_label(re.compile("^Needs repair"))).not_to_be_checked()
    expect(loan.get_by_role("button", name="Check in")).to_be_visible()
    problems.check(page)

    page.get_by_label("Notes (optional)").fill("Lid a little stiff.")
    loan.get_by_label("Condition now").select_option(label="Fair")
    with page.expect_navigation():
        loan.get_by_role("button", name="Check in").click()
    expect(page.locator(".flash").filter(has_text=f"Checked in {item['name']}")).to_be_visible()
    expect(page.locator("#outcome[data-outcome='returned']")).to_contain_text("Lid a little stiff.")
    problems.check(page)
    problems.assert_none()


def test_after_each_scan_the_code_box_has_focus_for_the_next(new_page, server) -> None:
    """A USB barcode scanner is a keyboard: after an item is added (the page reloads)
    the item box must have focus again, so the next scan lands in it without a tap."""
    first = available_item(server, "Step ladder (3 tread)")
    second = available_item(server, "Hedge trimmer")
    card_code = member_card_code(new_page)
    page = new_page()
    sign_in(page, *VOLUNTEER)
    member_path = open_member_by_card(page, card_code)
    assert active_id(page) == "item-code", "the item box should have focus when the member page opens"

    add_item(page, first["code"])
    expect(outcome(page)).to_have_attribute("data-outcome", "success")
    assert active_id(page) == "item-code", (
        f"after adding an item ({page.url}) focus is on {active_id(page)!r}, not the item box: "
        "the next scan from a USB scanner would go nowhere"
    )

    page.keyboard.type(second["code"])  # the scanner types the code and presses Enter
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(basket(page).locator("tbody tr")).to_have_count(2)
    expect(basket(page)).to_contain_text(second["name"])
    assert path_of(page) == member_path


def test_scanner_buttons_are_hidden_until_they_can_work(new_page) -> None:
    """Without JavaScript no camera button shows; with it, "Scan with the camera" shows and
    "Stop the camera" only while the camera runs (both carry the hidden attribute until then)."""
    plain = new_page(java_script_enabled=False)
    sign_in(plain, *VOLUNTEER)
    assert path_of(plain) == "/desk"
    expect(plain.locator("[data-scanner-start]")).to_have_count(2)  # in the page...
    for name in ("Scan with the camera", "Stop the camera", "Sounds"):
        buttons = plain.get_by_role("button", name=name, include_hidden=True)
        for index in range(buttons.count()):
            expect(buttons.nth(index)).to_be_hidden()  # ...but not shown: they would do nothing

    page = new_page()
    sign_in(page, *VOLUNTEER)
    search = page.get_by_role("search")
    expect(search.get_by_role("button", name="Scan with the camera")).to_be_visible()
    stop = search.locator("[data-scanner-stop]")
    expect(stop).to_have_attribute("hidden", "")
    expect(stop).to_be_hidden()
    expect(search.locator("[data-scanner-video]")).to_be_hidden()  # no empty black box before the camera runs


# --- 2. what the desk says ----------------------------------------------------------------------


def test_unknown_and_unavailable_codes_say_so(new_page, server) -> None:
    item = available_item(server, "Stud finder")
    card_code = member_card_code(new_page)
    page = new_page()
    sign_in(page, *VOLUNTEER)
    member_path = open_member_by_card(page, card_code)

    # A code no item has.
    add_item(page, "ZZZZ-ZZZZ")
    said = outcome(page)
    expect(said).to_have_attribute("data-outcome", "unknown")
    expect(said).to_have_attribute("role", "alert")
    expect(said).to_contain_text("Not found")
    expect(said).to_contain_text("No item has the code ZZZZZZZZ")
    expect(page.get_by_role("button", name=re.compile(r"^Lend \d+ item"))).to_have_count(0)
    assert_accessible(page)

    # Lend the stud finder, then scan it again (as if it were picked up from the shelf by mistake).
    page.goto(member_path)
    add_item(page, item["code"])
    expect(outcome(page)).to_have_attribute("data-outcome", "success")
    with page.expect_navigation():
        page.get_by_role("button", name="Lend 1 item").click()
    expect(on_loan_now(page)).to_contain_text(display_code(item["code"]))
    try:
        page.goto(member_path)
        add_item(page, item["code"])
        said = outcome(page)
        expect(said).to_have_attribute("data-outcome", "unavailable")
        expect(said).to_have_attribute("role", "alert")
        expect(said).to_contain_text("Not available")
        expect(said).to_contain_text(f"{item['name']} cannot go out")
        expect(page.locator("#verdict")).to_contain_text("No, because:")
        expect(page.get_by_role("button", name=re.compile(r"^Lend \d+ item"))).to_have_count(0)
        assert_accessible(page)
    finally:  # leave the stud finder on the shelf for anyone else
        check_in_with_note(page, item, "Checked in by the desk feedback test.")
        expect(page.locator(".flash").filter(has_text=f"Checked in {item['name']}")).to_be_visible()


# --- 3. the camera, for real --------------------------------------------------------------------


def label_png(server, code: str) -> Image.Image:
    """The item's QR label as the app renders it for printing."""
    with urllib.request.urlopen(server.url(f"/api/v1/items/{code}/qr.png"), timeout=10) as response:
        assert response.status == 200
        assert (response.headers.get("content-type") or "").startswith("image/png")
        return Image.open(io.BytesIO(response.read())).convert("RGB")


def camera_browser(browser, video: Path):
    """A separate Chromium whose webcam plays ``video`` (the shared one has no camera)."""
    if not CHROMIUM.exists():  # the `browser` fixture has already failed or skipped by now
        pytest.skip(f"{CHROMIUM} is not installed")
    return browser.browser_type.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *CAMERA_ARGS, f"--use-file-for-fake-video-capture={video}"]
    )


def scan_with_camera(page: Page, scanner) -> None:
    start = scanner.get_by_role("button", name="Scan with the camera")
    expect(start).to_be_visible()  # revealed by the script: the page is a secure context with a camera
    with page.expect_navigation(timeout=20_000):
        start.click()


def test_camera_scans_an_item_label_into_the_basket(browser, new_page, server, tmp_path) -> None:
    item = available_item(server, "Spirit level (120 cm)")
    card_code = member_card_code(new_page)
    video = write_y4m(label_png(server, item["code"]), tmp_path / "label.y4m")
    camera = camera_browser(browser, video)
    try:
        context = camera.new_context(base_url=server.base_url, permissions=["camera"])
        context.set_default_timeout(10_000)
        violations = watch_csp(context)
        page = context.new_page()
        sign_in(page, *VOLUNTEER)
        member_path = open_member_by_card(page, card_code)
        code_box = page.get_by_label("Scan or type an item's code")
        expect(code_box).to_have_value("")

        scan_with_camera(page, page.locator("form#add-item [data-scanner]"))
        assert path_of(page) == member_path
        said = outcome(page)
        expect(said).to_have_attribute("data-outcome", "success")
        expect(said).to_contain_text(f"Added: {item['name']}")
        table = basket(page)
        expect(table.locator("tbody tr")).to_have_count(1)
        expect(table).to_contain_text(item["name"])
        expect(table).to_contain_text(display_code(item["code"]))
        expect(page.get_by_role("button", name="Lend 1 item")).to_be_visible()
        # The scanner put the decoded code in the box and submitted the form itself.
        assert f"add={item['code']}" in page.url, page.url
        assert_accessible(page)
        assert_no_csp_violations(violations)
    finally:
        camera.close()


def test_camera_scans_a_member_card_on_the_desk(browser, new_page, server, tmp_path) -> None:
    # The card's QR as the app draws it on the member's account page.
    member = new_page()
    sign_in(member, *MEMBER)
    card_qr = member.locator(".member-card-qr")
    expect(card_qr).to_be_visible()
    shot = Image.open(io.BytesIO(card_qr.screenshot())).convert("RGB")
    card_url = card_qr.locator("svg title").text_content()
    assert card_url and re.fullmatch(re.escape(server.base_url) + r"/c/[0-9A-Z]+", card_url), card_url
    video = write_y4m(shot, tmp_path / "card.y4m")

    camera = camera_browser(browser, video)
    try:
        context = camera.new_context(base_url=server.base_url, permissions=["camera"])
        context.set_default_timeout(10_000)
        violations = watch_csp(context)
        page = context.new_page()
        sign_in(page, *VOLUNTEER)
        assert path_of(page) == "/desk"
        scan_with_camera(page, page.get_by_role("search").locator("[data-scanner]"))
        assert re.fullmatch(r"/desk/members/\d+", path_of(page)), page.url
        expect(page.get_by_role("heading", level=1, name=MEMBER_NAME)).to_be_visible()
        assert_no_csp_violations(violations)
    finally:
        camera.close()
