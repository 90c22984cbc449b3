"""Check-out: whether a member may borrow a basket of things (the desk's one panel, every
reason at once), and lending them in one step or not at all.

The write runs in one transaction: SQLite's ``BEGIN IMMEDIATE`` serialises writers, and on
PostgreSQL the items are locked (``FOR UPDATE``, always in code order). The database has the
last word: a partial unique index allows one open loan per item, and a violation becomes 409
``item_unavailable``, never a 500."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from lending import clock, codes, db, errors, i18n
from lending.audit import services as audit
from lending.catalog.rules import Status as ItemStatus
from lending.catalog.tables import Item
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.facts import (
    backdated,
    borrower_facts,
    code_from_scan,
    due_for,
    group_row,
    item_row,
    reason_list,
    recipient,
    screen_of,
)
from lending.loans.loan_policy import policy
from lending.loans.records import LoanView
from lending.loans.rules import HoldStatus, Reason, ReservationStatus
from lending.loans.tables import Hold, Loan, Reservation
from lending.mail import services as mail
from lending.members import services as members
from lending.members.tables import Account
from lending.venues import rules as hours
from lending.venues import services as venues


async def _copy_facts(item: dict, *, member_id: int, now: datetime, due_on: date, pol: rules.Policy) -> rules.Copy:
    on_loan = await Loan.exists().where(Loan.item == item["id"], Loan.returned_at.is_null()).run()
    held = (
        await Hold.select(Hold.member)
        .where(Hold.item == item["id"], Hold.status == HoldStatus.ready, Hold.expires_at > now)
        .first()
        .run()
    )
    waiting_ahead = 0
    if (
        held is None
        and await Hold.exists().where(Hold.item_group == item["item_group"], Hold.status == HoldStatus.waiting).run()
    ):
        mine = (
            await Hold.select(Hold.placed_at, Hold.id)
            .where(Hold.item_group == item["item_group"], Hold.member == member_id, Hold.status == HoldStatus.waiting)
            .first()
            .run()
        )
        ahead = Hold.count().where(
            Hold.item_group == item["item_group"], Hold.status == HoldStatus.waiting, Hold.member != member_id
        )
        if mine:
            ahead = ahead.where(Hold.id < mine["id"])
        waiting_ahead = await ahead.run()
    gap = rules.buffer_days(pol)
    booking = (
        await Reservation.select(Reservation.starts_on)
        .where(
            Reservation.item == item["id"],
            Reservation.status == ReservationStatus.booked,
            Reservation.member != member_id,
            Reservation.starts_on <= due_on + timedelta(days=gap),
            Reservation.ends_on >= now.date() - timedelta(days=1),
        )
        .order_by(Reservation.starts_on)
        .first()
        .run()
    )
    last = None
    if pol.buffer_hours:
        last = (
            await Loan.select(Loan.returned_at)
            .where(Loan.item == item["id"], Loan.returned_at.is_not_null())
            .order_by(Loan.returned_at, ascending=False)
            .first()
            .run()
        )
    return rules.Copy(
        status=item["status"],
        on_loan=on_loan,
        held_for=held["member"] if held else None,
        waiting_for_others=waiting_ahead,
        reserved_by_other_from=booking["starts_on"] if booking else None,
        available_from=(last["returned_at"] + pol.buffer) if last else None,
    )


async def _own_booking(item_id: int, member_id: int, today: date) -> dict | None:
    """The member's booking of this copy that starts today (or started and was not collected)."""
    return (
        await Reservation.select(Reservation.id, Reservation.ends_on)
        .where(
            Reservation.item == item_id,
            Reservation.member == member_id,
            Reservation.status == ReservationStatus.booked,
            Reservation.starts_on <= today,
            Reservation.ends_on >= today,
        )
        .first()
        .run()
    )


@dataclass(frozen=True)
class Assessment:
    """The desk's one panel: whether this member may borrow these items, with every reason."""

    member_id: int
    member_name: str
    membership: object
    borrower_reasons: tuple[Reason, ...]
    lines: tuple[rules.BasketLine, ...]
    open_loans: int = 0

    @property
    def ok(self) -> bool:
        return not self.borrower_reasons and all(line.ok for line in self.lines) and bool(self.lines)

    @property
    def reasons(self) -> list[Reason]:
        return [*self.borrower_reasons, *(reason for line in self.lines for reason in line.reasons)]


