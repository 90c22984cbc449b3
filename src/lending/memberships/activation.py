"""A member's one open membership: found and locked, or a pending one opened; made active, or
renewed by a period from where it stands; and the window in which a free one may renew.
Joining, the counter, free months and Stripe's events all start here."""

from __future__ import annotations

from datetime import datetime

from lending import db, errors, i18n
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.memberships import rules
from lending.memberships.rules import Method, Status
from lending.memberships.tables import Membership
from lending.memberships.tiers import TierView


async def lock_open(member_id: int) -> dict | None:
    """Inside a write transaction: the member's open membership, locked on PostgreSQL (SQLite's
    write lock already serialises writers)."""
    query = Membership.select().where(
        Membership.member == member_id, Membership.status.is_in(list(rules.OPEN_STATUSES))
    )
    if db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def lock_membership(membership_id: int) -> dict | None:
    """Inside a write transaction: a membership by id, locked on PostgreSQL."""
    query = Membership.select().where(Membership.id == membership_id)
    if db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def open_or_new(*, member_id: int, tier: TierView, amount_pence: int, forward_pence: int, now: datetime) -> dict:
    """The member's open membership, or a new pending one for this tier. One that has lapsed
    (its end passed before the sweep marked it) is closed first, so a new one can open."""
    row = await lock_open(member_id)
    if row is not None:
        status = rules.effective_status(
            status=row["status"], ends_at=row["ends_at"], now=now, method=row["method"], interval=row["interval"]
        )
        if status == Status.expired.value:
            await (
                Membership.update({Membership.status: Status.expired.value, Membership.updated_at: now})
                .where(Membership.id == row["id"])
                .run()
            )
            row = None
    if row is not None:
        if row["status"] == Status.pending.value:
            await (
                Membership.update(
                    {
                        Membership.tier: tier.id,
                        Membership.amount_pence: amount_pence,
                        Membership.forward_pence: forward_pence,
                        Membership.interval: tier.interval,
                        Membership.updated_at: now,
                    }
                )
                .where(Membership.id == row["id"])
                .run()
            )
        return await lock_membership(row["id"])
    one_open = errors.Conflict(
        _l("A membership is being set up for this member at this moment; reload the page."), code="membership_busy"
    )
    with db.unique_violation_as(lambda: one_open):
        rows = (
            await Membership.insert(
                Membership(
                    member=member_id,
                    tier=tier.id,
                    status=Status.pending.value,
                    amount_pence=amount_pence,
                    forward_pence=forward_pence,
                    interval=tier.interval,
                    method="",
                    created_at=now,
                    updated_at=now,
                )
            )
            .returning(Membership.id)
            .run()
        )
    return await lock_membership(rows[0]["id"])


def renewal_window_problem(row: dict, now: datetime) -> str | None:
    """A free membership renews only in its last weeks (or once lapsed), so "free for a year"
    cannot be stretched ahead without limit."""
    if row["status"] != Status.active.value or row["ends_at"] is None:
        return None
    if row["ends_at"] - now > rules.EXPIRY_REMINDER_BEFORE * 2:
        return _l(
            "Your membership runs until %(date)s; you can renew it from four weeks before then.",
            date=i18n.lazy_date(row["ends_at"]),
        )
    return None


async def activate(
    *,
    row: dict,
    tier: TierView,
    amount_pence: int,
    forward_pence: int,
    method: str,
    now: datetime,
    actor_id: int | None,
    interval: str | None = None,
) -> datetime:
    """Make the membership active (or renew it): a period is added to what is left."""
    interval = interval or tier.interval
    current_end = row["ends_at"] if row["status"] == Status.active.value else None
    ends_at = rules.renewed_until(current_end=current_end, now=now, interval=interval)
    await write_activation(
        row=row,
        tier=tier,
        amount_pence=amount_pence,
        forward_pence=forward_pence,
        interval=interval,
        method=method,
        ends_at=ends_at,
        now=now,
        actor_id=actor_id,
    )
    return ends_at


async def write_activation(
    *,
    row: dict,
    tier: TierView,
    amount_pence: int,
    forward_pence: int,
    interval: str,
    method: str,
    ends_at: datetime,
    now: datetime,
    actor_id: int | None,
) -> None:
    """The membership active until ``ends_at`` on these terms, and the audit log says so."""
    await (
        Membership.update(
            {
                Membership.status: Status.active.value,
                Membership.tier: tier.id,
                Membership.amount_pence: amount_pence,
                Membership.forward_pence: forward_pence,
                Membership.interval: interval,
                Membership.method: method,
                Membership.starts_at: row["starts_at"] or now,
                Membership.ends_at: ends_at,
                Membership.cancel_at_period_end: False,
                Membership.updated_at: now,
            }
        )
        .where(Membership.id == row["id"])
        .run()
    )
    await audit.record(
        action="membership.activate",
        actor_id=actor_id,
        subject=f"membership:{row['id']}",
        detail=f"method={method}",
        at=now,
    )


async def activate_free(*, row: dict, tier: TierView, now: datetime, actor_id: int | None) -> None:
    """A free choice activates the membership at once, or renews it once its renewal window is
    open (``renewal_window_problem``)."""
    if problem := renewal_window_problem(row, now):
        raise errors.Conflict(problem, code="renewal_not_open")
    await activate(
        row=row, tier=tier, amount_pence=0, forward_pence=0, method=Method.free.value, now=now, actor_id=actor_id
    )
