"""Pure rules of lending: who may borrow what, how long for, when a loan may be renewed, when
a reservation fits, and what a late return costs where the venue charges at all.

Plain values in, decisions out; the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from lending.i18n import lazy_date, lazy_ngettext
from lending.i18n import lazy_gettext as _l

DEFAULT_LOAN_DAYS = 7
MAX_RENEWAL_LIMIT = 20
MAX_BUFFER_HOURS = 24 * 14
MAX_HOLD_DAYS = 30
MAX_RESERVE_AHEAD_DAYS = 365
MAX_RESERVATION_DAYS = 90
MAX_FEE_PENCE = 100_00
MAX_BACKDATE = timedelta(days=30)  # a forgotten check-out or check-in, not a rewrite of history
MAX_BASKET = 20
MAX_NOTES = 2000

CONDITIONS = ("good", "fair", "worn", "damaged")


class HoldStatus:
    waiting = "waiting"
    ready = "ready"
    collected = "collected"
    expired = "expired"
    cancelled = "cancelled"
    ACTIVE = ("waiting", "ready")


class ReservationStatus:
    booked = "booked"
    collected = "collected"
    cancelled = "cancelled"
    missed = "missed"


@dataclass(frozen=True)
class Reason:
    """Why something cannot happen: a stable code for programs and a sentence for people."""

    code: str
    message: str

    def __str__(self) -> str:
        return str(self.message)


@dataclass(frozen=True)
class Decision:
    reasons: tuple[Reason, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]


@dataclass(frozen=True)
class Policy:
    renewal_limit: int = 2
    buffer_hours: int = 0
    hold_days: int = 3
    due_soon_days: int = 2
    reserve_ahead_days: int = 90
    max_reservation_days: int = 14
    fees_enabled: bool = False
    fee_per_day_pence: int = 0
    fee_cap_pence: int = 0
    block_over_pence: int = 0

    @property
    def buffer(self) -> timedelta:
        return timedelta(hours=self.buffer_hours)


POLICY_BOUNDS = {
    # field: (lowest, highest)
    "renewal_limit": (0, MAX_RENEWAL_LIMIT),
    "buffer_hours": (0, MAX_BUFFER_HOURS),
    "hold_days": (1, MAX_HOLD_DAYS),
    "due_soon_days": (0, 14),
    "reserve_ahead_days": (0, MAX_RESERVE_AHEAD_DAYS),
    "max_reservation_days": (1, MAX_RESERVATION_DAYS),
    "fee_per_day_pence": (0, MAX_FEE_PENCE),
    "fee_cap_pence": (0, MAX_FEE_PENCE * 10),
    "block_over_pence": (0, MAX_FEE_PENCE * 10),
}


def policy_problems(values: dict[str, int]) -> dict[str, str]:
    """Each policy number out of its bounds, by field."""
    problems: dict[str, str] = {}
    for name, (lowest, highest) in POLICY_BOUNDS.items():
        value = values.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not lowest <= value <= highest:
            problems[name] = _l("Enter a whole number from %(low)d to %(high)d.", low=lowest, high=highest)
    return problems


def loan_days(
    *, item_days: int | None, category_days: tuple[int | None, ...] = (), tier_days: int | None = None
) -> int:
    """The thing's own period, else the nearest category's (child before parent), else the
    membership tier's, else a week."""
    for days in (item_days, *category_days, tier_days):
        if days:
            return days
    return DEFAULT_LOAN_DAYS


# --- who may borrow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Borrower:
    """What decides whether a member may borrow at all, and how much."""

    membership_status: str | None  # None: never had one
    loan_limit: int
    open_loans: int
    overdue_loans: int
    unpaid_fees_pence: int = 0