async def _member(member_id: int) -> dict:
    row = (
        await Account.select(Account.id, Account.name, Account.email, Account.language, Account.active)
        .where(Account.id == member_id)
        .first()
        .run()
    )
    if row is None:
        raise errors.NotFound(_l("There is no member with that card."), code="member_not_found")
    return row


async def _assess(*, member_id: int, item_codes: list[str], now: datetime, lent_at: datetime, lock: bool) -> Assessment:
    member = await _member(member_id)
    pol = await policy()
    cal = await venues.calendar()
    borrower, membership = await borrower_facts(member_id, now, pol)
    wanted = []
    for raw in item_codes:
        code = code_from_scan(raw) or str(raw).strip()[:40]
        if code not in wanted:
            wanted.append(code)
    lines = []
    today = hours.local_date(now, cal.timezone)
    for code in wanted:
        item = await item_row(code, lock=lock) if codes.normalise(code) else None
        if item is None:
            lines.append(
                rules.BasketLine(
                    code=code,
                    name="",
                    reasons=(Reason("item_not_found", _l("There is no item with the code %(code)s.", code=code)),),
                )
            )
            continue
        group = await group_row(item["item_group"])
        booking = await _own_booking(item["id"], member_id, today)
        site_cal = await venues.calendar(site_id=item["site"])  # due on a day the copy's site is open
        if booking:
            due = hours.end_of_open_day(calendar=site_cal, day=booking["ends_on"])
        else:
            due = await due_for(group, membership, site_cal, lent_at)
        facts = await _copy_facts(
            item, member_id=member_id, now=now, due_on=hours.local_date(due, cal.timezone), pol=pol
        )
        lines.append(
            rules.BasketLine(
                code=item["code"],
                name=group["name"],
                reasons=rules.copy_reasons(facts, member_id=member_id, now=now),
                due_at=due,
                item_id=item["id"],
                group_id=item["item_group"],
                booking_id=booking["id"] if booking else None,
            )
        )
    found = sum(1 for line in lines if line.name)
    return Assessment(
        member_id=member_id,
        member_name=member["name"],
        membership=membership,
        borrower_reasons=rules.borrower_reasons(borrower, pol, adding=max(found, 1)),
        lines=tuple(lines),
        open_loans=borrower.open_loans,
    )


async def assess(*, member_id: int, item_codes: list[str]) -> Assessment:
    """Can this person borrow these things now? Every reason when not; nothing is written."""
    now = clock.now()
    return await _assess(
        member_id=member_id, item_codes=item_codes[: rules.MAX_BASKET], now=now, lent_at=now, lock=False
    )


def _raise_for(assessment: Assessment) -> None:
    """The first kind of problem decides the status: an unknown item 404, an item that cannot
    go out 409 ``item_unavailable``, a member who may not borrow 422 ``borrower_blocked``."""
    unknown = [line for line in assessment.lines if not line.name]
    if unknown:
        raise errors.NotFound(
            str(unknown[0].reasons[0].message),
            code="item_not_found",
            reasons=reason_list(unknown[0].reasons),
            field="item_code",
        )
    blocked_items = [line for line in assessment.lines if line.reasons]
    if blocked_items:
        line = blocked_items[0]
        raise errors.Conflict(
            _l(
                "%(name)s (%(code)s) cannot go out: %(reason)s",
                name=line.name,
                code=codes.display(line.code),
                reason=line.reasons[0].message,
            ),
            code="item_unavailable",
            reasons=reason_list(assessment.reasons),
        )
    if assessment.borrower_reasons:
        raise errors.RuleViolation(
            _l(
                "%(name)s cannot borrow now: %(reason)s",
                name=assessment.member_name,
                reason=assessment.borrower_reasons[0].message,
            ),
            code="borrower_blocked",
            reasons=reason_list(assessment.reasons),
        )


