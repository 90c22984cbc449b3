"""Free months: a membership given for some months (a referral's), with no payment recorded."""

from __future__ import annotations

import calendar
from datetime import datetime

from lending import clock, errors
from lending.i18n import lazy_gettext as _l
from lending.memberships.activation import open_or_new, write_activation
from lending.memberships.records import MembershipView, get_membership
from lending.memberships.rules import Interval, Method, Status
from lending.memberships.tiers import get_tier


def _months_later(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (or the month's last day), at the same time."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


async def grant_free_months(
    *, member_id: int, tier_id: int, months: int, actor_id: int | None, now: datetime | None = None
) -> MembershipView:
    """A free membership of ``tier_id`` for ``months`` (a referral's), inside the caller's
    transaction: it activates a pending or lapsed one, or extends the member's current one by
    that much from its end. No payment is recorded; it is not charged to anyone."""
    now = now or clock.now()
    tier = await get_tier(tier_id=tier_id)
    row = await open_or_new(member_id=member_id, tier=tier, amount_pence=0, forward_pence=0, now=now)
    if row["stripe_subscription"] and row["status"] == Status.active.value:
        raise errors.Conflict(
            _l("This member pays by subscription; cancel it before giving a free membership."),
            code="membership_recurring",
        )
    current_end = row["ends_at"] if row["status"] == Status.active.value and row["ends_at"] else None
    ends_at = _months_later(current_end if current_end and current_end > now else now, months)
    await write_activation(
        row=row,
        tier=tier,
        amount_pence=0,
        forward_pence=0,
        interval=Interval.one_off.value,
        method=Method.free.value,
        ends_at=ends_at,
        now=now,
        actor_id=actor_id,
    )
    return await get_membership(membership_id=row["id"], now=now)
