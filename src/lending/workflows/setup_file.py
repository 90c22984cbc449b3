"""Download a venue's setup, and start a new venue from one (``setup_file_rules`` reads the file).

Export writes the same bytes for the same setup (no timestamps, a fixed order), so a file
exported, imported into an empty database and exported again is identical. Import checks the
whole file first and writes nothing unless all of it is good, then writes everything in one
transaction, into a venue that has not been set up yet.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace

from lending import clock, config_cache, db, errors
from lending.adapters import photos
from lending.adapters.labels import TEMPLATES
from lending.audit import services as audit
from lending.catalog import services as catalog
from lending.catalog.tables import Category, Item, ItemGroup
from lending.i18n import lazy_gettext as _l
from lending.loans.tables import LoanPolicy
from lending.mail.tables import EmailTemplate
from lending.memberships.tables import Agreement, Tier
from lending.referrals.tables import ReferralSettings
from lending.venues import rules
from lending.venues import services as venues
from lending.venues.tables import Closure, OpeningSession, Site, Venue
from lending.workflows import setup_file_rules

_POLICY_FIELDS = (*(name for name in setup_file_rules.loan_rules.POLICY_BOUNDS), "fees_enabled")
_BATCH = 500  # rows per INSERT (SQLite allows 32,766 parameters; a thing has 9)
_TIER_FIELDS = (
    "name",
    "description",
    "suggested_pence",
    "min_pence",
    "max_pence",
    "allow_free",
    "interval",
    "offer_pay_forward",
    "gift_aid",
    "loan_limit",
    "loan_days",
    "public",
    "active",
)


def _closure_out(closure: rules.Closure) -> dict:
    return {
        "starts_on": closure.starts_on.isoformat(),
        "ends_on": closure.ends_on.isoformat(),
        "reason": closure.reason,
    }


async def export_setup(*, include_catalogue: bool = False, actor_id: int | None = None) -> dict:
    """The venue's setup as the file's object. Closures that have ended are left out."""
    snap = await venues.snapshot(fresh=True)
    settings = snap.settings
    today = venues.today(snap.calendar())
    logo = await venues.logo()

    def upcoming(closures: tuple[rules.Closure, ...]) -> list[dict]:
        return [_closure_out(c) for c in closures if c.ends_on >= today]

    sites = []
    for row in await Site.select(Site.id, Site.name, Site.address).order_by(Site.name).run():
        own = snap.sessions.get(row["id"])
        sites.append(
            {
                "name": row["name"],
                "address": row["address"],
                "hours": setup_file_rules.weekday_hours(own) if own else None,
                "closures": upcoming(snap.closures.get(row["id"], ())),
            }
        )
    policy = await LoanPolicy.select().order_by(LoanPolicy.id).first().run()
    defaults = setup_file_rules.loan_rules.Policy()
    tiers = []
    tier_names: dict[int, str] = {}
    for row in await Tier.select().order_by(Tier.position).order_by(Tier.min_pence).order_by(Tier.id).run():
        tier_names[row["id"]] = row["name"]
        tier = {name: row[name] for name in _TIER_FIELDS}
        tier["suggested_pence"] = sorted({int(p) for p in row["suggested_pence"].split(",") if p.strip().isdigit()})
        for flag in ("allow_free", "offer_pay_forward", "gift_aid", "public", "active"):
            tier[flag] = bool(tier[flag])
        tiers.append(tier)
    referral = await ReferralSettings.select().order_by(ReferralSettings.id).first().run()
    document: dict = {
        "format": setup_file_rules.FORMAT,
        "version": setup_file_rules.VERSION,
        "venue": {
            "name": settings.name,
            "timezone": settings.timezone,
            "currency": settings.currency,
            "email": settings.email,
            "phone": settings.phone,
            "address": settings.address,
            "website": settings.website,
            "colour": settings.colour,
            "languages": list(settings.languages),
            "label_template": settings.label_template,
            "logo_png_base64": base64.b64encode(logo).decode("ascii") if logo else None,
        },
        "hours": setup_file_rules.weekday_hours(snap.sessions.get(None, ())),
        "closures": upcoming(snap.closures.get(None, ())),
        "sites": sites,
        "loan_policy": {
            name: (bool(policy[name]) if name == "fees_enabled" else policy[name])
            if policy
            else getattr(defaults, name)
            for name in _POLICY_FIELDS
        },
        "membership_tiers": tiers,
        "referral_settings": None
        if referral is None
        else {
            "tier": tier_names.get(referral["tier"]),
            "months_options": [int(m) for m in referral["months_options"].split(",") if m.strip().isdigit()],
            "redeem_days": referral["redeem_days"],
            "erase_after_days": referral["erase_after_days"],
        },
        "categories": [],
        "agreements": [
            {"version": row["version"], "body": row["body"], "body_cy": row["body_cy"]}
            for row in await Agreement.select().order_by(Agreement.version).run()
        ],
        "email_templates": [
            {"kind": row["kind"], "language": row["language"], "subject": row["subject"], "body": row["body"]}
            for row in await EmailTemplate.select().order_by(EmailTemplate.kind).order_by(EmailTemplate.language).run()
        ],
    }
    paths, loan_days = await _category_paths()
    document["categories"] = [
        {"path": list(path), "loan_days": loan_days[category_id]} for category_id, path in paths.items()
    ]
    if include_catalogue:
        copies: dict[int, int] = {}
        for row in await Item.select(Item.item_group).where(Item.status != "retired").run():
            copies[row["item_group"]] = copies.get(row["item_group"], 0) + 1
        things = []
        for row in await ItemGroup.select().run():
            parts = row["parts"]
            parts = json.loads(parts) if isinstance(parts, str) else (parts or [])
            things.append(
                {
                    "name": row["name"],
                    "category": list(paths[row["category"]]) if row["category"] in paths else None,
                    "description": row["description"],
                    "safety_notes": row["safety_notes"],
                    "parts": [str(p) for p in parts],
                    "loan_days": row["loan_days"],
                    "copies": max(copies.get(row["id"], 0), row["wanted"]),
                }
            )
        document["catalogue"] = sorted(things, key=lambda t: (t["name"].casefold(), t["name"], t["description"]))
    if actor_id is not None:
        await audit.record(
            action="venue.export",
            actor_id=actor_id,
            subject="venue",
            detail="with catalogue" if include_catalogue else "",
        )
    return document


async def _category_paths() -> tuple[dict[int, tuple[str, ...]], dict[int, int | None]]:
    """({category id: its path from the top} in tree order, parents first; {id: loan days})."""

    paths: dict[int, tuple[str, ...]] = {}
    loan_days: dict[int, int | None] = {}
    for node in await catalog.category_tree():
        paths[node.id] = (*paths[node.parent_id], node.name) if node.parent_id else (node.name,)
        loan_days[node.id] = node.loan_days
    return paths, loan_days


def dumps(document: dict) -> str:
    """The file's text: indented JSON, keys in the order written, one newline at the end."""
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


