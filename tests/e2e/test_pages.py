"""The pages every role reaches, in a real browser, each checked with axe for accessibility."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

AXE = Axe()

DEMO_SIGN_INS = [
    # (role, email, password, the page that role lands on)
    ("coordinator", "coordinator@demo.example", "demo-coordinator", "/manage"),
    ("volunteer", "volunteer@demo.example", "demo-volunteer", "/desk"),
    ("link worker", "linkworker@demo.example", "demo-link-worker", "/referrals"),
    ("member", "member@demo.example", "demo-member", "/account"),
]


def assert_accessible(page: Page) -> None:
    """Zero axe violations on the page as it is now."""
    result = AXE.run(page)
    assert result.violations_count == 0, f"axe found problems on {page.url}:\n{result.generate_report()}"


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url).split("?", 1)[0].split("#", 1)[0]


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def test_home_page(page: Page) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert_accessible(page)


def test_sign_in_page(page: Page) -> None:
    response = page.goto("/login")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    expect(page.get_by_label("Email address")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()
    assert_accessible(page)


def test_unknown_page_is_an_accessible_404(page: Page) -> None:
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    assert "text/html" in (response.headers.get("content-type") or "")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert_accessible(page)


@pytest.mark.parametrize(("role", "email", "password", "home"), DEMO_SIGN_INS, ids=[r[0] for r in DEMO_SIGN_INS])
def test_each_role_lands_on_its_own_page(page: Page, role: str, email: str, password: str, home: str) -> None:
    sign_in(page, email, password)
    assert path_of(page) == home, f"the {role} landed on {page.url}, not {home}"
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert_accessible(page)


def test_volunteer_is_refused_the_manage_page(page: Page) -> None:
    sign_in(page, "volunteer@demo.example", "demo-volunteer")
    assert path_of(page) == "/desk"
    response = page.goto("/manage")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert_accessible(page)


def test_wrong_password_shows_an_error_and_stays_on_sign_in(page: Page) -> None:
    sign_in(page, "member@demo.example", "not-the-password")
    assert path_of(page) == "/login"
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("not right")
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    assert_accessible(page)


def test_language_switch_sets_the_page_language(page: Page) -> None:
    page.goto("/login")
    assert page.locator("html").get_attribute("lang") == "en"
    assert_accessible(page)

    language = page.get_by_role("navigation", name="Language")
    with page.expect_navigation():
        language.get_by_role("link", name="Cymraeg").click()
    assert path_of(page) == "/login", "the switch should return to the page it was used on"
    assert page.locator("html").get_attribute("lang") == "cy"
    assert_accessible(page)

    # The navigation's name is translated now, so find the link by its language instead.
    with page.expect_navigation():
        page.locator('nav a[hreflang="en"]').click()
    assert path_of(page) == "/login"
    assert page.locator("html").get_attribute("lang") == "en"
    assert_accessible(page)


@pytest.mark.parametrize("path", ["/", "/login"])
def test_no_horizontal_scroll_at_320px(new_page, path: str) -> None:
    page = new_page(viewport={"width": 320, "height": 640})
    page.goto(path)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 320, f"{path} is {scroll_width}px wide at a 320px viewport"
    assert_accessible(page)


def test_first_tab_focuses_the_skip_link(page: Page) -> None:
    page.goto("/")
    assert_accessible(page)
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "({tag: document.activeElement.tagName, href: document.activeElement.getAttribute('href'),"
        " text: document.activeElement.textContent.trim()})"
    )
    assert focused["tag"] == "A"
    assert focused["href"] == "#main"
    assert focused["text"].lower() == "skip to main content"
    skip_link = page.get_by_role("link", name="Skip to main content")
    expect(skip_link).to_be_focused()
    expect(skip_link).to_be_in_viewport()  # visible once focused, not left off-screen

    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def test_sign_out_returns_home_and_account_then_needs_sign_in(page: Page) -> None:
    sign_in(page, "member@demo.example", "demo-member")
    assert path_of(page) == "/account"

    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert path_of(page) == "/"
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    assert_accessible(page)

    page.goto("/account")
    assert path_of(page) == "/login"
    assert_accessible(page)


def test_admin_and_api_docs_run_under_their_content_security_policy(page: Page) -> None:
    """piccolo_admin's Vue app and Swagger UI's start-up script run with their own policies;
    `pages_on` fails the test on any violation. (The CDN is out of reach here: its requests are
    refused, which is no violation, and the inline script's hash is still checked.)"""
    page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
    sign_in(page, "coordinator@demo.example", "demo-coordinator")
    response = page.goto("/admin/")
    assert response is not None and response.status == 200
    assert "'unsafe-eval'" in response.headers["content-security-policy"]
    expect(page.get_by_role("link", name="item", exact=True)).to_be_visible()  # the app rendered
    page.goto("/admin/#/item/")
    expect(page.locator("table tbody tr:visible").first).to_be_visible()
    page.goto("/admin/#/item/add/")
    expect(page.get_by_role("heading", name="Add Item")).to_be_visible()
    page.goto("/admin/#/venue/1/")
    expect(page.get_by_role("heading", name="Edit Venue")).to_be_visible()
    for path in ("/schema", "/admin/api/docs/"):
        response = page.goto(path)
        assert response is not None and response.status == 200
        policy = response.headers["content-security-policy"]
        assert "'sha256-" in policy and "'unsafe-inline'" not in policy, policy
