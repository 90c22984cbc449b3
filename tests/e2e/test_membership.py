"""Joining from a phone: a new member chooses an amount, pays on the Stripe stand-in's page
and arrives at an active membership, activated by the webhook alone. A coordinator and a
volunteer see the payment. axe checks our pages on the way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import assert_no_csp_violations, demo_server_with_stripe, watch_csp
from tests.e2e.test_pages import assert_accessible, sign_in
from tests.servers import Server

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 320, "height": 640}, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="module")
def paying_server() -> Iterator[tuple[Server, object]]:
    with demo_server_with_stripe("lending-e2e-pay-") as running:
        yield running


def test_join_on_a_phone_pay_and_arrive_at_an_active_membership(browser, paying_server) -> None:
    server, fake = paying_server
    context = browser.new_context(base_url=server.base_url, **PHONE)
    context.set_default_timeout(15_000)
    violations = watch_csp(context)
    page: Page = context.new_page()
    try:
        page.goto("/")
        page.get_by_role("link", name="Join the library").click()
        expect(page.get_by_role("heading", level=1, name="Join the library")).to_be_visible()
        assert_accessible(page)
        page.get_by_role("link", name="Pay what you can").click()
        assert_accessible(page)

        page.get_by_label("Another amount", exact=True).check()
        page.get_by_label("Another amount, in pounds").fill("6.50")
        page.get_by_label("Pay it forward (optional), in pounds").fill("1.50")
        page.get_by_label("Name", exact=True).fill("Rhys Price")
        page.get_by_label("Email address").fill("rhys@example.org")
        page.get_by_label("Password").fill("a long enough password")
        page.get_by_label("I accept the borrowing agreement (version 1).").check()
        page.get_by_role("button", name="Join").click()

        # Stripe's (stand-in) page: the amount is the choice plus what was paid forward.
        expect(page.get_by_text("£8.00")).to_be_visible()
        assert page.url.startswith(fake.base_url + "/pay/")
        page.get_by_role("button", name="Pay").click()

        page.wait_for_url("**/join/done?session_id=*")
        expect(page.get_by_role("heading", level=1, name="Your membership is active")).to_be_visible()
        assert_accessible(page)
        page.get_by_role("link", name="See your membership and card number").click()
        expect(page.get_by_text("Active", exact=True)).to_be_visible()
        expect(page.get_by_text("£8.00").first).to_be_visible()
        assert_accessible(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        assert_no_csp_violations(violations)  # the form's redirect to Checkout too (form-action)
    finally:
        context.close()


def test_a_volunteer_takes_cash_at_the_counter_on_a_phone(browser, paying_server) -> None:
    server, _ = paying_server
    context = browser.new_context(base_url=server.base_url, **PHONE)
    context.set_default_timeout(15_000)
    violations = watch_csp(context)
    page: Page = context.new_page()
    try:
        sign_in(page, "volunteer@demo.example", "demo-volunteer")
        page.get_by_label("Lend: find the member").fill("Dewi")
        page.get_by_role("button", name="Find", exact=True).click()
        page.get_by_role("link", name="Dewi Morgan").click()
        page.get_by_role("link", name="Membership: take a payment").click()
        expect(page.get_by_role("heading", name="Take a payment")).to_be_visible()
        assert_accessible(page)
        page.get_by_label("Amount, in pounds").fill("3")
        page.get_by_label("Cash").check()
        page.get_by_role("button", name="Record the payment").click()
        expect(page.get_by_role("heading", level=1, name="Receipt")).to_be_visible()
        expect(page.get_by_text("£3.00")).to_be_visible()
        assert_accessible(page)

        context.clear_cookies()
        sign_in(page, "coordinator@demo.example", "demo-coordinator")
        page.goto("/manage/payments")
        expect(page.get_by_role("heading", level=1, name="Payments and income")).to_be_visible()
        assert_accessible(page)
        page.goto("/manage/memberships")
        assert_accessible(page)
        page.goto("/manage/memberships/tiers/new")
        assert_accessible(page)
        assert_no_csp_violations(violations)
    finally:
        context.close()
