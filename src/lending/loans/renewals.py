"""Renewals: a new due date unless someone is waiting, the limit is reached or the copy is booked."""

from __future__ import annotations

from datetime import timedelta

from lending import clock, db, errors
from lending.audit import services as audit
from lending.catalog.tables import Item
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.facts import due_for, group_row, reason_list, screen_of
from lending.loans.loan_policy import policy
from lending.loans.records import LoanView, get_loan
from lending.loans.rules import HoldStatus, Reason, ReservationStatus
from lending.loans.tables import Hold, Loan, Reservation
from lending.memberships import records
from lending.venues import rules as hours
from lending.venues import services as venues


async def renew(*, loan_id: int, actor_id: int | None, borrower_id: int | None = None, via: str = "desk") -> LoanView:
    """A new due date, one loan period from the later of now and the current due date, unless
    someone is waiting, the limit is reached or another member has booked the copy.
    ``borrower_id`` set means the member themself is asking: it must be their loan."""
    screen = screen_of(via)
    async with db.transaction(write=True):
        query = Loan.select(Loan.id, Loan.item, Loan.member, Loan.due_at, Loan.renewals, Loan.returned_at).where(
            Loan.id == loan_id
        )
        if db.is_postgres():
            query = query.lock_rows("UPDATE")
        row = await query.first().run()
        now = clock.now()
        if row is None or (borrower_id is not None and row["member"] != borrower_id):
            raise errors.NotFound(_l("There is no such loan."), code="loan_not_found")
        item = (
            await Item.select(Item.id, Item.code, Item.item_group, Item.site)
            .where(Item.id == row["item"])
            .first()
            .run()
        )
        group = await group_row(item["item_group"])
        pol = await policy()
        cal = await venues.calendar(site_id=item["site"])
        membership = await records.current_membership(member_id=row["member"], now=now)
        waiting = (
            await Hold.exists()
            .where(
                Hold.item_group == item["item_group"], Hold.status == HoldStatus.waiting, Hold.member != row["member"]
            )
            .run()
        )
        base = max(now, row["due_at"])
        new_due = await due_for(group, membership, cal, base)
        booking = (
            await Reservation.select(Reservation.starts_on)
            .where(
                Reservation.item == item["id"],
                Reservation.status == ReservationStatus.booked,
                Reservation.member != row["member"],
            )
            .order_by(Reservation.starts_on)
            .first()
            .run()
        )
        gap = timedelta(days=rules.buffer_days(pol))
        reasons = list(
            rules.renewal_reasons(
                renewals=row["renewals"],
                policy=pol,
                someone_waiting=waiting,
                returned=row["returned_at"] is not None,
                reserved_by_other_from=(booking["starts_on"] - gap) if booking else None,
                new_due_on=hours.local_date(new_due, cal.timezone),
            )
        )
        if not reasons and (membership is None or not membership.may_borrow):
            reasons.append(Reason("membership_expired", _l("The membership has ended; renew it first.")))
        if reasons:
            cls = errors.Conflict if reasons[0].code != "membership_expired" else errors.RuleViolation
            raise cls(
                _l("This loan cannot be renewed: %(reason)s", reason=reasons[0].message),
                code="renewal_refused" if cls is errors.RuleViolation else reasons[0].code,
                reasons=reason_list(reasons),
            )
        await Loan.update({Loan.due_at: new_due, Loan.renewals: row["renewals"] + 1}).where(Loan.id == loan_id).run()
        await audit.record(
            action="loan.renew",
            actor_id=actor_id,
            subject=f"item:{item['code']}",
            detail=f"member:{row['member']}; due:{new_due.isoformat()}; via:{screen}",
            at=now,
        )
    return await get_loan(loan_id=loan_id)
