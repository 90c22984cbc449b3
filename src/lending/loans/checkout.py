"""Check-out: whether a member may borrow a basket of things (the desk's one panel, every
reason at once), and lending them in one step or not at all.

Load, decide, write. Every fact the rules need is loaded for the whole basket in a few
set-based statements (``facts.member``, ``facts.basket``; the venue's calendar, the category
tree and the loan policy are kept by each process), ``decide`` is pure and is the same decision
the desk's panel and ``assess`` show, and the loans are written in batches.

The write runs in one transaction: SQLite's ``BEGIN IMMEDIATE`` serialises writers, and on
PostgreSQL the copies are locked (``FOR UPDATE``, always in code order) before anything is
read. The database has the last word: a partial unique index allows one open loan per item,
and a violation becomes 409 ``item_unavailable``, never a 500."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from lending import clock, codes, db, errors, i18n
from lending.audit import services as audit
from lending.catalog import services as catalog
from lending.catalog.rules import Status as ItemStatus
from lending.catalog.tables import Item
from lending.i18n import lazy_gettext as _l
from lending.loans import facts, rules
from lending.loans.facts import BasketCopy, Member, backdated, code_from_scan, reason_list, screen_of
from lending.loans.loan_policy import policy
from lending.loans.records import LoanView
from lending.loans.rules import HoldStatus, Reason, ReservationStatus
from lending.loans.tables import Hold, Loan, Reservation
from lending.mail import services as mail
from lending.members import services as members
from lending.venues import rules as hours
from lending.venues import services as venues

# The load step, by name, so the race tests' negative control can take the guard out of it
# (tests/fakes/unguarded_app.py).
lock_copies = facts.lock_copies
load_basket = facts.basket


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


@dataclass(frozen=True)
class Configuration:
    """What each process keeps and the rules read: the loan policy, the venue's calendar and
    the category tree. Read before a write transaction begins, so it is kept (a copy read
    inside one would not be)."""

    policy: rules.Policy
    venue: venues.Snapshot
    categories: dict[int, catalog.CategoryNode]

    def category_days(self, category_id: int | None) -> tuple[int | None, ...]:
        return facts.category_chain(self.categories, category_id)


async def configuration() -> Configuration:
    return Configuration(
        policy=await policy(),
        venue=await venues.snapshot(),
        categories={node.id: node for node in await catalog.category_tree()},
    )


@dataclass(frozen=True)
class Facts:
    """Everything ``decide`` reads, loaded before it runs."""

    member: Member
    copies: dict[str, BasketCopy]  # by code; a code of no item is absent
    config: Configuration


def wanted_codes(item_codes: list[str]) -> list[str]:
    """The codes asked for, read from scans, each once, in the order given."""
    wanted: list[str] = []
    for raw in item_codes:
        code = code_from_scan(raw) or str(raw).strip()[:40]
        if code not in wanted:
            wanted.append(code)
    return wanted


async def load(*, member_id: int, codes_asked: list[str], now: datetime, config: Configuration) -> Facts:
    """The load step: the member (two statements) and the basket (one)."""
    member = await facts.member(member_id, now, config.policy)
    today = hours.local_date(now, config.venue.settings.timezone)
    asked = [code for code in codes_asked if codes.normalise(code)]
    copies = await load_basket(asked, member_id=member_id, now=now, today=today)
    return Facts(member=member, copies=copies, config=config)


def _due(copy: BasketCopy, found: Facts, lent_at: datetime) -> datetime:
    """Due on a day the copy's site is open; a member's own booking sets its own last day."""
    calendar = found.config.venue.calendar(copy.site_id)
    if copy.own_booking_ends_on is not None:
        return hours.end_of_open_day(calendar=calendar, day=copy.own_booking_ends_on)
    days = rules.loan_days(
        item_days=copy.loan_days,
        category_days=found.config.category_days(copy.category_id),
        tier_days=getattr(found.member.membership, "loan_days", None),
    )
    return hours.due_at(calendar=calendar, lent_at=lent_at, days=days)


def _copy_rules(copy: BasketCopy, found: Facts, due_on: date) -> rules.Copy:
    pol = found.config.policy
    booking = copy.next_booking_from
    return rules.Copy(
        status=copy.status,
        on_loan=copy.on_loan,
        held_for=copy.held_for,
        waiting_for_others=0 if copy.held_for is not None else copy.waiting_ahead,
        reserved_by_other_from=booking
        if booking is not None and booking <= due_on + timedelta(days=rules.buffer_days(pol))
        else None,
        available_from=(copy.last_returned_at + pol.buffer)
        if pol.buffer_hours and copy.last_returned_at is not None
        else None,
    )


def decide(found: Facts, *, wanted: list[str], now: datetime, lent_at: datetime) -> Assessment:
    """The decision, pure: every reason this member cannot borrow these copies now, and each
    copy's due date."""
    timezone = found.config.venue.settings.timezone
    lines = []
    for code in wanted:
        copy = found.copies.get(code)
        if copy is None:
            reason = Reason("item_not_found", _l("There is no item with the code %(code)s.", code=code))
            lines.append(rules.BasketLine(code=code, name="", reasons=(reason,)))
            continue
        due = _due(copy, found, lent_at)
        facts_of_copy = _copy_rules(copy, found, hours.local_date(due, timezone))
        lines.append(
            rules.BasketLine(
                code=copy.code,
                name=copy.name,
                reasons=rules.copy_reasons(facts_of_copy, member_id=found.member.id, now=now),
                due_at=due,
                item_id=copy.id,
                group_id=copy.group_id,
                booking_id=copy.own_booking_id,
            )
        )
    found_count = sum(1 for line in lines if line.name)
    borrower = found.member.borrower
    return Assessment(
        member_id=found.member.id,
        member_name=found.member.name,
        membership=found.member.membership,
        borrower_reasons=rules.borrower_reasons(borrower, found.config.policy, adding=max(found_count, 1)),
        lines=tuple(lines),
        open_loans=borrower.open_loans,
    )


