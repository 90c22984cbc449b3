"""Members' own changes to a membership that renews itself online: cancelling it at the end of
the period paid for, or paying a different amount from the next renewal on."""

from __future__ import annotations

from lending import clock, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.memberships.amounts import amount_problems, raise_problems, read_amount
from lending.memberships.gateway import StripeGateway
from lending.memberships.records import MembershipView, current_membership, get_membership
from lending.memberships.rules import Status
from lending.memberships.tables import Membership
from lending.memberships.tiers import get_tier
from lending.venues import services as venues


async def _recurring_membership(member_id: int) -> MembershipView:
    found = await current_membership(member_id=member_id)
    if found is None or not found.recurring_online or found.status not in (Status.active.value, Status.past_due.value):
        raise errors.Conflict(
            _l("Only a membership that renews itself online can be changed here."), code="not_recurring"
        )
    return found


async def cancel_recurring(*, member_id: int, gateway: StripeGateway, actor_id: int | None = None) -> MembershipView:
    """Stop a recurring membership at the end of the period already paid for: the member keeps
    borrowing until then, and Stripe charges nothing more."""
    membership = await _recurring_membership(member_id)
    if membership.cancel_at_period_end:
        return membership
    await gateway.cancel_at_period_end(
        subscription_id=membership.stripe_subscription or "", reference=membership.stripe_subscription or ""
    )
    now = clock.now()
    async with db.transaction(write=True):
        await (
            Membership.update({Membership.cancel_at_period_end: True, Membership.updated_at: now})
            .where(Membership.id == membership.id)
            .run()
        )
        await audit.record(
            action="membership.cancel_requested",
            actor_id=actor_id or member_id,
            subject=f"membership:{membership.id}",
            at=now,
        )
    return await get_membership(membership_id=membership.id)


async def change_amount(
    *,
    member_id: int,
    amount: object,
    forward: object = None,
    pounds: bool = False,
    gateway: StripeGateway,
    actor_id: int | None = None,
) -> MembershipView:
    """A member of a recurring membership pays a different amount from the next renewal on,
    within the tier's bounds (and Stripe's minimum)."""
    membership = await _recurring_membership(member_id)
    tier = await get_tier(tier_id=membership.tier_id)
    amount_pence = read_amount(amount, pounds=pounds)
    forward_pence = (
        membership.forward_pence if forward in (None, "") else read_amount(forward, pounds=pounds, field_name="forward")
    )
    problems = amount_problems(tier, amount_pence, forward_pence, online=True)
    if amount_pence == 0 and "amount" not in problems:
        problems["amount"] = (
            "free_not_recurring",
            _l("To pay nothing, cancel this membership and choose the free option when it ends."),
        )
    raise_problems(problems)
    if amount_pence == membership.amount_pence and forward_pence == membership.forward_pence:
        return membership
    now = clock.now()
    await gateway.change_subscription_amount(
        subscription_id=membership.stripe_subscription or "",
        amount_pence=amount_pence + forward_pence,
        currency=await venues.currency(),
        interval=membership.interval,
        reference=f"{membership.stripe_subscription}-{amount_pence}-{forward_pence}-{int(now.timestamp())}",
    )
    async with db.transaction(write=True):
        await (
            Membership.update(
                {
                    Membership.amount_pence: amount_pence,
                    Membership.forward_pence: forward_pence,
                    Membership.updated_at: now,
                }
            )
            .where(Membership.id == membership.id)
            .run()
        )
        await audit.record(
            action="membership.amount",
            actor_id=actor_id or member_id,
            subject=f"membership:{membership.id}",
            detail=f"amount={amount_pence}",
            at=now,
        )
    return await get_membership(membership_id=membership.id)
