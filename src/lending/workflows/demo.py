"""A demo venue to try the app with: one account per role, a referring organisation, sites
a catalogue with placeholder photos, some loans, and referrals in every state. Running it
twice changes nothing."""

from __future__ import annotations

from collections.abc import Callable

from lending import clock, errors
from lending.adapters import photos
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.catalog.tables import Item, ItemGroup
from lending.loans import checkin, checkout, holds
from lending.loans.tables import Loan
from lending.members import organisations
from lending.members import services as members
from lending.members.tables import Account
from lending.memberships import agreements, counter_payments, joining, tiers
from lending.memberships.amounts import GiftAid
from lending.memberships.gateway import NO_GATEWAY
from lending.memberships.tables import Membership
from lending.memberships.tiers import TierInput
from lending.referrals import rules
from lending.referrals import services as referrals
from lending.referrals.tables import Referral
from lending.venues import services as venues
from lending.venues.tables import Site
from lending.workflows import venue_details

ORGANISATION = "Riverside Surgery"
SECOND_ORGANISATION = "Hillside Primary Care Network"

# email, name, role, password: printed for people trying the demo, never for real use.
ACCOUNTS = [
    ("coordinator@demo.example", "Carys Coordinator", "coordinator", "demo-coordinator"),
    ("volunteer@demo.example", "Vic Volunteer", "volunteer", "demo-volunteer"),
    ("linkworker@demo.example", "Lowri Link Worker", "link_worker", "demo-link-worker"),
    ("linkworker2@demo.example", "Huw Link Worker", "link_worker", "demo-link-worker2"),
    ("member@demo.example", "Alex Member", "member", "demo-member"),
    ("member2@demo.example", "Sam Rivers", "member", "demo-member2"),
    ("member3@demo.example", "Dewi Morgan", "member", "demo-member3"),
]


async def load(*, progress: Callable[[str], None] = print, force: bool = False) -> None:
    # Demo people (the sign-ins below and the members the demo makes) all have @demo.example emails.
    others = await Account.count().where(Account.email.not_like("%@demo.example") | Account.email.is_null()).run()
    if others and not force:
        raise errors.RuleViolation(
            "This database holds real accounts; demo accounts have published passwords. "
            "Use 'lending demo --force' (or LENDING_DEMO=1) only if you mean it.",
            code="demo_refused",
        )
    for organisation, kind in ((ORGANISATION, "gp_practice"), (SECOND_ORGANISATION, "primary_care_network")):
        if not await organisations.find_organisation(name=organisation):
            await organisations.create_organisation(name=organisation, kind=kind)
            progress(f"Added the referring organisation {organisation}.")
    for email, name, role, password in ACCOUNTS:
        if await Account.exists().where(Account.email == email).run():
            continue
        organisation = SECOND_ORGANISATION if email.startswith("linkworker2") else ORGANISATION
        await members.create_account(
            name=name,
            email=email,
            role=role,
            password=password,
            organisation=organisation if role == "link_worker" else None,
        )
        progress(f"Added {role.replace('_', ' ')} {name}.")
    await _load_catalogue(progress)
    await _load_memberships(progress)
    await _load_lending(progress)
    await _load_referrals(progress)
    progress("\nDemo sign-ins (email / password):")
    for email, _name, role, password in ACCOUNTS:
        progress(f"  {role.replace('_', ' '):<12} {email:<28} {password}")


SITES = [("Canton Library", "Library Street, Cardiff CF5 1QJ"), ("Grangetown Hub", "Havelock Place, Cardiff CF11 6PA")]

