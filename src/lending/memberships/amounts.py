"""What a member chooses to pay (pay what you can, no means test): an amount read from a form or
the API, the tier and amounts checked together with every problem by field, and the Gift Aid
declaration made with a payment. Joining, the counter and members' own changes share it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lending import errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.memberships import rules
from lending.memberships.gateway import StripeGateway
from lending.memberships.tables import GiftAidDeclaration
from lending.memberships.tiers import TierView, find_tier


@dataclass(frozen=True)
class GiftAid:
    """A Gift Aid declaration as entered with a payment."""

    full_name: str
    house: str
    postcode: str


def read_amount(value: object, *, pounds: bool, field_name: str = "amount") -> int:
    """An amount from a form (pounds, as typed) or the API (pence), or a clear error."""
    parsed = rules.parse_pounds(str(value or "")) if pounds else rules.parse_pence(value)
    if isinstance(parsed, rules.AmountProblem):
        raise errors.InvalidInput(parsed.message, code=parsed.code, field=field_name)
    if parsed > rules.MAX_AMOUNT_PENCE:
        raise errors.InvalidInput(
            _l("The largest amount for this membership is %(max)s.", max=rules.format_money(rules.MAX_AMOUNT_PENCE)),
            code="amount_above_maximum",
            field=field_name,
        )
    return parsed


def amount_problems(tier: TierView, amount_pence: int, forward_pence: int, *, online: bool) -> dict[str, tuple]:
    """What is wrong with an amount and its pay-it-forward part on this tier, by field as (code, message)."""
    found: dict[str, tuple] = {}
    if problem := rules.amount_problem(tier.terms, amount_pence, online=online):
        found["amount"] = (problem.code, problem.message)
    if problem := rules.forward_problem(tier.terms, forward_pence):
        found["forward"] = (problem.code, problem.message)
    if online and amount_pence == 0 and forward_pence:
        found.setdefault(
            "forward",
            (
                "pay_forward_with_free",
                _l("A free membership cannot include a pay-it-forward amount: add it when you pay."),
            ),
        )
    return found


def raise_problems(problems: dict[str, tuple], extra: dict[str, str] | None = None) -> None:
    """Every problem at once as one InvalidInput (with the first one's code), beside ``extra``
    messages by field; nothing when there are none."""
    messages = {key: message for key, (_code, message) in problems.items()}
    messages.update(extra or {})
    if not messages:
        return
    first_code = next(iter(problems.values()))[0] if problems else "invalid_input"
    detail = next(iter(problems.values()))[1] if len(messages) == 1 and problems else _l("Check what you entered.")
    raise errors.InvalidInput(detail, code=first_code if problems else "invalid_input", errors=messages)


def gift_aid_problems(gift_aid: GiftAid | None) -> dict[str, str]:
    """What is wrong with a Gift Aid declaration as entered, by field."""
    if gift_aid is None:
        return {}
    return rules.gift_aid_problems(full_name=gift_aid.full_name, house=gift_aid.house, postcode=gift_aid.postcode)


async def declare_gift_aid(member_id: int, gift_aid: GiftAid | None, now: datetime) -> int | None:
    """Inside a write transaction: the declaration recorded; returns its id (None without one)."""
    if gift_aid is None:
        return None
    rows = (
        await GiftAidDeclaration.insert(
            GiftAidDeclaration(
                member=member_id,
                full_name=" ".join(gift_aid.full_name.split()),
                house=gift_aid.house.strip(),
                postcode=rules.normalise_postcode(gift_aid.postcode),
                declared_at=now,
            )
        )
        .returning(GiftAidDeclaration.id)
        .run()
    )
    await audit.record(action="gift_aid.declare", actor_id=member_id, subject=f"account:{member_id}", at=now)
    return rows[0]["id"]


@dataclass(frozen=True)
class Choice:
    """A tier and the amounts chosen on it, checked."""

    tier: TierView
    amount_pence: int
    forward_pence: int


async def check_choice(
    *,
    tier: int | str | None,
    amount: object,
    forward: object,
    pounds: bool,
    gateway: StripeGateway,
    public_only: bool,
    gift_aid: GiftAid | None = None,
    interval: str | None = None,
) -> tuple[Choice | None, dict[str, tuple]]:
    """The tier and amounts chosen, or every problem with them by field as (code, message)."""
    problems: dict[str, tuple] = {}
    try:
        chosen = await find_tier(tier=tier, public_only=public_only, interval=interval)
    except (errors.InvalidInput, errors.NotFound) as exc:
        return None, {"tier": (exc.code, exc.detail)}
    amounts = {}
    for name, value in (("amount", amount), ("forward", forward)):
        try:
            amounts[name] = read_amount(value, pounds=pounds, field_name=name)
        except errors.InvalidInput as exc:
            problems[name] = (exc.code, exc.detail)
    if problems:
        return None, problems
    online = amounts["amount"] > 0 and gateway.configured
    problems = amount_problems(chosen, amounts["amount"], amounts["forward"], online=online)
    if gift_aid is not None and not chosen.gift_aid:
        problems["gift_aid"] = ("gift_aid_not_offered", _l("This membership does not take Gift Aid declarations."))
    if problems:
        return None, problems
    return Choice(tier=chosen, amount_pence=amounts["amount"], forward_pence=amounts["forward"]), {}
