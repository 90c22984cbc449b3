"""Welsh through HTTP, on both databases: a person's language sticks to their account (signing
in, the switch, the account page, joining, registering at the counter, the desk), everything
the library sends them is written in it with dates and money in its forms (receipts, loan
receipts, reminders from `lending reminders send`, the calendar feed), and a Welsh reader is
told before going to Stripe, whose page has no Welsh, that it will be in English.

Expected Welsh is looked up in the catalogue (``welsh()``) rather than typed here, so a
reworded translation does not break these tests; each check also makes sure the Welsh differs
from the English, so an untranslated message cannot pass."""

from __future__ import annotations

import re
from datetime import timedelta
from email.header import decode_header, make_header

import pytest

from lending import clock, i18n
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.loans import calendar_feed, checkout, reminders
from lending.loans.tables import Loan
from lending.mail.tables import Email
from lending.members import services as members
from lending.members.tables import Account
from lending.memberships import agreements, counter_payments, records, tiers
from lending.memberships.tiers import TierInput
from tests.conftest import PASSWORD, SECRET, http_client, make_settings, post_form, sign_in
from tests.http.test_reminders import ending_soon, run_reminders, smtp  # noqa: F401 (smtp is a fixture)
from tests.servers import server_env

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


def welsh(message: str, **variables) -> str:
    with i18n.in_language("cy"):
        text = i18n.gettext(message, **variables)
    assert text != (message % variables if variables else message), f"{message!r} has no Welsh translation"
    return text


def shown(text: str, page: str) -> bool:
    """Whether the page shows the text: as a template's gettext writes it (marked safe), or
    escaped, as a flash message or other variable is."""
    from markupsafe import escape

    return text in page or str(escape(text)) in page


async def language_of(email: str) -> str:
    return (await Account.select(Account.language).where(Account.email == email).first().run())["language"]


async def free_tier():
    return await tiers.save_tier(
        values=TierInput(name="Pay what you can", min_pence=100, max_pence=5000, allow_free=True)
    )


# --- the language sticks to the account ---------------------------------------------------------


async def test_signing_in_brings_back_the_accounts_language(client, people):
    await members.set_language(account_id=people["member"].id, language="cy")
    await client.get("/language/en")  # this browser last showed English
    assert '<html lang="en">' in (await client.get("/login")).text
    response = await sign_in(client, "member@example.org")
    assert response.status_code == 303
    assert "lang=cy" in response.headers.get("set-cookie", "")
    page = await client.get("/account")
    assert '<html lang="cy">' in page.text
    assert shown(welsh("You are signed in as %(name)s.", name="Test member"), page.text)
    # Signed out, the browser keeps the language the person was reading.
    await post_form(client, "/logout", {})
    assert '<html lang="cy">' in (await client.get("/")).text


async def test_a_choice_made_in_one_browser_follows_the_person_to_another(as_role, people):
    async with as_role("member") as phone, as_role("member") as laptop:
        laptop.cookies.set("lang", "en", domain="testserver.local")  # it last showed English
        await phone.get("/language/cy", params={"next": "/account"})
        assert await language_of("member@example.org") == "cy"
        assert '<html lang="cy">' in (await laptop.get("/account")).text
        await laptop.get("/language/en", params={"next": "/account"})
        assert '<html lang="en">' in (await phone.get("/account")).text


async def test_the_account_page_lets_a_member_choose_the_language_of_pages_and_emails(as_role, people):
    async with as_role("member") as member:
        page = await member.get("/account")
        assert 'action="/account/language"' in page.text
        assert '<option value="en" lang="en" selected>English</option>' in page.text
        response = await post_form(member, "/account/language", {"language": "cy"})
        assert response.status_code == 303 and response.headers["location"] == "/account#language"
        assert await language_of("member@example.org") == "cy"
        page = await member.get("/account")
        assert '<html lang="cy">' in page.text
        assert shown(welsh("Your pages and emails will be in %(language)s.", language="Cymraeg"), page.text)
        assert '<option value="cy" lang="cy" selected>Cymraeg</option>' in page.text
        refused = await post_form(member, "/account/language", {"language": "fr"})
        assert refused.status_code == 303
        assert await language_of("member@example.org") == "cy"
        assert shown(welsh("Choose English or Welsh."), (await member.get("/account")).text)