# category path -> [(name, description, safety notes, parts, value in pounds, copies)]
CATALOGUE: dict[str, list[tuple[str, str, str, str, str, int]]] = {
    "Tools › Power tools": [
        (
            "Cordless drill",
            "18V drill driver with two batteries, for walls, wood and flat-pack.",
            "Wear eye protection. Check for cables and pipes before drilling into walls.",
            "Drill\nCharger\nBattery x2\nDrill bit set",
            "89",
            3,
        ),
        (
            "Jigsaw",
            "Cuts curves and straight lines in wood up to 60 mm.",
            "Wear eye protection; unplug to change blades.",
            "Jigsaw\nBlade x3",
            "60",
            1,
        ),
        (
            "Orbital sander",
            "For smoothing wood before painting.",
            "Wear a dust mask.",
            "Sander\nSanding sheets x10",
            "45",
            2,
        ),
        (
            "Hammer drill",
            "SDS drill for masonry and concrete.",
            "Wear ear and eye protection.",
            "Drill\nSide handle\nMasonry bits",
            "120",
            1,
        ),
    ],
    "Tools › Hand tools": [
        ("Socket set", "Metric sockets 4–32 mm with ratchet.", "", "Case\nRatchet\nSockets", "35", 2),
        ("Spirit level (120 cm)", "For shelves and picture rails.", "", "", "20", 2),
        ("Stud finder", "Finds wood studs and live wires behind plasterboard.", "", "Stud finder\n9V battery", "25", 1),
        (
            "Wallpaper stripper",
            "Steam stripper for old wallpaper.",
            "Hot steam: keep hands clear of the plate.",
            "Stripper\nSteam plate\nHose",
            "40",
            1,
        ),
    ],
    "Garden": [
        (
            "Hedge trimmer",
            "Electric, 55 cm blade.",
            "Use with an RCD. Wear gloves and goggles.",
            "Trimmer\nBlade cover",
            "70",
            2,
        ),
        (
            "Lawn mower",
            "Electric rotary mower, 34 cm.",
            "Use with an RCD; unplug before clearing the blade.",
            "Mower\nGrass box",
            "110",
            1,
        ),
        (
            "Pressure washer",
            "For patios, cars and bikes.",
            "Never point at people or animals.",
            "Washer\nLance\nPatio cleaner",
            "130",
            1,
        ),
        ("Wheelbarrow", "90 litre.", "", "", "50", 2),
        ("Leaf blower", "Blows and vacuums leaves.", "Wear ear protection.", "Blower\nCollection bag", "55", 1),
    ],
    "Home": [
        (
            "Carpet cleaner",
            "Deep cleans carpets and upholstery.",
            "Unplug before emptying the tanks.",
            "Cleaner\nUpholstery tool\nHose",
            "150",
            2,
        ),
        (
            "Sewing machine",
            "Straight and zigzag stitch; good for mending and curtains.",
            "",
            "Machine\nFoot pedal\nBobbins x4\nManual",
            "120",
            2,
        ),
        ("Dehumidifier", "10 litre a day, for damp rooms and drying washing.", "", "Dehumidifier", "140", 1),
        ("Steam cleaner", "For floors, tiles and ovens.", "Hot steam.", "Cleaner\nNozzles", "60", 1),
        (
            "Step ladder (3 tread)",
            "For painting and changing bulbs.",
            "Check the locking bar before climbing.",
            "",
            "40",
            2,
        ),
    ],
    "Kitchen": [
        ("Slow cooker", "6.5 litre.", "", "Pot\nLid\nBase", "30", 1),
        ("Stand mixer", "With whisk, beater and dough hook.", "", "Mixer\nBowl\nWhisk\nBeater\nDough hook", "180", 1),
        ("Dehydrator", "For fruit, herbs and jerky.", "", "Dehydrator\nTrays x5", "50", 1),
        ("Pasta maker", "Hand-cranked.", "", "Machine\nClamp\nHandle", "35", 1),
    ],
    "Outdoors": [
        ("Four-person tent", "Dome tent, sleeps four.", "", "Tent\nPoles\nPegs\nGuy lines", "120", 2),
        ("Camping stove", "Twin burner, uses gas cartridges.", "Use outdoors only.", "Stove\nCarry case", "45", 1),
        ("Cool box", "Electric, 24 litre.", "", "Cool box\nCar lead\nMains lead", "70", 1),
        ("Bike pump", "Track pump with gauge; Presta and Schrader.", "", "", "25", 1),
    ],
    "Events": [
        (
            "Gazebo (3 x 3 m)",
            "Pop-up gazebo with sides.",
            "Weigh down in wind.",
            "Frame\nRoof\nSides x4\nPegs",
            "90",
            1,
        ),
        ("Urn (20 litre)", "Hot water urn for events.", "Hot water.", "", "65", 1),
        ("PA speaker", "Portable speaker with microphone.", "", "Speaker\nMicrophone\nLead", "150", 1),
        ("Folding tables (set of 2)", "", "", "", "60", 1),
    ],
}


