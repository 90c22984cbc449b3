"""Membership tiers: what each one offers and lets a member borrow, the amounts it takes, and a
coordinator's changes to them (on the tiers page, or in piccolo_admin by the same rules)."""

from __future__ import annotations

from dataclasses import dataclass

from lending import clock, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.memberships import rules
from lending.memberships.tables import Tier


@dataclass(frozen=True)
class TierView:
    id: int
    name: str
    description: str
    suggested: list[int]
    min_pence: int
    max_pence: int
    allow_free: bool
    interval: str
    offer_pay_forward: bool
    gift_aid: bool
    loan_limit: int
    loan_days: int
    public: bool
    active: bool
    position: int

    @property
    def terms(self) -> rules.TierTerms:
        return rules.TierTerms(
            min_pence=self.min_pence,
            max_pence=self.max_pence,
            allow_free=self.allow_free,
            interval=self.interval,
            offer_pay_forward=self.offer_pay_forward,
        )

    @property
    def recurring(self) -> bool:
        return rules.is_recurring(self.interval)

    @property
    def choices(self) -> list[int]:
        """The amounts offered first: the suggestions, and nothing where nothing is allowed."""
        return self.suggested if not self.allow_free or 0 in self.suggested else [0, *self.suggested]

    @property
    def online_min_pence(self) -> int:
        """The smallest amount a member can pay through Stripe."""
        return max(self.min_pence, rules.STRIPE_MINIMUM_PENCE)


def _tier_view(row: dict) -> TierView:
    return TierView(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        suggested=rules.parse_suggested(row["suggested_pence"]),
        min_pence=row["min_pence"],
        max_pence=row["max_pence"],
        allow_free=bool(row["allow_free"]),
        interval=row["interval"],
        offer_pay_forward=bool(row["offer_pay_forward"]),
        gift_aid=bool(row["gift_aid"]),
        loan_limit=row["loan_limit"],
        loan_days=row["loan_days"],
        public=bool(row["public"]),
        active=bool(row["active"]),
        position=row["position"],
    )


async def list_tiers(*, public_only: bool = False, include_inactive: bool = False) -> list[TierView]:
    query = Tier.select().order_by(Tier.position).order_by(Tier.min_pence).order_by(Tier.id)
    if not include_inactive:
        query = query.where(Tier.active == True)  # noqa: E712
    if public_only:
        query = query.where(Tier.public == True)  # noqa: E712
    return [_tier_view(row) for row in await query.run()]


async def get_tier(*, tier_id: int) -> TierView:
    row = await Tier.select().where(Tier.id == tier_id).first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such membership."), code="tier_not_found", field="tier")
    return _tier_view(row)


async def find_tier(*, tier: int | str | None, public_only: bool = False, interval: str | None = None) -> TierView:
    """A tier by id or name; without one, the only tier offered (with ``interval``, the only
    one paid that often)."""
    if tier in (None, ""):
        offered = [t for t in await list_tiers(public_only=public_only) if interval in (None, t.interval)]
        if len(offered) == 1:
            return offered[0]
        raise errors.InvalidInput(_l("Choose a membership."), code="tier_required", field="tier")
    if isinstance(tier, int) or str(tier).strip().isdigit():
        found = await get_tier(tier_id=int(tier))
    else:
        row = await Tier.select().where(Tier.name == str(tier).strip()).first().run()
        if row is None:
            raise errors.NotFound(_l("There is no such membership."), code="tier_not_found", field="tier")
        found = _tier_view(row)
    if not found.active or (public_only and not found.public):
        raise errors.NotFound(_l("There is no such membership."), code="tier_not_found", field="tier")
    return found


TierInput = rules.TierInput  # what a coordinator sets for a tier (pure; the setup file checks the same)