async def test_joining_in_welsh_records_welsh(client, database):
    tier = await free_tier()
    await client.get("/language/cy")
    page = await client.get("/join", params={"tier": tier.id})
    assert '<html lang="cy">' in page.text
    assert '<option value="cy" lang="cy" selected>Cymraeg</option>' in page.text
    # Even a form that sends no language (an old page, a script) records the one being read.
    response = await post_form(
        client,
        "/join",
        {"tier": str(tier.id), "amount": "0.00", "name": "Nia Jones", "email": "nia@example.org", "password": PASSWORD},
    )
    assert response.status_code == 303, response.text
    assert await language_of("nia@example.org") == "cy"


async def test_at_the_counter_the_language_is_recorded_seen_and_changed(as_role, people):
    async with as_role("volunteer") as volunteer:
        await volunteer.get("/language/cy")
        form = await volunteer.get("/desk/members/new")
        assert '<option value="cy" lang="cy" selected>Cymraeg</option>' in form.text
        response = await post_form(volunteer, "/desk/members/", {"name": "Rhys Evans", "phone": "029 2000 0000"})
        assert response.status_code == 303, response.text
        rhys = await Account.select(Account.id, Account.language).where(Account.name == "Rhys Evans").first().run()
        assert rhys["language"] == "cy"
        desk = await volunteer.get(f"/desk/members/{rhys['id']}")
        assert f'action="/desk/members/{rhys["id"]}/language"' in desk.text
        assert '<option value="cy" lang="cy" selected>Cymraeg</option>' in desk.text
        assert shown(welsh("Language for messages"), desk.text)
        changed = await post_form(volunteer, f"/desk/members/{rhys['id']}/language", {"language": "en"})
        assert changed.status_code == 303 and changed.headers["location"] == f"/desk/members/{rhys['id']}#language"
        assert (await Account.select(Account.language).where(Account.id == rhys["id"]).first().run())[
            "language"
        ] == "en"
        after = await volunteer.get(f"/desk/members/{rhys['id']}")
        assert shown(
            welsh("Messages to %(name)s will be in %(language)s.", name="Rhys Evans", language="English"), after.text
        )
        assert '<option value="en" lang="en" selected>English</option>' in after.text
        # The volunteer's own pages stay in the volunteer's language.
        assert '<html lang="cy">' in after.text


async def test_members_cannot_set_someone_elses_language_at_the_desk(as_role, people):
    async with as_role("member") as member:
        response = await post_form(member, f"/desk/members/{people['volunteer'].id}/language", {"language": "cy"})
        assert response.status_code in (401, 403)
    assert await language_of("volunteer@example.org") == "en"


# --- what the library sends -----------------------------------------------------------------------


async def test_a_welsh_members_receipts_and_reminders_are_welsh_whoever_triggers_them(people):
    member = people["member"]
    await members.set_language(account_id=member.id, language="cy")
    tier = await free_tier()
    # A volunteer reading English takes the payment and lends: the messages are the member's.
    await counter_payments.record_counter_payment(
        member_id=member.id, tier=tier.id, amount=550, method="cash", actor_id=people["volunteer"].id
    )
    tent = await catalog.add_item(details=ItemDetails(name="Tent"))
    [loan] = await checkout.check_out(member_id=member.id, item_codes=[tent.code], actor_id=people["volunteer"].id)
    await Loan.update({Loan.due_at: clock.now() + timedelta(hours=30)}).where(Loan.id == loan.id).run()
    counts = await reminders.queue_loan_reminders()
    assert counts.due_soon == 1
    mail = {row["key"].split(":")[0]: row for row in await Email.select(Email.key, Email.subject, Email.body).run()}
    assert set(mail) == {"receipt", "loan-receipt", "loan-due-soon"}
    receipt = mail["receipt"]
    assert welsh("Thank you, %(name)s. This is your receipt.", name="Test member") in receipt["body"]
    assert welsh("Amount paid: %(amount)s", amount="£5.50") in receipt["body"]
    assert i18n.format_date(clock.now(), "cy") in receipt["body"]
    assert any(month in receipt["body"] for month in WELSH_MONTHS)
    lent = mail["loan-receipt"]
    assert welsh("You have borrowed:") in lent["body"] and "Dydd " in lent["body"]
    assert welsh("Due back soon: %(item)s", item="Tent") == mail["loan-due-soon"]["subject"]
    assert "Dydd " in mail["loan-due-soon"]["body"]