async def _category_ids() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in CATALOGUE:
        parent = None
        so_far = []
        for name in path.split(" › "):
            so_far.append(name)
            key = " › ".join(so_far)
            existing = next((n for n in await catalog.category_tree() if n.path == key), None)
            node = existing or await catalog.create_category(name=name, parent_id=parent)
            found[key] = parent = node.id
    return found


async def _load_catalogue(progress: Callable[[str], None]) -> None:
    existing_sites = {site.name: site.id for site in await catalog.list_sites()}
    for name, address in SITES:
        if name not in existing_sites:
            existing_sites[name] = (await catalog.create_site(name=name, address=address)).id
    site_ids = list(existing_sites.values())
    categories = await _category_ids()
    total = sum(len(things) for things in CATALOGUE.values())
    done = 0
    for path, things in CATALOGUE.items():
        for name, description, safety, parts, value, copies in things:
            done += 1
            if await ItemGroup.exists().where(ItemGroup.name == name).run():
                continue
            details = ItemDetails(
                name=name,
                description=description,
                category_id=categories[path],
                safety_notes=safety,
                parts=parts,
                replacement_value=value,
                loan_days=7,
                site_id=site_ids[done % len(site_ids)],
                donor="Demo donor" if done % 3 else "",
            )
            first = await catalog.add_item(details=details)
            await catalog.add_photo(code=first.code, data=photos.placeholder_photo(name, seed=done))
            for _ in range(copies - 1):
                await catalog.add_item(details=details, copy_of=first.code)
            progress(f"Catalogue: {done}/{total} {name}")


TIERS = [
    TierInput(
        name="Pay what you can",
        position=0,
        interval="one_off",
        min_pence=100,
        max_pence=10000,
        allow_free=True,
        suggested=[0, 500, 1500, 3000],
        gift_aid=True,
        description="Choose what you can afford for a year's membership, including nothing. Nobody asks "
        "why: what members pay and pay forward keeps the library open to everyone.",
    ),
    TierInput(
        name="Monthly supporter",
        position=1,
        interval="month",
        min_pence=100,
        max_pence=5000,
        suggested=[200, 500, 1000],
        loan_limit=5,
        description="A small amount every month, stopped whenever you like.",
    ),
    TierInput(
        name="Concession",
        position=2,
        interval="one_off",
        min_pence=0,
        max_pence=0,
        allow_free=True,
        public=False,
        offer_pay_forward=False,
        description="Free membership arranged at the counter.",
    ),
]

AGREEMENT = (
    "Look after what you borrow and bring it back clean, complete and on time.\n\n"
    "Tell us about anything broken or missing: accidents happen, and we would rather fix things than guess.\n\n"
    "Use things safely and follow the safety notes on each item's page. You borrow at your own risk."
)
AGREEMENT_CY = (
    "Gofalwch am yr hyn rydych chi'n ei fenthyg a dewch ag ef yn ôl yn lân, yn gyflawn ac mewn pryd.\n\n"
    "Dywedwch wrthym am unrhyw beth sydd wedi torri neu ar goll: mae damweiniau'n digwydd, ac mae'n well gennym "
    "drwsio pethau na dyfalu.\n\n"
    "Defnyddiwch bethau'n ddiogel a dilynwch y nodiadau diogelwch ar dudalen pob eitem. Rydych chi'n benthyg ar "
    "eich menter eich hun."
)


