"""Due-soon and overdue messages, and the sweeps that run with them (lapsed holds, missed bookings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lending import clock, i18n
from lending.loans.holds import expire_holds
from lending.loans.loan_policy import policy
from lending.loans.records import LOAN_COLUMNS, loan_view
from lending.loans.reservations import mark_missed_reservations
from lending.loans.tables import Loan
from lending.mail import services as mail
from lending.venues import services as venues


@dataclass
class ReminderCounts:
    due_soon: int = 0
    overdue: int = 0
    holds_expired: int = 0
    reservations_missed: int = 0
    keys: list[str] = field(default_factory=list)


async def queue_loan_reminders(*, now: datetime | None = None, dry_run: bool = False) -> ReminderCounts:
    """Due-soon and overdue messages, once per loan and due date (a renewal earns a new one),
    in each member's language. The outbox's unique key makes a second run at the same moment,
    from another machine or process, add nothing."""
    now = now or clock.now()
    pol = await policy()
    counts = ReminderCounts()
    if not dry_run:
        counts.holds_expired = await expire_holds(now=now)
        counts.reservations_missed = await mark_missed_reservations(now=now)
    soon = now + timedelta(days=pol.due_soon_days)
    rows = (
        await Loan.select(*LOAN_COLUMNS, Loan.member.email.as_alias("email"), Loan.member.language.as_alias("language"))
        .where(Loan.returned_at.is_null(), Loan.due_at <= soon)
        .order_by(Loan.due_at)
        .run()
    )
    for row in rows:
        loan = loan_view(row)
        if not row["email"]:
            continue
        overdue = loan.due_at <= now
        if not overdue and pol.due_soon_days == 0:
            continue
        key = f"loan-{'overdue' if overdue else 'due-soon'}:{loan.id}:{loan.due_at.date().isoformat()}"
        with i18n.in_language(row["language"]):
            if overdue:
                subject = i18n.gettext("Overdue: %(item)s", item=loan.item_name)
                first = i18n.gettext(
                    "The %(item)s you borrowed was due back by %(when)s.",
                    item=loan.item_name,
                    when=i18n.format_when(loan.due_at),
                )
                then = i18n.gettext(
                    "Please bring it back when you can, or renew it from your account page if "
                    "nobody is waiting. If something has gone wrong, tell us: we would rather know."
                )
            else:
                subject = i18n.gettext("Due back soon: %(item)s", item=loan.item_name)
                first = i18n.gettext(
                    "The %(item)s you borrowed is due back by %(when)s.",
                    item=loan.item_name,
                    when=i18n.format_when(loan.due_at),
                )
                then = i18n.gettext("Bring it to the counter, or renew it from your account page if nobody is waiting.")
            body = "\n".join([i18n.gettext("Hello %(name)s,", name=loan.member_name), "", first, then])
            values = {"name": loan.member_name, "item": loan.item_name, "due": i18n.format_when(loan.due_at)}
        if dry_run:
            fresh = not await mail.queued(key=key)
        else:
            fresh = await mail.queue(
                library=(await venues.settings()).name,
                key=key,
                to_address=row["email"],
                subject=subject,
                body=body,
                account_id=loan.member_id,
                now=now,
                kind="overdue" if overdue else "due_soon",
                language=row["language"],
                values=values,
            )
        if fresh:
            counts.keys.append(key)
            if overdue:
                counts.overdue += 1
            else:
                counts.due_soon += 1
    return counts