def _tier_columns(values: TierInput, name: str) -> dict:
    """The tier's columns as ``save_tier`` writes them (``name`` already tidied)."""
    return {
        Tier.name: name,
        Tier.description: values.description.strip(),
        Tier.suggested_pence: ",".join(str(p) for p in sorted(set(values.suggested))),
        Tier.min_pence: values.min_pence,
        Tier.max_pence: values.max_pence,
        Tier.allow_free: values.allow_free,
        Tier.interval: values.interval,
        Tier.offer_pay_forward: values.offer_pay_forward,
        Tier.gift_aid: values.gift_aid,
        Tier.loan_limit: values.loan_limit,
        Tier.loan_days: values.loan_days,
        Tier.public: values.public,
        Tier.active: values.active,
        Tier.position: values.position,
    }


async def save_tier(*, values: TierInput, tier_id: int | None = None, actor_id: int | None = None) -> TierView:
    """Add a tier or change one. Its bounds must hold its suggested amounts, and a recurring
    tier's smallest amount must reach Stripe's minimum charge. Existing memberships keep the
    amount their members chose; the new terms apply to the next sign-up or renewal."""
    name = " ".join(values.name.split())
    problems = rules.tier_problems(
        name=name,
        min_pence=values.min_pence,
        max_pence=values.max_pence,
        suggested=values.suggested,
        interval=values.interval,
        loan_limit=values.loan_limit,
        loan_days=values.loan_days,
        allow_free=values.allow_free,
    )
    if len(values.description) > 2000:
        problems["description"] = _l("Keep the explanation to at most 2000 characters.")
    if problems:
        raise errors.InvalidInput(_l("Check the membership's settings."), code="invalid_tier", errors=problems)
    data = _tier_columns(values, name)
    taken = errors.Conflict(
        _l("There is already a membership called %(name)s.", name=name), code="tier_name_taken", field="name"
    )
    with db.unique_violation_as(lambda: taken):
        async with db.transaction(write=True):
            clash = Tier.exists().where(Tier.name == name)
            if tier_id is not None:
                clash = clash.where(Tier.id != tier_id)
            if await clash.run():
                raise taken
            if tier_id is None:
                rows = (
                    await Tier.insert(
                        Tier(**{column._meta.name: value for column, value in data.items()}, created_at=clock.now())
                    )
                    .returning(Tier.id)
                    .run()
                )
                tier_id = rows[0]["id"]
                action = "tier.create"
            else:
                rows = await Tier.update(data).where(Tier.id == tier_id).returning(Tier.id).run()
                if not rows:
                    raise errors.NotFound(_l("There is no such membership."), code="tier_not_found")
                action = "tier.update"
            await audit.record(action=action, actor_id=actor_id, subject=f"tier:{tier_id}")
    return await get_tier(tier_id=tier_id)


async def admin_tier_values(*, values: dict, tier_id: int | None = None) -> dict:
    """The same rules as the tiers page for a tier edited in piccolo_admin: the merged row must
    be a valid tier, else InvalidInput. Returns the values to write."""
    current = {}
    if tier_id is not None:
        current = await Tier.select().where(Tier.id == tier_id).first().run() or {}
    merged = {**current, **values}
    name = " ".join(str(merged.get("name") or "").split())
    suggested = rules.parse_suggested(str(merged.get("suggested_pence") or ""))
    try:
        numbers = {key: int(merged.get(key) or 0) for key in ("min_pence", "max_pence", "loan_limit", "loan_days")}
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(_l("Check the membership's settings."), code="invalid_tier") from exc
    problems = rules.tier_problems(
        name=name,
        suggested=suggested,
        interval=str(merged.get("interval") or ""),
        allow_free=bool(merged.get("allow_free")),
        **numbers,
    )
    clash = Tier.exists().where(Tier.name == name)
    if tier_id is not None:
        clash = clash.where(Tier.id != tier_id)
    if name and await clash.run():
        problems["name"] = _l("There is already a membership called %(name)s.", name=name)
    if problems:
        raise errors.InvalidInput(_l("Check the membership's settings."), code="invalid_tier", errors=problems)
    cleaned = dict(values)
    if "name" in cleaned:
        cleaned["name"] = name
    if "suggested_pence" in cleaned:
        cleaned["suggested_pence"] = ",".join(str(p) for p in suggested)
    return cleaned