async def _load_memberships(progress: Callable[[str], None]) -> None:
    """Tiers, the agreement, and members on each: one paid in cash with pay-it-forward and Gift
    Aid, one free, one waiting to pay at the counter."""
    existing = {tier.name: tier for tier in await tiers.list_tiers(include_inactive=True)}
    for values in TIERS:
        if values.name not in existing:
            existing[values.name] = await tiers.save_tier(values=values)
            progress(f"Added the membership {values.name}.")
    if await agreements.current_agreement() is None:
        await agreements.publish_agreement(body=AGREEMENT, body_cy=AGREEMENT_CY)
        progress("Published the borrowing agreement.")
    volunteer = await Account.select(Account.id).where(Account.email == "volunteer@demo.example").first().run()
    plans = [
        ("member@demo.example", "Pay what you can", 1500, 500, True),
        ("member2@demo.example", "Pay what you can", 0, 0, False),
        ("member3@demo.example", "Monthly supporter", None, 0, False),
    ]
    for email, tier_name, amount, forward, gift_aid in plans:
        member = await Account.select(Account.id, Account.name).where(Account.email == email).first().run()
        if member is None or await Membership.exists().where(Membership.member == member["id"]).run():
            continue
        tier = existing[tier_name]
        if amount is None:
            # Chose to pay monthly online, but this demo has no Stripe: it waits for the counter.
            agreement = await agreements.current_agreement()
            await joining.start_membership(
                member_id=member["id"],
                tier=tier.id,
                amount=300,
                agreement_version=agreement.version if agreement else None,
                gateway=NO_GATEWAY,
                base_url="",
                public_only=False,
            )
        else:
            await counter_payments.record_counter_payment(
                member_id=member["id"],
                tier=tier.id,
                amount=amount,
                forward=forward,
                method="cash",
                gift_aid=GiftAid(full_name=member["name"], house="12", postcode="CF5 1QJ") if gift_aid else None,
                actor_id=volunteer["id"] if volunteer else None,
            )
        progress(f"Membership for {member['name']}: {tier_name}.")


async def _load_lending(progress: Callable[[str], None]) -> None:
    """Opening hours, a Christmas closure and a few loans: one in Alex's history, one overdue
    with Sam (so the desk shows why Sam cannot borrow more) and Alex waiting for it."""
    from datetime import date, timedelta

    if not (await venues.calendar(fresh=True)).sessions:
        await venues.set_hours(
            timezone_name="Europe/London",
            hours={1: "10:00-13:00, 14:00-17:00", 3: "10:00-13:00, 14:00-19:00", 5: "10:00-16:00"},
        )
        year = clock.now().year
        await venues.add_closure(starts_on=date(year, 12, 24), ends_on=date(year + 1, 1, 1), reason="Christmas")
        progress("Set the opening hours and a Christmas closure.")
    if not (await venues.settings(fresh=True)).set_up:
        await venue_details.save_venue_details(
            details=venues.rules.VenueDetails(
                name="Cardiff Library of Things",
                email="hello@demo.example",
                phone="029 2000 0000",
                address="Library Street, Cardiff CF5 1QJ",
                website="https://library.demo.example",
            )
        )
        hub = await Site.select(Site.id).where(Site.name == "Grangetown Hub").first().run()
        if hub:
            await venues.set_hours(site_id=hub["id"], hours={2: "16:00-19:00", 5: "10:00-13:00"})
            year = clock.now().year
            await venues.add_closure(
                site_id=hub["id"],
                starts_on=date(year + 1, 2, 16),
                ends_on=date(year + 1, 2, 20),
                reason="Half-term: the hub is closed",
            )
        progress("Named the venue; the Grangetown Hub has its own hours.")
    if await Loan.count().run():
        return
    volunteer = await Account.select(Account.id).where(Account.email == "volunteer@demo.example").first().run()
    alex = await Account.select(Account.id).where(Account.email == "member@demo.example").first().run()
    sam = await Account.select(Account.id).where(Account.email == "member2@demo.example").first().run()
    if not (volunteer and alex and sam):
        return
    available = [
        row["code"]
        for row in await Item.select(Item.code).where(Item.status == "available").order_by(Item.id).limit(3).run()
    ]
    if len(available) < 2:
        return
    now = clock.now()
    [past] = await checkout.check_out(
        member_id=alex["id"],
        item_codes=[available[0]],
        actor_id=volunteer["id"],
        via="cli",
        lent_at=now - timedelta(days=20),
    )
    await checkin.check_in(
        loan_id=past.id, returned_at=now - timedelta(days=14), condition="good", actor_id=volunteer["id"], via="cli"
    )
    await checkout.check_out(
        member_id=sam["id"],
        item_codes=[available[1]],
        actor_id=volunteer["id"],
        via="cli",
        lent_at=now - timedelta(days=12),
    )
    await holds.place_hold(member_id=alex["id"], item_code=available[1], via="cli")
    progress("Lent a few things: Sam has one overdue, Alex is waiting for it.")