async def test_reminders_sent_from_the_command_line_are_in_the_members_language(database, smtp):  # noqa: F811
    inbox, url = smtp
    member = await ending_soon("cy")
    env = server_env(DATABASE_URL=database, SECRET_KEY=SECRET, SMTP_URL=url)
    [result] = await run_reminders(env)
    assert result.returncode == 0, result.stderr
    ends_at = (await records.current_membership(member_id=member.id)).ends_at
    by_subject = {str(make_header(decode_header(m["Subject"]))): m for m in inbox.messages}
    expiry = welsh("Your membership ends on %(date)s", date=i18n.format_date(ends_at, "cy"))
    assert expiry in by_subject, list(by_subject)
    body = by_subject[expiry].get_payload(decode=True).decode()
    assert welsh("Hello %(name)s,", name="Gwen") in body
    assert any(month in body for month in WELSH_MONTHS)
    assert by_subject[expiry]["Content-Language"] == "cy"


async def test_the_calendar_feed_is_in_the_members_language_whatever_asks_for_it(client, people):
    member = people["member"]
    await members.set_language(account_id=member.id, language="cy")
    await counter_payments.record_counter_payment(
        member_id=member.id, tier=(await free_tier()).id, amount=0, method="cash", actor_id=None
    )
    tent = await catalog.add_item(details=ItemDetails(name="Tent"))
    await checkout.check_out(member_id=member.id, item_codes=[tent.code], actor_id=None)
    token = await calendar_feed.calendar_token(member_id=member.id)
    feed = await client.get(f"/calendar/{token}.ics", headers={"Accept-Language": "en-GB"})
    text = feed.text.replace("\r\n ", "")  # unfold long lines
    assert feed.status_code == 200
    assert f"SUMMARY:{welsh('Due back: %(item)s', item='Tent')}" in text
    assert welsh("Library loans") in text
    description = next(line for line in text.splitlines() if line.startswith("DESCRIPTION:"))
    assert "Dydd " in description and any(month in description for month in WELSH_MONTHS)


# --- Stripe has no Welsh ---------------------------------------------------------------------------


@pytest.fixture
async def paying_app(database, fake_stripe):
    from lending.app import create_app

    fake_stripe.reset()
    return create_app(
        make_settings(
            database,
            STRIPE_SECRET_KEY=fake_stripe.secret_key,
            STRIPE_WEBHOOK_SECRET=fake_stripe.webhook_secret,
            STRIPE_API_BASE=fake_stripe.base_url,
        )
    )


async def test_welsh_readers_are_told_stripes_page_is_english_and_stripe_is_asked_for_english(paying_app, fake_stripe):
    tier = await free_tier()
    await agreements.publish_agreement(body="Bring it back clean.")
    english_note = "Stripe's payment page is in English only"
    async with http_client(paying_app) as english:
        page = await english.get("/join", params={"tier": tier.id})
        assert "Stripe" in page.text and english_note not in page.text.replace("&#39;", "'")
    async with http_client(paying_app) as client:
        await client.get("/language/cy")
        page = await client.get("/join", params={"tier": tier.id})
        note = welsh("Stripe's payment page is in English only; the library's pages are in Welsh.")
        assert shown(note, page.text)
        # The note comes before the button that goes to Stripe.
        assert page.text.index(note) < page.text.index('type="submit" class="button"')
        agreement = re.search(r'name="agreement_version" type="checkbox" value="(\d+)"', page.text).group(1)
        response = await post_form(
            client,
            "/join",
            {
                "tier": str(tier.id),
                "amount": "other",
                "amount_other": "5",
                "forward": "",
                "name": "Ffion Evans",
                "email": "ffion@example.org",
                "password": PASSWORD,
                "language": "cy",
                "agreement_version": agreement,
            },
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"].startswith(fake_stripe.base_url + "/pay/cs_")
    [created] = [r for r in fake_stripe.requests() if r["method"] == "POST" and r["path"] == "/v1/checkout/sessions"]
    params = created["params"]
    assert params["locale"] == "en-GB"  # never "auto": Stripe would guess from the browser
    product = params["line_items"][0]["price_data"]["product_data"]["name"]
    assert product == welsh("%(tier)s membership", tier="Pay what you can")
