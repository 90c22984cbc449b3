"""The passing of time: memberships whose end has passed are expired, and members whose
membership is about to end, and will not renew by itself, are reminded."""

from __future__ import annotations

from datetime import datetime

from lending import clock, db, i18n
from lending.mail import services as mail
from lending.memberships import rules
from lending.memberships.rules import Method, Status
from lending.memberships.tables import Membership
from lending.venues import services as venues


async def expire_lapsed(*, now: datetime | None = None) -> int:
    """Write down what time has done: memberships whose end (plus the renewal grace for
    recurring online ones) has passed are expired. Returns how many."""
    now = now or clock.now()
    rows = (
        await Membership.select(
            Membership.id, Membership.status, Membership.ends_at, Membership.method, Membership.interval
        )
        .where(Membership.status.is_in([Status.active.value, Status.past_due.value]), Membership.ends_at < now)
        .run()
    )
    lapsed = [
        row["id"]
        for row in rows
        if rules.effective_status(
            status=row["status"], ends_at=row["ends_at"], now=now, method=row["method"], interval=row["interval"]
        )
        == Status.expired.value
    ]
    if lapsed:
        async with db.transaction(write=True):
            await (
                Membership.update({Membership.status: Status.expired.value, Membership.updated_at: now})
                .where(
                    Membership.id.is_in(lapsed), Membership.status.is_in([Status.active.value, Status.past_due.value])
                )
                .run()
            )
    return len(lapsed)


async def _ending_soon(now: datetime) -> list[dict]:
    """Active memberships that end within the reminder's two weeks, with their members' details."""
    return (
        await Membership.select(
            Membership.id,
            Membership.member,
            Membership.ends_at,
            Membership.method,
            Membership.interval,
            Membership.cancel_at_period_end,
            Membership.stripe_subscription,
            Membership.tier.name.as_alias("tier_name"),
            Membership.member.email.as_alias("email"),
            Membership.member.language.as_alias("language"),
            Membership.member.name.as_alias("name"),
        )
        .where(
            Membership.status == Status.active.value,
            Membership.ends_at > now,
            Membership.ends_at <= now + rules.EXPIRY_REMINDER_BEFORE,
        )
        .run()
    )


def _expiry_message(row: dict) -> tuple[dict, str, str]:
    """The reminder in the member's language: its values, subject and body."""
    with i18n.in_language(row["language"]):
        values = {"name": row["name"], "tier": row["tier_name"], "date": i18n.format_date(row["ends_at"])}
        subject = i18n.gettext("Your membership ends on %(date)s", date=i18n.format_date(row["ends_at"]))
        body = "\n".join(
            [
                i18n.gettext("Hello %(name)s,", name=row["name"]),
                "",
                i18n.gettext(
                    "Your %(tier)s membership of the library ends on %(date)s.",
                    tier=row["tier_name"],
                    date=i18n.format_date(row["ends_at"]),
                ),
                i18n.gettext(
                    "To keep borrowing, renew it from your account page, or at the counter. You choose "
                    "what you pay, as before."
                ),
            ]
        )
    return values, subject, body


async def queue_expiry_reminders(*, now: datetime | None = None, dry_run: bool = False) -> int:
    """A reminder, once per membership and end date, to members whose membership ends within
    two weeks and will not renew by itself. Returns how many were queued (or, with
    ``dry_run``, would be)."""
    now = now or clock.now()
    rows = await _ending_soon(now)
    queued = 0
    for row in rows:
        renews_itself = (
            row["method"] == Method.stripe.value
            and rules.is_recurring(row["interval"])
            and row["stripe_subscription"]
            and not row["cancel_at_period_end"]
        )
        if renews_itself or not row["email"]:
            continue
        values, subject, body = _expiry_message(row)
        key = f"membership-expiry:{row['id']}:{row['ends_at'].date().isoformat()}"
        if dry_run:
            queued += not await mail.queued(key=key)
            continue
        if await mail.queue(
            library=(await venues.settings()).name,
            key=key,
            to_address=row["email"],
            subject=subject,
            body=body,
            account_id=row["member"],
            kind="membership_expiry",
            language=row["language"],
            values=values,
            now=now,
        ):
            queued += 1
    return queued