async def check_out(
    *,
    member_id: int,
    item_codes: list[str],
    actor_id: int | None,
    via: str = "desk",
    lent_at: datetime | str | None = None,
) -> list[LoanView]:
    """Lend these items to this member in one step, or none of them: every rule is checked
    again inside the transaction, so what the desk showed a moment ago cannot be stale."""
    if not item_codes:
        raise errors.InvalidInput(_l("Scan or type at least one item."), code="no_items", field="item_code")
    if len(item_codes) > rules.MAX_BASKET:
        raise errors.InvalidInput(_l("Lend at most 20 items at a time."), code="too_many_items", field="item_code")
    screen = screen_of(via)
    with db.unique_violation_as(
        lambda: errors.Conflict(_l("That item has just gone out on another loan."), code="item_unavailable")
    ):
        async with db.transaction(write=True):
            ordered = sorted(item_codes, key=lambda c: code_from_scan(c) or str(c))
            for raw in ordered:  # lock the copies first (PostgreSQL), always in code order
                if code := code_from_scan(raw):
                    await item_row(code, lock=True)
            now = clock.now()  # after the locks, so a loan never starts before the return it waited for
            when = backdated(lent_at, now=now, field_name="lent_at")
            assessment = await _assess(member_id=member_id, item_codes=ordered, now=now, lent_at=when, lock=True)
            _raise_for(assessment)
            loans = []
            for line in assessment.lines:
                rows = (
                    await Loan.insert(
                        Loan(
                            item=line.item_id,
                            member=member_id,
                            lent_at=when,
                            due_at=line.due_at,
                            renewals=0,
                            lent_by=actor_id,
                            recorded_at=now,
                        )
                    )
                    .returning(Loan.id)
                    .run()
                )
                loans.append(
                    LoanView(
                        id=rows[0]["id"],
                        item_code=line.code,
                        item_name=line.name,
                        group_id=line.group_id,
                        member_id=member_id,
                        member_name=assessment.member_name,
                        lent_at=when,
                        due_at=line.due_at,
                        renewals=0,
                        recorded_at=now,
                        returned_at=None,
                        return_condition="",
                        return_notes="",
                        parts_missing=[],
                    )
                )
                await (
                    Item.update({Item.status: ItemStatus.on_loan.value, Item.updated_at: now})
                    .where(Item.id == line.item_id)
                    .run()
                )
                # Someone else's hold on this copy lapsed (the sweep had not run yet): it has ended.
                await (
                    Hold.update({Hold.status: HoldStatus.expired, Hold.closed_at: now})
                    .where(
                        Hold.item == line.item_id,
                        Hold.status == HoldStatus.ready,
                        Hold.member != member_id,
                        Hold.expires_at <= now,
                    )
                    .run()
                )
                await (
                    Hold.update({Hold.status: HoldStatus.collected, Hold.closed_at: now})
                    .where(
                        Hold.member == member_id,
                        Hold.item_group == line.group_id,
                        Hold.status.is_in(list(HoldStatus.ACTIVE)),
                    )
                    .run()
                )
                if line.booking_id is not None:
                    await (
                        Reservation.update(
                            {Reservation.status: ReservationStatus.collected, Reservation.closed_at: now}
                        )
                        .where(Reservation.id == line.booking_id)
                        .run()
                    )
                detail = f"member:{member_id}; due:{line.due_at.isoformat()}; via:{screen}"
                if when != now:
                    detail += f"; backdated to {when.isoformat()}"
                await audit.record(
                    action="loan.check_out", actor_id=actor_id, subject=f"item:{line.code}", detail=detail, at=now
                )
            await _queue_loan_receipt(member_id, loans)
    return loans


async def check_out_by_card(
    *,
    card_code: str,
    item_codes: list[str],
    actor_id: int | None,
    via: str = "api",
    lent_at: datetime | str | None = None,
) -> list[LoanView]:

    member = await members.member_by_card(card_code=code_from_scan(card_code) or card_code)
    return await check_out(member_id=member.id, item_codes=item_codes, actor_id=actor_id, via=via, lent_at=lent_at)


async def _queue_loan_receipt(member_id: int, loans: list[LoanView]) -> None:
    """Inside the check-out's transaction: what they borrowed and when each is due, once."""
    member = await recipient(member_id)
    if member is None or not loans:
        return
    with i18n.in_language(member["language"]):
        items = [
            i18n.gettext(
                "- %(item)s (%(code)s), due back by %(when)s",
                item=loan.item_name,
                code=codes.display(loan.item_code),
                when=i18n.format_when(loan.due_at),
            )
            for loan in loans
        ]
        lines = [
            i18n.gettext("Hello %(name)s,", name=member["name"]),
            "",
            i18n.gettext("You have borrowed:"),
            *items,
            "",
            i18n.gettext("You can renew from your account page unless someone is waiting."),
        ]
        due = i18n.format_date(min(loan.due_at for loan in loans))
        subject = i18n.ngettext(
            "Your loan: due back by %(when)s", "Your loans: due back by %(when)s", len(loans), when=due
        )
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"loan-receipt:{loans[0].id}",
        to_address=member["email"],
        subject=subject,
        body="\n".join(lines),
        account_id=member_id,
        kind="loan_receipt",
        language=member["language"],
        values={"name": member["name"], "items": "\n".join(items), "due": due},
    )
