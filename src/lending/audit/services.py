"""The audit log: who did what to whom. Called inside the transaction of the change it records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lending import clock
from lending.audit.tables import AuditEvent
from lending.i18n import lazy_gettext as _l

# What each recorded action means, for people reading the log.
ACTION_LABELS = {
    "account.create": _l("Created an account"),
    "account.sign_in": _l("Signed in"),
    "api_token.create": _l("Created an API token"),
    "api_token.revoke": _l("Revoked API tokens"),
    "organisation.create": _l("Added a referring organisation"),
    "category.create": _l("Added a category"),
    "site.create": _l("Added a site"),
    "item.create": _l("Added an item"),
    "item.update": _l("Edited an item"),
    "item.status": _l("Changed an item's status"),
    "item.photo": _l("Added a photo"),
    "item.manual": _l("Added a manual"),
    "item.problem": _l("Reported a problem"),
    "sticker.create": _l("Printed stickers"),
    "suggestion.create": _l("Suggested a thing"),
    "suggestion.support": _l("Supported a suggestion"),
    "suggestion.withdraw_support": _l("Withdrew support for a suggestion"),
    "suggestion.acquired": _l("Marked a suggestion acquired"),
    "suggestion.declined": _l("Declined a suggestion"),
    "loan.check_out": _l("Lent an item"),
    "loan.check_in": _l("Checked an item in"),
    "loan.renew": _l("Renewed a loan"),
    "loan.policy": _l("Changed the lending rules"),
    "hold.place": _l("Placed a hold"),
    "hold.ready": _l("Put a copy aside for a hold"),
    "hold.cancel": _l("Cancelled a hold"),
    "hold.expire": _l("A hold lapsed"),
    "reservation.create": _l("Booked an item"),
    "reservation.cancel": _l("Cancelled a booking"),
    "fee.paid": _l("Marked a fee paid"),
    "fee.written_off": _l("Wrote off a fee"),
    "venue.hours": _l("Changed the opening hours"),
    "venue.settings": _l("Changed the venue's details"),
    "venue.logo": _l("Changed the venue's logo"),
    "venue.import": _l("Started the venue from a setup file"),
    "venue.export": _l("Downloaded the venue's setup"),
    "email_template.save": _l("Wrote the words of a message"),
    "email_template.reset": _l("Put a message back to its built-in words"),
    "venue.closure": _l("Added a closure"),
    "venue.closure_removed": _l("Removed a closure"),
    "category.loan_days": _l("Changed loan periods"),
    "referral.settings": _l("Changed the referral settings"),
    "referral.issue": _l("Issued a referral"),
    "referral.view": _l("Viewed a referred person's details"),
    "referral.list": _l("Listed referrals"),
    "referral.redeem": _l("Redeemed a referral"),
    "referral.withdraw": _l("Withdrew a referral"),
    "referral.extend": _l("Extended a referral"),
    "referral.erase": _l("Erased ended referrals' personal details"),
    "person.export": _l("Downloaded a person's data"),
    "person.erase": _l("Erased a person's personal details"),
}


async def record(
    *, action: str, actor_id: int | None, subject: str = "", detail: str = "", at: datetime | None = None
) -> None:
    await AuditEvent.insert(
        AuditEvent(at=at or clock.now(), actor=actor_id, action=action, subject=subject, detail=detail)
    ).run()


@dataclass(frozen=True)
class Event:
    action: str
    actor_id: int | None
    subject: str = ""
    detail: str = ""


async def record_all(events: list[Event], *, at: datetime) -> None:
    """Several events of one change in one statement (a check-out of several things)."""
    if events:
        await AuditEvent.insert(
            *(AuditEvent(at=at, actor=e.actor_id, action=e.action, subject=e.subject, detail=e.detail) for e in events)
        ).run()


async def recent(*, limit: int = 100) -> list[dict]:
    """The latest events, newest first, each with the id of the account that acted (``actor``)
    and a label; ``members.recent_activity`` adds who that was."""
    rows = await (
        AuditEvent.select(AuditEvent.at, AuditEvent.actor, AuditEvent.action, AuditEvent.subject, AuditEvent.detail)
        .order_by(AuditEvent.id, ascending=False)
        .limit(limit)
        .run()
    )
    return [{**row, "label": ACTION_LABELS.get(row["action"], row["action"])} for row in rows]