async def export_text(*, include_catalogue: bool = False, actor_id: int | None = None) -> str:
    return dumps(await export_setup(include_catalogue=include_catalogue, actor_id=actor_id))


# --- import ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    venue_name: str
    counts: dict[str, int]


def _invalid(problems: list[tuple[str, str]]) -> errors.InvalidInput:
    report: dict[str, str] = {}
    for where, message in problems:
        report[where] = f"{report[where]} {message}" if where in report else message
    return errors.InvalidInput(
        _l("The setup file has %(count)d problem(s); nothing was imported.", count=len(problems)),
        code="invalid_setup",
        errors=report,
    )


def check_text(text: str | bytes) -> setup_file_rules.Setup:
    """The checked file, or InvalidInput (``invalid_setup``) with every problem by where it is."""
    try:
        setup = setup_file_rules.check(setup_file_rules.parse_text(text), label_templates=tuple(TEMPLATES))
    except setup_file_rules.SetupProblems as exc:
        raise _invalid(exc.problems) from None
    if setup.logo_png is not None:
        try:
            logo = photos.logo_png(setup.logo_png)
        except errors.InvalidInput as exc:
            raise _invalid([("venue.logo_png_base64", str(exc.detail))]) from None
        setup = replace(setup, logo_png=logo)
    return setup


async def is_set_up() -> bool:
    """Whether this venue already has a setup of its own, which an import would mix with."""
    if (await venues.settings(fresh=True)).set_up:
        return True
    for table in (Site, Category, ItemGroup, Tier, Agreement, EmailTemplate, OpeningSession, Closure):
        if await table.exists().run():
            return True
    return False


async def import_text(text: str | bytes, *, actor_id: int | None = None) -> ImportResult:
    """Start this venue from a setup file: check all of it, then write all of it, or nothing."""
    setup = check_text(text)
    async with db.transaction(write=True):
        if await is_set_up():
            raise errors.Conflict(
                _l(
                    "This venue is already set up, so a setup file cannot be imported into it. "
                    "Start from a setup on a new, empty installation."
                ),
                code="venue_already_set_up",
            )
        await _write(setup)
        await audit.record(
            action="venue.import",
            actor_id=actor_id,
            subject="venue",
            detail=", ".join(f"{k}={v}" for k, v in setup.counts.items()),
        )
        await config_cache.changed()
    return ImportResult(venue_name=setup.venue.name, counts=setup.counts)


