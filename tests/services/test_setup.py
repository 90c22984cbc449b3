"""The setup file, on every database engine: a venue exported, imported into an empty database
and exported again gives the same file; every problem in a bad file is reported with where it
is, and nothing is written; no personal data ever leaves in it."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest
from PIL import Image

from lending import errors
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.catalog.tables import Category, ItemGroup
from lending.loans import loan_policy
from lending.mail import services as mail
from lending.mail.tables import EmailTemplate
from lending.members import organisations
from lending.members import services as members
from lending.memberships import agreements, counter_payments, tiers
from lending.memberships.tables import Agreement, Tier
from lending.memberships.tiers import TierInput
from lending.referrals import services as referrals
from lending.venues import rules
from lending.venues import services as venues
from lending.venues.tables import Closure, OpeningSession, Site, Venue
from lending.workflows import setup_file, setup_file_rules, venue_details
from tests.conftest import empty_tables


def png(colour: str = "#aa3311", size: tuple[int, int] = (300, 120)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


async def build_venue() -> None:
    """A venue with something in every part of the setup."""
    venues.forget_cache()
    await venues.save_details(
        details=rules.VenueDetails(
            name="Aberystwyth Library of Things",
            timezone="Europe/London",
            currency="gbp",
            email="hello@aber.example",
            phone="01970 000000",
            address="1 Great Darkgate Street\nAberystwyth",
            website="https://aber.example",
            colour="#5a2d82",
            languages=("cy", "en"),
            label_template="L7651",
        )
    )
    await venues.set_logo(data=png())
    await venues.set_hours(timezone_name="Europe/London", hours={1: "10:00-13:00, 14:00-17:00", 5: "10:00-16:00"})
    hall = await catalog.create_site(name="Market Hall", address="Market Street")
    await catalog.create_site(name="Penparcau Hub")
    await venues.set_hours(site_id=hall.id, hours={2: "16:00-19:00"})
    await venues.add_closure(starts_on=date(2099, 12, 24), ends_on=date(2100, 1, 1), reason="Christmas")
    await venues.add_closure(starts_on=date(2099, 8, 1), ends_on=date(2099, 8, 7), reason="Eisteddfod", site_id=hall.id)
    await venues.add_closure(starts_on=date(2001, 1, 1), ends_on=date(2001, 1, 2), reason="Long ago")
    await loan_policy.save_policy(
        values={
            "renewal_limit": 1,
            "buffer_hours": 24,
            "hold_days": 4,
            "due_soon_days": 1,
            "reserve_ahead_days": 60,
            "max_reservation_days": 7,
            "fee_per_day_pence": 0,
            "fee_cap_pence": 0,
            "block_over_pence": 0,
        }
    )
    free = await tiers.save_tier(
        values=TierInput(
            name="Referral", allow_free=True, min_pence=0, max_pence=0, public=False, loan_limit=2, loan_days=14
        )
    )
    await tiers.save_tier(
        values=TierInput(
            name="Pay what you can",
            description="Choose.",
            suggested=[0, 500],
            min_pence=0,
            max_pence=5000,
            allow_free=True,
            gift_aid=True,
        )
    )
    await referrals.save_settings(tier_id=free.id, months_options="3, 6", redeem_days=30, erase_after_days=400)
    tools = await catalog.create_category(name="Tools")
    drills = await catalog.create_category(name="Drills", parent_id=tools.id)
    await catalog.create_category(name="Garden")
    await catalog.set_category_loan_days(periods={drills.id: 3})
    await agreements.publish_agreement(body="Bring things back clean.", body_cy="Dewch â phethau'n ôl yn lân.")
    await agreements.publish_agreement(body="Bring things back clean and on time.")
    await mail.save_template(
        kind="due_soon",
        language="cy",
        subject="Yn ôl yn fuan: {item}",
        body="Helo {name},\n\nMae {item} yn ddyledus erbyn {due}.\n\n{library}",
    )
    drill = await catalog.add_item(
        details=ItemDetails(name="Cordless drill", category_id=drills.id, parts=["Battery", "Charger"])
    )
    await catalog.add_item(details=ItemDetails(name="Cordless drill"), copy_of=drill.code)
    await catalog.add_item(details=ItemDetails(name="Lawn mower"))


async def test_a_setup_exported_imported_and_exported_again_is_the_same_file(database):
    await build_venue()
    first = await setup_file.export_text(include_catalogue=True)
    document = json.loads(first)
    assert document["format"] == "lending-setup" and document["version"] == setup_file_rules.VERSION
    assert document["venue"]["languages"] == ["cy", "en"] and document["venue"]["logo_png_base64"]
    assert [c["reason"] for c in document["closures"]] == ["Christmas"]  # the ended one is left out
    hall = next(site for site in document["sites"] if site["name"] == "Market Hall")
    assert hall["hours"]["wednesday"] == "16:00-19:00" and hall["closures"][0]["reason"] == "Eisteddfod"
    assert [c["path"] for c in document["categories"]] == [["Garden"], ["Tools"], ["Tools", "Drills"]]
    drill = next(thing for thing in document["catalogue"] if thing["name"] == "Cordless drill")
    assert drill["copies"] == 2 and drill["category"] == ["Tools", "Drills"]

    await empty_tables()
    venues.forget_cache()
    result = await setup_file.import_text(first)
    assert result.venue_name == "Aberystwyth Library of Things" and result.counts["catalogue"] == 2
    again = await setup_file.export_text(include_catalogue=True)
    assert again == first
    # What was imported works: a due date at the Market Hall lands on its own Wednesday hours.
    site = await Site.select(Site.id).where(Site.name == "Market Hall").first().run()
    cal = await venues.calendar(fresh=True, site_id=site["id"])
    assert [s.weekday for s in cal.sessions] == [2]
    assert (await venues.settings()).default_language == "cy"
    assert await ItemGroup.select(ItemGroup.wanted).where(ItemGroup.name == "Cordless drill").first().run() == {
        "wanted": 2
    }


async def test_a_setup_holds_no_personal_data(database):
    await build_venue()
    member = await members.create_account(
        name="Gwenllian Secret", email="gwen.secret@example.org", role="member", password="a long enough password"
    )
    organisation = await organisations.create_organisation(name="Secret Surgery", kind="gp_practice")
    await members.create_account(
        name="Link Person",
        email="link.secret@example.org",
        role="link_worker",
        password="a long enough password",
        organisation=organisation.id,
    )
    text = await setup_file.export_text(include_catalogue=True)
    for secret in ("Gwenllian", "gwen.secret", "link.secret", "Secret Surgery", member.card_code):
        assert secret not in text


async def counts() -> dict[str, int]:
    return {
        table._meta.tablename: await table.count().run()
        for table in (Venue, Site, OpeningSession, Closure, Tier, Category, ItemGroup, Agreement, EmailTemplate)
    }


def good_file() -> dict:
    return {
        "format": "lending-setup",
        "version": 1,
        "venue": {"name": "Llandeilo Library of Things", "timezone": "Europe/London"},
        "hours": {"tuesday": "10:00-13:00"},
        "sites": [{"name": "Civic Hall", "hours": {"saturday": "10-12"}}],
        "membership_tiers": [{"name": "Free", "allow_free": True, "min_pence": 0, "max_pence": 0}],
        "categories": [{"path": ["Tools"]}, {"path": ["Tools", "Saws"], "loan_days": 5}],
        "agreements": [{"version": 1, "body": "Be kind to the kit."}],
    }


async def rejected(text: str | bytes) -> dict[str, str]:
    before = await counts()
    with pytest.raises(errors.InvalidInput) as caught:
        await setup_file.import_text(text)
    assert caught.value.code == "invalid_setup"
    assert await counts() == before, "a rejected file wrote something"
    return caught.value.errors


async def test_a_small_hand_written_file_is_enough(database):
    result = await setup_file.import_text(json.dumps(good_file()))
    assert result.counts == {
        "sites": 1,
        "membership_tiers": 1,
        "categories": 2,
        "agreements": 1,
        "email_templates": 0,
        "catalogue": 0,
    }
    assert (await venues.settings(fresh=True)).name == "Llandeilo Library of Things"


async def test_bad_files_are_reported_with_where_each_problem_is_and_nothing_is_written(database):
    newer = {**good_file(), "version": 2}
    found = await rejected(json.dumps(newer))
    assert list(found) == ["version"] and "newer version" in found["version"]

    whole = json.dumps(good_file(), indent=2)
    found = await rejected(whole[: len(whole) // 2])
    assert list(found) == ["file"] and "cut short" in found["file"]

    assert (
        "not valid JSON" in (await rejected(whole.replace('"name": "Civic Hall"', "'name': 'Civic Hall'", 1)))["file"]
    )
    assert "format" in await rejected(json.dumps({"name": "a spreadsheet"}))
    assert "file" in await rejected(b"\xff\xfe\x00garbage")

    bad = good_file()
    bad["venue"]["timezone"] = "Europe/Aberystwyth"
    bad["venue"]["colour"] = "#ffff00"  # white on yellow cannot be read
    bad["hours"]["tuesday"] = "10:00-13:00, 12:00-15:00"  # overlapping
    bad["sites"][0]["hours"]["saturday"] = "lunchtime"
    bad["categories"].append({"path": ["tools"]})  # named twice (case does not make it another)
    bad["categories"].append({"path": ["Garden", "Hoses"]})  # its parent is not there
    bad["membership_tiers"].append({"name": "free", "max_pence": 10})
    bad["agreements"].append({"version": 3, "body": ""})
    bad["venue"]["nmae"] = "a typo"
    bad["email_templates"] = [{"kind": "due_soon", "language": "cy", "subject": "Hi {nmae}", "body": "x"}]
    bad["catalogue"] = [{"name": "Saw", "category": ["Tools", "Hammers"], "copies": -1}]
    found = await rejected(json.dumps(bad))
    assert "time zone" in found["venue.timezone"]
    assert "hard to read" in found["venue.colour"]
    assert "hours.tuesday" in found and "sites[0].hours.saturday" in found
    assert "already names this category" in found["categories[2].path"]
    assert "must come earlier" in found["categories[3].path"]
    assert "already has this name" in found["membership_tiers[1].name"]
    assert "expected 2" in found["agreements[1].version"] and "agreements[1].body" in found
    assert "venue.nmae" in found
    assert "{nmae}" in found["email_templates[0].subject"]
    assert "catalogue[0].category" in found and "catalogue[0].copies" in found

    wrong_types = good_file()
    wrong_types["sites"] = {"name": "not a list"}
    wrong_types["membership_tiers"][0]["loan_limit"] = "three"
    wrong_types["venue"]["logo_png_base64"] = "not base64!"
    found = await rejected(json.dumps(wrong_types))
    assert {"sites", "membership_tiers[0].loan_limit", "venue.logo_png_base64"} <= set(found)

    not_a_picture = good_file()
    not_a_picture["venue"]["logo_png_base64"] = "aGVsbG8="  # "hello"
    assert "venue.logo_png_base64" in await rejected(json.dumps(not_a_picture))


async def test_a_venue_that_is_set_up_is_not_overwritten(database):
    await setup_file.import_text(json.dumps(good_file()))
    before = await counts()
    with pytest.raises(errors.Conflict) as caught:
        await setup_file.import_text(json.dumps({**good_file(), "venue": {"name": "Another"}}))
    assert caught.value.code == "venue_already_set_up"
    assert await counts() == before and (await venues.settings(fresh=True)).name == "Llandeilo Library of Things"


async def test_own_words_for_a_message_are_filled_in_and_used(database):
    await venues.save_details(details=rules.VenueDetails(name="Aber Things"))
    with pytest.raises(errors.InvalidInput) as caught:
        await mail.save_template(kind="hold_ready", language="en", subject="Ready: {thing}", body="")
    assert set(caught.value.errors) == {"subject", "body"}
    await mail.save_template(
        kind="hold_ready",
        language="en",
        subject="Ready: {item}",
        body="Dear {name}, collect {item} by {until}. {library}. {not_a_placeholder",
    )
    assert await mail.queue(
        library="Aber Things",
        key="t:1",
        to_address="x@example.org",
        subject="built-in",
        body="built-in",
        kind="hold_ready",
        language="en",
        values={"name": "Ann", "item": "a drill", "until": "Friday"},
    )
    from lending.mail.tables import Email

    row = await Email.select(Email.subject, Email.body).where(Email.key == "t:1").first().run()
    assert row == {
        "subject": "Ready: a drill",
        "body": "Dear Ann, collect a drill by Friday. Aber Things. {not_a_placeholder",
    }
    # Welsh readers still get the built-in Welsh words: only English was changed.
    await mail.queue(
        library="Aber Things",
        key="t:2",
        to_address="x@example.org",
        subject="Yn barod",
        body="...",
        kind="hold_ready",
        language="cy",
        values={},
    )
    assert (await Email.select(Email.subject).where(Email.key == "t:2").first().run())["subject"] == "Yn barod"


async def test_venue_details_are_checked_and_the_currency_stays_once_money_is_taken(database):
    with pytest.raises(errors.InvalidInput) as caught:
        await venues.save_details(
            details=rules.VenueDetails(
                name="",
                timezone="Mars/Olympus",
                currency="btc",
                colour="yellow",
                email="nobody",
                website="aber.example",
                label_template="A4-99",
            )
        )
    assert set(caught.value.errors) == {"name", "timezone", "currency", "colour", "email", "website", "label_template"}
    saved = await venue_details.save_venue_details(details=rules.VenueDetails(name="  Aber  ", currency="eur"))
    assert saved.name == "Aber" and saved.currency == "eur"
    tier = await tiers.save_tier(values=TierInput(name="Any", min_pence=0, max_pence=5000))
    member = await members.create_account(name="Ann", email="ann@example.org", role="member")
    await counter_payments.record_counter_payment(
        member_id=member.id, tier=tier.id, amount=300, method="cash", actor_id=None
    )
    with pytest.raises(errors.InvalidInput) as caught:
        await venue_details.save_venue_details(details=rules.VenueDetails(name="Aber", currency="gbp"))
    assert set(caught.value.errors) == {"currency"} and (await venues.settings(fresh=True)).currency == "eur"
    renamed = await venue_details.save_venue_details(details=rules.VenueDetails(name="Aber Things", currency="eur"))
    assert renamed.name == "Aber Things"