def borrower_reasons(borrower: Borrower, policy: Policy, *, adding: int = 1) -> tuple[Reason, ...]:
    """Every reason this member may not borrow ``adding`` more things now."""
    reasons: list[Reason] = []
    status = borrower.membership_status
    if status is None:
        reasons.append(Reason("no_membership", _l("They have no membership yet.")))
    elif status == "pending":
        reasons.append(Reason("membership_pending", _l("Their membership is not paid yet.")))
    elif status in ("expired", "cancelled"):
        reasons.append(Reason("membership_expired", _l("Their membership has ended; it can be renewed.")))
    elif status == "past_due":
        reasons.append(Reason("membership_past_due", _l("Their last membership payment failed.")))
    if borrower.overdue_loans:
        reasons.append(
            Reason(
                "overdue_items",
                _l("They have %(count)d overdue item(s) to bring back first.", count=borrower.overdue_loans),
            )
        )
    if borrower.open_loans + adding > borrower.loan_limit:
        reasons.append(
            Reason(
                "over_limit",
                _l(
                    "That would be %(count)d items; their membership allows %(limit)d at a time.",
                    count=borrower.open_loans + adding,
                    limit=borrower.loan_limit,
                ),
            )
        )
    if policy.fees_enabled and policy.block_over_pence and borrower.unpaid_fees_pence > policy.block_over_pence:
        reasons.append(Reason("unpaid_fees", _l("They have unpaid fees to settle first.")))
    return tuple(reasons)


def queue_reasons(borrower: Borrower, policy: Policy) -> tuple[Reason, ...]:
    """Why a member may not place a hold or book: the same as borrowing, except how many things
    they have out, which counts when they collect."""
    return tuple(reason for reason in borrower_reasons(borrower, policy, adding=0) if reason.code != "over_limit")


# --- whether a copy can go out ----------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """What decides whether one copy can go out to one member now."""

    status: str  # the catalogue status
    on_loan: bool
    held_for: int | None = None  # the member a ready hold has put it aside for
    waiting_for_others: int = 0  # members ahead in the thing's queue (none of its copies free)
    reserved_by_other_from: date | None = None  # another member's booking that the loan would run into
    available_from: datetime | None = None  # end of the buffer after its last return


def copy_reasons(copy: Copy, *, member_id: int, now: datetime) -> tuple[Reason, ...]:
    """Every reason this copy cannot be lent to this member now."""
    if copy.status == "retired":
        return (Reason("item_retired", _l("This item has been retired.")),)
    if copy.on_loan or copy.status == "on_loan":
        return (Reason("item_unavailable", _l("This item is already on loan.")),)
    reasons: list[Reason] = []
    if copy.status == "maintenance":
        reasons.append(Reason("item_in_maintenance", _l("This item is being repaired or checked.")))
    elif copy.status == "missing":
        reasons.append(Reason("item_missing", _l("This item is marked missing.")))
    if copy.held_for is not None and copy.held_for != member_id:
        reasons.append(Reason("held_for_other", _l("This item is put aside for another member's hold.")))
    elif copy.held_for is None and copy.waiting_for_others:
        reasons.append(Reason("others_waiting", _l("Other members are waiting for this item.")))
    if copy.reserved_by_other_from is not None:
        reasons.append(
            Reason(
                "reserved_by_other",
                _l("Another member has booked it from %(day)s.", day=lazy_date(copy.reserved_by_other_from)),
            )
        )
    if copy.available_from is not None and copy.available_from > now:
        reasons.append(Reason("in_buffer", _l("It is being cleaned or checked after its last loan.")))
    return tuple(reasons)


# --- renewals ---------------------------------------------------------------------------------


def renewal_reasons(
    *,
    renewals: int,
    policy: Policy,
    someone_waiting: bool,
    returned: bool,
    reserved_by_other_from: date | None = None,
    new_due_on: date | None = None,
) -> tuple[Reason, ...]:
    """Why a loan may not be renewed: it is closed, someone is waiting, the limit is reached, or
    the extra days would run into another member's booking."""
    if returned:
        return (Reason("loan_closed", _l("This loan has already ended.")),)
    reasons: list[Reason] = []
    if someone_waiting:
        reasons.append(Reason("someone_waiting", _l("Someone is waiting for this item, so it cannot be renewed.")))
    if renewals >= policy.renewal_limit:
        reasons.append(
            Reason(
                "renewal_limit",
                lazy_ngettext(
                    "It has been renewed %(num)d time, the most allowed.",
                    "It has been renewed %(num)d times, the most allowed.",
                    renewals,
                ),
            )
        )
    if reserved_by_other_from is not None and new_due_on is not None and new_due_on >= reserved_by_other_from:
        reasons.append(
            Reason(
                "reserved_by_other",
                _l("Another member has booked it from %(day)s.", day=lazy_date(reserved_by_other_from)),
            )
        )
    return tuple(reasons)


