"""The impact report: the suppression rule on its own (pure), then the report on SQLite and
PostgreSQL: counts by month and organisation, each organisation's link workers seeing only
their own, small numbers suppressed, the first loan, loans compared, and categories."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from lending import clock, errors
from lending.catalog.tables import Category, Item, ItemGroup
from lending.loans.tables import Loan
from lending.members import organisations
from lending.members import services as members
from lending.memberships import tiers
from lending.memberships.tiers import TierInput
from lending.referrals import reports, rules
from lending.referrals import services as referrals
from lending.referrals.tables import Referral
from lending.spreadsheets import safe_cell
from lending.venues import services as venues

PASSWORD = "correct horse battery"


# --- pure -------------------------------------------------------------------------------------


def test_counts_from_one_to_four_are_suppressed_and_zero_is_shown():
    assert reports.SMALL == 5
    assert [reports.suppress(n) for n in range(7)] == [0, None, None, None, None, 5, 6]
    assert reports.suppress(1000) == 1000


def test_a_lone_small_cell_takes_the_next_smallest_with_it():
    # The total (16) is shown, so 1 alone would be 16 - 15: the smallest other count goes too.
    assert reports.suppress_cells([10, 1, 5, 0]) == [10, None, None, 0]
    assert reports.suppress_cells([2, 3, 9]) == [None, None, 9]  # two hidden: neither can be worked out
    assert reports.suppress_cells([0, 7, 9]) == [0, 7, 9]
    assert reports.suppress_cells([4]) == [None]
    assert reports.suppress_cells([3, 0, 0]) == [None, 0, 0]


def test_rates_averages_and_medians_need_five_people():
    assert reports.percent(4, 10) is None  # the rate would give the 4 away
    assert reports.percent(5, 10) == 50 and reports.percent(2, 3) is None
    assert reports.percent(0, 5) == 0 and reports.percent(5, 6) == 83 and reports.percent(6, 9) == 67
    assert reports.median([3, 1, 2, 9]) is None
    assert reports.median([3, 1, 2, 9, 4]) == 3.0 and reports.median([1, 2, 3, 4, 5, 6]) == 3.5
    assert reports.per_person(9, 4) is None and reports.per_person(9, 5) == 1.8


def test_the_period_defaults_to_twelve_months_and_is_checked():
    assert reports.default_period(date(2026, 3, 15)) == (date(2025, 4, 1), date(2026, 3, 15))
    assert reports.default_period(date(2026, 12, 1)) == (date(2026, 1, 1), date(2026, 12, 1))
    assert len(reports.months_between(*reports.default_period(date(2026, 3, 15)))) == 12
    assert reports.months_between(date(2025, 12, 31), date(2026, 2, 1)) == [
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
    assert reports.parse_period("", None) == (None, None)
    assert reports.parse_period("2026-01-01", " 2026-02-01 ") == (date(2026, 1, 1), date(2026, 2, 1))
    for bad in (("2026-13-01", None), ("soon", "2026-01-01"), ("20260101", None), (None, "2026-02-30")):
        with pytest.raises(errors.InvalidInput) as caught:
            reports.parse_period(*bad)
        assert caught.value.code == "invalid_date" and caught.value.status == 422
    assert set(reports.period_problems(date(2026, 2, 1), date(2026, 1, 1))) == {"from"}
    assert reports.period_problems(date(2000, 1, 1), date(2026, 1, 1))
    assert reports.period_problems(date(2026, 1, 1), date(2026, 1, 1)) == {}


def test_csv_cells_cannot_become_formulas():
    for text in ("=SUM(A1)", "+1", "-1", "@cmd", "\tx"):
        assert safe_cell(text).startswith("'")
    assert safe_cell("Riverside Surgery") == "Riverside Surgery" and safe_cell(None) == ""


# --- the report -------------------------------------------------------------------------------


async def setup_world() -> dict:
    venues.forget_cache()
    tier = await tiers.save_tier(
        values=TierInput(name="Referral", min_pence=0, max_pence=0, allow_free=True, public=False)
    )
    await referrals.save_settings(tier_id=tier.id, months_options="3, 6, 12", redeem_days="60", erase_after_days="365")
    a = await organisations.find_organisation(name="Riverside Surgery") or await organisations.create_organisation(
        name="Riverside Surgery", kind="gp_practice"
    )
    b = await organisations.create_organisation(name="Hillside PCN", kind="primary_care_network")
    found = {"tier": tier, "a": a, "b": b}
    for key, role, organisation in (
        ("lw_a", "link_worker", a.id),
        ("lw_b", "link_worker", b.id),
        ("volunteer_x", "volunteer", None),
        ("coordinator_x", "coordinator", None),
        ("member_x", "member", None),
    ):
        found[key] = await members.create_account(
            name=f"Person {key}", email=f"{key}@example.org", role=role, password=PASSWORD, organisation=organisation
        )
    return found


def details(**changes) -> rules.Details:
    values = dict(
        name="Sam Secret",
        contact_route="email",
        contact="sam@example.org",
        language="cy",
        months=6,
        redeem_by=clock.now().date() + timedelta(days=30),
        consent_referral=True,
    )
    values.update(changes)
    return rules.Details(**values)


async def issue(issuer, count: int, *, redeem: int = 0, name: str = "Sam Secret") -> list[tuple[str, int | None]]:
    """``count`` referrals; the first ``redeem`` of them used, each by a new member. Returns
    (code, member id) pairs."""
    made = []
    for n in range(count):
        referral = await referrals.issue_referral(issuer=issuer, details=details(name=f"{name} {n}"))
        member_id = None
        if n < redeem:
            account = await members.create_account(
                name=f"{name} member {n}", email=f"{referral.code}@example.org", role="member"
            )
            await referrals.redeem(code=referral.code, member_id=account.id, address=f"10.0.0.{n}")
            member_id = account.id
        made.append((referral.code, member_id))
    return made


async def category_tree() -> dict[str, int]:
    now = clock.now()
    tools = (await Category.insert(Category(name="Tools", created_at=now)).returning(Category.id).run())[0]["id"]
    drills = (
        await Category.insert(Category(name="Drills", parent=tools, created_at=now)).returning(Category.id).run()
    )[0]["id"]
    kitchen = (await Category.insert(Category(name="Kitchen", created_at=now)).returning(Category.id).run())[0]["id"]
    return {"Tools": tools, "Drills": drills, "Kitchen": kitchen}


async def lend(member_id: int, category_id: int | None, lent_at) -> None:
    """A returned loan of a new item in the category (returned, so any number may be made)."""
    now = clock.now()
    group = (
        await ItemGroup.insert(ItemGroup(name="Thing", category=category_id, created_at=now, updated_at=now))
        .returning(ItemGroup.id)
        .run()
    )[0]["id"]
    count = await Item.count().run()
    item = (
        await Item.insert(Item(item_group=group, code=f"T{count:06d}", created_at=now, updated_at=now))
        .returning(Item.id)
        .run()
    )[0]["id"]
    await Loan.insert(
        Loan(
            item=item,
            member=member_id,
            lent_at=lent_at,
            due_at=lent_at + timedelta(days=7),
            recorded_at=lent_at,
            returned_at=lent_at + timedelta(days=2),
        )
    ).run()


@pytest.fixture
async def world(database):
    return await setup_world()


async def test_four_used_referrals_are_fewer_than_five_and_five_are_five(world):
    await issue(world["lw_a"], 6, redeem=4)
    report = await reports.impact(viewer=world["lw_a"], from_day=None, to_day=None)
    assert report.totals.issued == 6 and report.totals.redeemed is None and report.totals.in_use is None
    assert report.totals.take_up_percent is None and report.referred_members is None
    assert len(report.by_month) == 12 and report.by_month[-1].counts.issued == 6
    assert all(row.counts.issued == 0 for row in report.by_month[:-1])
    await issue(world["lw_a"], 1, redeem=1, name="Another")
    report = await reports.impact(viewer=world["lw_a"], from_day=None, to_day=None)
    assert (report.totals.issued, report.totals.redeemed, report.totals.in_use) == (7, 5, 5)
    assert report.totals.take_up_percent == 71 and report.referred_members == 5
    assert report.median_days_to_first_loan is None and report.borrowed == 0  # nobody has borrowed yet


async def test_each_link_worker_sees_only_their_organisation(world):
    await issue(world["lw_a"], 5, redeem=0)
    await issue(world["lw_b"], 8, redeem=6)
    mine = await reports.impact(viewer=world["lw_a"], from_day=None, to_day=None)
    assert mine.organisation == "Riverside Surgery"
    assert [(row.organisation, row.counts.issued) for row in mine.by_organisation] == [("Riverside Surgery", 5)]
    assert (mine.totals.issued, mine.totals.redeemed, mine.referred_members) == (5, 0, 0)
    everyone = await reports.impact(viewer=world["coordinator_x"], from_day=None, to_day=None)
    assert everyone.organisation is None and everyone.totals.issued == 13 and everyone.totals.redeemed == 6
    assert {row.organisation: row.counts.redeemed for row in everyone.by_organisation} == {
        "Hillside PCN": 6,
        "Riverside Surgery": 0,
    }
    for outsider in ("volunteer_x", "member_x"):
        with pytest.raises(errors.NotAllowed):
            await reports.impact(viewer=world[outsider], from_day=None, to_day=None)


async def test_the_period_counts_the_referrals_issued_in_it(world):
    made = await issue(world["lw_a"], 7)
    last_year = clock.now() - timedelta(days=400)
    await Referral.update({Referral.issued_at: last_year}).where(Referral.code.is_in([c for c, _ in made[:2]])).run()
    recent = await reports.impact(viewer=world["lw_a"], from_day=None, to_day=None)
    assert recent.totals.issued == 5
    day = venues.today(await venues.calendar(), last_year)
    old = await reports.impact(viewer=world["coordinator_x"], from_day=day, to_day=day)
    assert old.totals.issued is None and [row.counts.issued for row in old.by_month] == [None]
    with pytest.raises(errors.InvalidInput) as caught:
        await reports.impact(viewer=world["lw_a"], from_day=date(2026, 2, 1), to_day=date(2026, 1, 1))
    assert caught.value.code == "invalid_range"


async def test_first_loans_loans_compared_and_categories(world):
    tree = await category_tree()
    made = await issue(world["lw_a"], 6, redeem=6)
    now = clock.now()
    # Noon UTC, so that whole days later are whole days later on the venue's calendar too.
    issued_at = datetime.combine(now.date() - timedelta(days=30), time(12), tzinfo=UTC)
    await (
        Referral.update({Referral.issued_at: issued_at, Referral.redeemed_at: issued_at + timedelta(days=2)})
        .where(Referral.organisation == world["a"].id)
        .run()
    )
    referred = [member for _code, member in made]
    for member, days in zip(referred, (3, 5, 8, 10, 20)):  # the sixth never borrows
        await lend(member, tree["Drills"], issued_at + timedelta(days=days, hours=1))
        await lend(member, tree["Drills"], issued_at + timedelta(days=days + 1, hours=1))
    await lend(referred[0], tree["Kitchen"], now - timedelta(days=1))
    await lend(referred[0], None, now - timedelta(days=1))
    await lend(referred[1], tree["Drills"], issued_at - timedelta(days=5))  # before the code was used: not a first loan
    others = [
        await members.create_account(name=f"Other {n}", email=f"other{n}@example.org", role="member") for n in range(5)
    ]
    for account in others:
        for _ in range(3):
            await lend(account.id, tree["Kitchen"], now - timedelta(days=3))
    await lend(others[0].id, tree["Kitchen"], now - timedelta(days=500))  # outside the period
    report = await reports.impact(viewer=world["lw_a"], from_day=None, to_day=None)
    assert report.referred_members == 6 and report.borrowed == 5
    assert report.median_days_to_first_loan == 8.0
    assert report.loans_per_referred_member == round(13 / 6, 1)
    # The five others and one member who has not borrowed; the member loan outside the period is left out.
    assert report.other_members == 6 and report.loans_per_other_member == round(15 / 6, 1)
    assert [(str(row.category), row.loans, row.other) for row in report.categories] == [
        ("Tools", 11, False),
        ("Other categories", None, True),
    ]
    text = reports.impact_csv(report)
    assert "Sam Secret" not in text and made[0][0] not in text and "Other 0" not in text
    assert "category,Tools,loans,11" in text and "summary,,median_days_to_first_loan,8.0" in text
    assert "summary,,issued,6" in text and "summary,,redeemed,6" in text