async def assess(*, member_id: int, item_codes: list[str]) -> Assessment:
    """Can this person borrow these things now? Every reason when not; nothing is written."""
    now = clock.now()
    wanted = wanted_codes(item_codes[: rules.MAX_BASKET])
    found = await load(member_id=member_id, codes_asked=wanted, now=now, config=await configuration())
    return decide(found, wanted=wanted, now=now, lent_at=now)


def raise_for(assessment: Assessment) -> None:
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
    wanted = sorted(wanted_codes(item_codes))
    config = await configuration()
    with db.unique_violation_as(
        lambda: errors.Conflict(_l("That item has just gone out on another loan."), code="item_unavailable")
    ):
        async with db.transaction(write=True):
            await lock_copies([code for code in wanted if codes.normalise(code)])
            now = clock.now()  # after the locks, so a loan never starts before the return it waited for
            when = backdated(lent_at, now=now, field_name="lent_at")
            found = await load(member_id=member_id, codes_asked=wanted, now=now, config=config)
            assessment = decide(found, wanted=wanted, now=now, lent_at=when)
            raise_for(assessment)
            loans = await _write(assessment, found, actor_id=actor_id, via=screen_of(via), now=now, when=when)
    return loans


async def _write(
    assessment: Assessment, found: Facts, *, actor_id: int | None, via: str, now: datetime, when: datetime
) -> list[LoanView]:
    """The write step, in batches: the loans, the copies' status, the holds and bookings they
    settle, the audit log and the receipt."""
    lines = assessment.lines
    member_id = found.member.id
    rows = await (
        Loan.insert(
            *(
                Loan(
                    item=line.item_id,
                    member=member_id,
                    lent_at=when,
                    due_at=line.due_at,
                    renewals=0,
                    lent_by=actor_id,
                    recorded_at=now,
                )
                for line in lines
            )
        )
        .returning(Loan.id, Loan.item)
        .run()
    )
    loan_ids = {row["item"]: row["id"] for row in rows}
    item_ids = [line.item_id for line in lines]
    await (
        Item.update({Item.status: ItemStatus.on_loan.value, Item.updated_at: now}).where(Item.id.is_in(item_ids)).run()
    )
    await _settle_holds_and_bookings(lines, found, now=now)
    events = []
    for line in lines:
        detail = f"member:{member_id}; due:{line.due_at.isoformat()}; via:{via}"
        if when != now:
            detail += f"; backdated to {when.isoformat()}"
        events.append(audit.Event("loan.check_out", actor_id, f"item:{line.code}", detail))
    await audit.record_all(events, at=now)
    loans = [
        LoanView(
            id=loan_ids[line.item_id],
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
        for line in lines
    ]
    await _queue_loan_receipt(found.member, loans, library=found.config.venue.settings.name)
    return loans


async def _settle_holds_and_bookings(lines: tuple[rules.BasketLine, ...], found: Facts, *, now: datetime) -> None:
    """Only what the load found to settle: someone else's lapsed hold on a copy (the sweep had
    not run yet) has ended; the member's own hold on the thing is collected, and so is their
    booking of the copy."""
    member_id = found.member.id
    lapsed = [line.item_id for line in lines if found.copies[line.code].lapsed_hold]
    if lapsed:
        await (
            Hold.update({Hold.status: HoldStatus.expired, Hold.closed_at: now})
            .where(
                Hold.item.is_in(lapsed),
                Hold.status == HoldStatus.ready,
                Hold.member != member_id,
                Hold.expires_at <= now,
            )
            .run()
        )
    collected = [line.group_id for line in lines if found.copies[line.code].own_hold]
    if collected:
        await (
            Hold.update({Hold.status: HoldStatus.collected, Hold.closed_at: now})
            .where(
                Hold.member == member_id, Hold.item_group.is_in(collected), Hold.status.is_in(list(HoldStatus.ACTIVE))
            )
            .run()
        )
    bookings = [line.booking_id for line in lines if line.booking_id is not None]
    if bookings:
        await (
            Reservation.update({Reservation.status: ReservationStatus.collected, Reservation.closed_at: now})
            .where(Reservation.id.is_in(bookings))
            .run()
        )


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


async def _queue_loan_receipt(member: Member, loans: list[LoanView], *, library: str) -> None:
    """Inside the check-out's transaction: what they borrowed and when each is due, once."""
    if not member.email or not loans:
        return
    with i18n.in_language(member.language):
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
            i18n.gettext("Hello %(name)s,", name=member.name),
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
        library=library,
        key=f"loan-receipt:{loans[0].id}",
        to_address=member.email,
        subject=subject,
        body="\n".join(lines),
        account_id=member.id,
        kind="loan_receipt",
        language=member.language,
        values={"name": member.name, "items": "\n".join(items), "due": due},
    )