# --- backdating -------------------------------------------------------------------------------


def backdate_problem(*, when: datetime, now: datetime, not_before: datetime | None = None) -> str | None:
    """A forgotten check-out or check-in may be recorded up to 30 days back, never in the future,
    and a return never before its loan began."""
    if when > now + timedelta(minutes=5):
        return _l("That time is in the future.")
    if when < now - MAX_BACKDATE:
        return _l("A forgotten loan or return can be recorded up to 30 days back.")
    if not_before is not None and when < not_before:
        return _l("A return cannot be before the loan began.")
    return None


# --- reservations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Booking:
    starts_on: date
    ends_on: date


def reservation_reasons(
    *,
    starts_on: date,
    ends_on: date,
    today: date,
    policy: Policy,
    open_days: dict[date, bool],
    other_bookings: tuple[Booking, ...],
    loan_due_on: date | None,
    buffer_days: int,
) -> tuple[Reason, ...]:
    """Whether a copy can be booked from ``starts_on`` (collect) to ``ends_on`` (return): in the
    future but not too far, not too long, both days open, clear of other bookings and of its
    current loan by the buffer."""
    if ends_on < starts_on:
        return (Reason("invalid_dates", _l("The return day is before the collection day.")),)
    reasons: list[Reason] = []
    if starts_on <= today:
        reasons.append(Reason("invalid_dates", _l("Book from tomorrow onwards; to borrow today, come to the desk.")))
    elif (starts_on - today).days > policy.reserve_ahead_days:
        reasons.append(
            Reason("too_far_ahead", _l("Bookings open %(days)d days ahead.", days=policy.reserve_ahead_days))
        )
    if (ends_on - starts_on).days + 1 > policy.max_reservation_days:
        reasons.append(Reason("too_long", _l("A booking is at most %(days)d days.", days=policy.max_reservation_days)))
    if not open_days.get(starts_on, True):
        reasons.append(
            Reason("closed_day", _l("The venue is closed on %(day)s, the collection day.", day=lazy_date(starts_on)))
        )
    if not open_days.get(ends_on, True):
        reasons.append(
            Reason("closed_day", _l("The venue is closed on %(day)s, the return day.", day=lazy_date(ends_on)))
        )
    gap = timedelta(days=buffer_days)
    for other in other_bookings:
        if starts_on <= other.ends_on + gap and other.starts_on <= ends_on + gap:
            reasons.append(
                Reason(
                    "reservation_conflict",
                    _l(
                        "It is already booked from %(start)s to %(end)s.",
                        start=lazy_date(other.starts_on),
                        end=lazy_date(other.ends_on),
                    ),
                )
            )
            break
    if loan_due_on is not None and starts_on <= loan_due_on + gap:
        reasons.append(Reason("reservation_conflict", _l("It is on loan until %(day)s.", day=lazy_date(loan_due_on))))
    return tuple(reasons)


def buffer_days(policy: Policy) -> int:
    """The buffer as whole days for bookings, which are by the day."""
    return -(-policy.buffer_hours // 24)


# --- fees -------------------------------------------------------------------------------------


def late_fee(*, policy: Policy, due_on: date, returned_on: date) -> int:
    """Pence owed for a late return: days late times the daily fee, up to the cap; nothing
    unless the venue has chosen to charge."""
    if not policy.fees_enabled or policy.fee_per_day_pence <= 0 or returned_on <= due_on:
        return 0
    amount = (returned_on - due_on).days * policy.fee_per_day_pence
    return min(amount, policy.fee_cap_pence) if policy.fee_cap_pence else amount


@dataclass(frozen=True)
class BasketLine:
    code: str
    name: str
    reasons: tuple[Reason, ...] = field(default_factory=tuple)
    due_at: datetime | None = None
    item_id: int | None = None
    group_id: int | None = None
    booking_id: int | None = None  # the member's own booking this loan collects

    @property
    def ok(self) -> bool:
        return not self.reasons