def _sessions_rows(sessions, site_id: int | None) -> list[OpeningSession]:
    return [
        OpeningSession(
            site=site_id, weekday=s.weekday, opens=s.opens.strftime("%H:%M"), closes=s.closes.strftime("%H:%M")
        )
        for s in sessions
    ]


def _closure_rows(closures, site_id: int | None, now) -> list[Closure]:
    return [
        Closure(site=site_id, starts_on=c.starts_on, ends_on=c.ends_on, reason=c.reason, created_at=now)
        for c in closures
    ]


async def _write(setup: setup_file_rules.Setup) -> None:
    now = clock.now()
    v = setup.venue
    await Venue.delete(force=True).run()
    await Venue.insert(
        Venue(
            name=v.name,
            timezone=v.timezone,
            currency=v.currency,
            email=v.email,
            phone=v.phone,
            address=v.address,
            website=v.website,
            colour=v.colour,
            logo=setup.logo_png,
            languages=",".join(v.languages),
            label_template=v.label_template,
            updated_at=now,
        )
    ).run()
    rows = _sessions_rows(setup.hours, None)
    closures = _closure_rows(setup.closures, None, now)
    for site in setup.sites:
        created = await Site.insert(Site(name=site.name, address=site.address, created_at=now)).returning(Site.id).run()
        rows += _sessions_rows(site.hours or (), created[0]["id"])
        closures += _closure_rows(site.closures, created[0]["id"], now)
    if rows:
        await OpeningSession.insert(*rows).run()
    if closures:
        await Closure.insert(*closures).run()
    await LoanPolicy.delete(force=True).run()
    await LoanPolicy.insert(LoanPolicy(**setup.loan_policy, updated_at=now)).run()
    tier_ids: dict[str, int] = {}
    for tier in setup.tiers:
        values = {name: getattr(tier, name) for name in _TIER_FIELDS if name != "suggested_pence"}
        values["suggested_pence"] = ",".join(str(p) for p in tier.suggested)
        created = await Tier.insert(Tier(**values, position=tier.position, created_at=now)).returning(Tier.id).run()
        tier_ids[tier.name.casefold()] = created[0]["id"]
    if setup.referral_settings is not None:
        referral = setup.referral_settings
        await ReferralSettings.delete(force=True).run()
        await ReferralSettings.insert(
            ReferralSettings(
                tier=tier_ids.get((referral["tier"] or "").casefold()),
                months_options=",".join(str(m) for m in referral["months_options"]),
                redeem_days=referral["redeem_days"],
                erase_after_days=referral["erase_after_days"],
                updated_at=now,
            )
        ).run()
    category_ids: dict[tuple[str, ...], int] = {}
    siblings: dict[tuple[str, ...], int] = {}
    for category in setup.categories:
        parent_key = tuple(p.casefold() for p in category.path[:-1])
        position = siblings.get(parent_key, 0)
        siblings[parent_key] = position + 1
        created = (
            await Category.insert(
                Category(
                    name=category.path[-1],
                    parent=category_ids.get(parent_key),
                    position=position,
                    loan_days=category.loan_days,
                    created_at=now,
                )
            )
            .returning(Category.id)
            .run()
        )
        category_ids[tuple(p.casefold() for p in category.path)] = created[0]["id"]
    for version, body, body_cy in setup.agreements:
        await Agreement.insert(Agreement(version=version, body=body, body_cy=body_cy, published_at=now)).run()
    if setup.email_templates:
        await EmailTemplate.insert(
            *[
                EmailTemplate(kind=kind, language=language, subject=subject, body=body, updated_at=now)
                for kind, language, subject, body in setup.email_templates
            ]
        ).run()
    # Things to acquire: no copies yet, so nothing to search for until the first arrives (adding
    # it indexes the thing). Inserted in batches: one statement each would take a minute at 100,000.
    things = [
        ItemGroup(
            name=thing.name,
            description=thing.description,
            category=category_ids.get(tuple(p.casefold() for p in thing.category)) if thing.category else None,
            safety_notes=thing.safety_notes,
            parts=json.dumps(list(thing.parts)),
            loan_days=thing.loan_days,
            wanted=thing.copies,
            created_at=now,
            updated_at=now,
        )
        for thing in setup.catalogue or ()
    ]
    for start in range(0, len(things), _BATCH):
        await ItemGroup.insert(*things[start : start + _BATCH]).run()