async def _load_referrals(progress: Callable[[str], None]) -> None:
    """Referral settings (the Concession tier) and referrals in every state from both
    organisations: issued, redeemed (with a first loan), expired, withdrawn and completed."""
    from datetime import timedelta

    settings = await referrals.settings()
    if settings.tier_id is None:
        tier = next(t for t in await tiers.list_tiers(include_inactive=True) if t.name == "Concession")
        await referrals.save_settings(
            tier_id=tier.id, months_options="3, 6, 12", redeem_days="60", erase_after_days="365"
        )
    if await Referral.count().run():
        return
    lowri = await members.account_by_email(email="linkworker@demo.example")
    huw = await members.account_by_email(email="linkworker2@demo.example")
    today = clock.now().date()

    def person(name: str, **changes) -> rules.Details:
        values = dict(
            name=name,
            contact_route="through_me",
            months=6,
            redeem_by=today + timedelta(days=45),
            consent_referral=True,
            consent_share=True,
            need_category="connection",
        )
        values.update(changes)
        return rules.Details(**values)

    await referrals.issue_referral(issuer=lowri, details=person("Gareth", language="cy", need_category="skills"))
    used = await referrals.issue_referral(issuer=lowri, details=person("Rhian", months=3, need_category="home"))
    old = await referrals.issue_referral(issuer=lowri, details=person("Megan", consent_share=False))
    gone = await referrals.issue_referral(issuer=huw, details=person("Owen"))
    done = await referrals.issue_referral(issuer=huw, details=person("Ceri", months=3, need_category="money"))
    rhian = await members.create_account(
        name="Rhian Hughes", email="rhian@demo.example", role="member", password="demo-member4"
    )
    await referrals.redeem(code=used.code, member_id=rhian.id, address="demo")
    ceri = await members.create_account(
        name="Ceri Price", email="ceri@demo.example", role="member", password="demo-member5"
    )
    await referrals.redeem(code=done.code, member_id=ceri.id, address="demo")
    await referrals.withdraw(viewer=huw, code=gone.code)
    # Time passes for two of them: Megan's code was never used; Ceri's free months have ended.
    await Referral.update({Referral.redeem_by: today - timedelta(days=3)}).where(Referral.code == old.code).run()
    await Referral.update({Referral.ends_at: clock.now() - timedelta(days=1)}).where(Referral.code == done.code).run()
    await referrals.sweep()

    free = (
        await Item.select(Item.code).where(Item.status == "available").order_by(Item.id, ascending=False).first().run()
    )
    if free:
        volunteer = await members.account_by_email(email="volunteer@demo.example")
        await checkout.check_out(member_id=rhian.id, item_codes=[free["code"]], actor_id=volunteer.id, via="cli")
    progress("Added referrals in every state from both organisations.")
