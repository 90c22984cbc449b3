"""Pure rules of memberships: pay-what-you-can amounts and their bounds, how long a payment
lasts, membership states, what Stripe's states mean here, and refunds.

No means test: a member chooses an amount inside the tier's bounds, or nothing where the
tier allows it. Amounts are whole pence; a £0 choice never goes to Stripe, and an online
payment must reach Stripe's minimum charge.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from lending.i18n import lazy_gettext as _l

CURRENCY = "gbp"
STRIPE_MINIMUM_PENCE = 30  # Stripe's smallest charge in pounds sterling
MAX_AMOUNT_PENCE = 1_000_000  # £10,000: nobody pays more for a membership by mistake
# A recurring membership paid through Stripe renews at the end of its period; the invoice's
# webhook may land a little later, so it counts as active for this long past its end.
RENEWAL_GRACE = timedelta(days=3)
EXPIRY_REMINDER_BEFORE = timedelta(days=14)


class Interval(str, Enum):
    one_off = "one_off"  # paid once, lasts a year
    month = "month"
    year = "year"


INTERVAL_LABELS = {
    Interval.one_off: _l("Once, for a year"),
    Interval.month: _l("Every month"),
    Interval.year: _l("Every year"),
}

# How the amount reads beside a price ("£5.00 a month").
PER_INTERVAL = {Interval.one_off: _l("for a year"), Interval.month: _l("a month"), Interval.year: _l("a year")}


class Status(str, Enum):
    pending = "pending"
    active = "active"
    past_due = "past_due"
    expired = "expired"
    cancelled = "cancelled"


STATUS_LABELS = {
    Status.pending: _l("Waiting for payment"),
    Status.active: _l("Active"),
    Status.past_due: _l("Payment overdue"),
    Status.expired: _l("Expired"),
    Status.cancelled: _l("Cancelled"),
}

OPEN_STATUSES = (Status.pending.value, Status.active.value, Status.past_due.value)


class Method(str, Enum):
    free = "free"
    stripe = "stripe"
    cash = "cash"
    card_reader = "card_reader"


METHOD_LABELS = {
    Method.free: _l("Free"),
    Method.stripe: _l("Online (Stripe)"),
    Method.cash: _l("Cash"),
    Method.card_reader: _l("Card reader"),
}

COUNTER_METHODS = (Method.cash.value, Method.card_reader.value)


# --- amounts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmountProblem:
    code: str
    message: str


_POUNDS = re.compile(r"^(\d{1,7})(?:\.(\d{1,2}))?$")


def parse_pounds(text: str | None) -> int | AmountProblem:
    """An amount a person typed in pounds ("5", "5.50", "£5", "5.5") in pence; "" is £0."""
    cleaned = (text or "").strip().replace("£", "").replace(",", "").strip()
    if cleaned == "":
        return 0
    if cleaned.startswith("-"):
        return AmountProblem("amount_negative", _l("Enter an amount of £0 or more."))
    match = _POUNDS.match(cleaned)
    if not match:
        if re.match(r"^\d+\.\d{3,}$", cleaned):
            return AmountProblem("amount_fractional_pence", _l("Enter the amount in pounds and pence, like 5.50."))
        return AmountProblem("amount_not_a_number", _l("Enter the amount as a number, like 5 or 5.50."))
    pounds, pence = match.group(1), (match.group(2) or "0").ljust(2, "0")
    return int(pounds) * 100 + int(pence)


def parse_pence(value: object) -> int | AmountProblem:
    """An amount in pence sent to the API: a whole number. ``5.0`` is 5; ``5.5`` is not."""
    if isinstance(value, bool) or value is None:
        return AmountProblem("amount_not_a_number", _l("Send amount_pence as a whole number of pence."))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return AmountProblem("amount_not_a_number", _l("Send amount_pence as a whole number of pence."))
        if not value.is_integer():
            return AmountProblem(
                "amount_fractional_pence", _l("Amounts are whole pence: send amount_pence without a fraction.")
            )
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"-?\d{1,9}", text):
            return AmountProblem("amount_not_a_number", _l("Send amount_pence as a whole number of pence."))
        value = int(text)
    if not isinstance(value, int):
        return AmountProblem("amount_not_a_number", _l("Send amount_pence as a whole number of pence."))
    if value < 0:
        return AmountProblem("amount_negative", _l("Enter an amount of £0 or more."))
    return value


def format_money(pence: int, currency: str = CURRENCY) -> str:
    sign = "-" if pence < 0 else ""
    pence = abs(pence)
    symbol = {"gbp": "£", "eur": "€", "usd": "$"}.get(currency.lower(), currency.upper() + " ")
    return f"{sign}{symbol}{pence // 100:,}.{pence % 100:02d}"


@dataclass(frozen=True)
class TierTerms:
    """The part of a tier the amount rules need."""

    min_pence: int
    max_pence: int
    allow_free: bool
    interval: str
    offer_pay_forward: bool = True


def amount_problem(terms: TierTerms, pence: int, *, online: bool) -> AmountProblem | None:
    """Is ``pence`` a choice this tier accepts? £0 only where the tier allows it; otherwise
    between its minimum and maximum; and through Stripe at least its minimum charge."""
    if pence < 0:
        return AmountProblem("amount_negative", _l("Enter an amount of £0 or more."))
    if pence == 0:
        if terms.allow_free:
            return None
        return AmountProblem(
            "free_not_allowed",
            _l("This membership asks for at least %(min)s.", min=format_money(max(terms.min_pence, 1))),
        )
    if pence < terms.min_pence:
        return AmountProblem(
            "amount_below_minimum",
            _l("The smallest amount for this membership is %(min)s.", min=format_money(terms.min_pence)),
        )
    if pence > terms.max_pence:
        return AmountProblem(
            "amount_above_maximum",
            _l("The largest amount for this membership is %(max)s.", max=format_money(terms.max_pence)),
        )
    if online and pence < STRIPE_MINIMUM_PENCE:
        return AmountProblem(
            "amount_below_card_minimum",
            _l(
                "Card payments must be at least %(min)s: choose more, or pay at the counter.",
                min=format_money(STRIPE_MINIMUM_PENCE),
            ),
        )
    return None


def forward_problem(terms: TierTerms, forward_pence: int) -> AmountProblem | None:
    """The extra a member adds to fund free places."""
    if forward_pence < 0:
        return AmountProblem("amount_negative", _l("Enter an amount of £0 or more."))
    if forward_pence and not terms.offer_pay_forward:
        return AmountProblem("pay_forward_not_offered", _l("This membership does not take a pay-it-forward amount."))
    if forward_pence > MAX_AMOUNT_PENCE:
        return AmountProblem(
            "amount_above_maximum",
            _l("The largest amount for this membership is %(max)s.", max=format_money(MAX_AMOUNT_PENCE)),
        )
    return None


def parse_suggested(text: str | None) -> list[int]:
    """The tier's suggested amounts, kept as comma-separated pence; unreadable parts are skipped."""
    found = []
    for part in (text or "").split(","):
        part = part.strip()
        if part.isdigit():
            found.append(int(part))
    return sorted(set(found))


@dataclass(frozen=True)
class TierInput:
    """A membership tier's settings as a coordinator (or a setup file) gives them."""

    name: str
    description: str = ""
    suggested: list[int] = field(default_factory=list)
    min_pence: int = 0
    max_pence: int = 10000
    allow_free: bool = False
    interval: str = Interval.one_off.value
    offer_pay_forward: bool = True
    gift_aid: bool = False
    loan_limit: int = 3
    loan_days: int = 7
    public: bool = True
    active: bool = True
    position: int = 0


def tier_problems(
    *,
    name: str,
    min_pence: int,
    max_pence: int,
    suggested: list[int],
    interval: str,
    loan_limit: int,
    loan_days: int,
    allow_free: bool,
) -> dict[str, str]:
    """Every problem with a tier's settings, by field."""
    problems: dict[str, str] = {}
    if not name.strip():
        problems["name"] = _l("Give the membership a name.")
    elif len(name) > 120:
        problems["name"] = _l("Keep the name to at most 120 characters.")
    if interval not in {i.value for i in Interval}:
        problems["interval"] = _l("Choose once for a year, every month or every year.")
    if min_pence < 0:
        problems["min_pence"] = _l("Enter an amount of £0 or more.")
    if max_pence > MAX_AMOUNT_PENCE:
        problems["max_pence"] = _l(
            "The largest amount for this membership is %(max)s.", max=format_money(MAX_AMOUNT_PENCE)
        )
    elif max_pence < max(min_pence, 1 if not allow_free else 0):
        problems["max_pence"] = _l("The largest amount must be at least the smallest.")
    if interval != Interval.one_off.value and 0 < min_pence < STRIPE_MINIMUM_PENCE:
        problems["min_pence"] = _l(
            "Recurring payments go through Stripe: the smallest amount is %(min)s.",
            min=format_money(STRIPE_MINIMUM_PENCE),
        )
    outside = [p for p in suggested if not (min_pence <= p <= max_pence) and not (p == 0 and allow_free)]
    if outside:
        problems["suggested"] = _l("Suggested amounts must lie between the smallest and the largest amount.")
    if not 1 <= loan_limit <= 100:
        problems["loan_limit"] = _l("Allow between 1 and 100 items at once.")
    if not 1 <= loan_days <= 365:
        problems["loan_days"] = _l("Lend for between 1 and 365 days.")
    return problems


# --- periods and states --------------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """The same time ``months`` calendar months on; 31 January plus a month is 28 or 29 February."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_end(start: datetime, interval: str) -> datetime:
    """When one paid period that starts at ``start`` ends: a month, or a year for yearly and
    one-off memberships."""
    return add_months(start, 1 if interval == Interval.month.value else 12)


def renewed_until(*, current_end: datetime | None, now: datetime, interval: str) -> datetime:
    """A renewal adds a period to what is left, so renewing early loses nothing; a lapsed
    membership starts again from now."""
    start = current_end if current_end is not None and current_end > now else now
    return period_end(start, interval)


def is_recurring(interval: str) -> bool:
    return interval in (Interval.month.value, Interval.year.value)


def effective_status(*, status: str, ends_at: datetime | None, now: datetime, method: str, interval: str) -> str:
    """The status as a person should see it now: an active or overdue membership whose end has
    passed has expired, even before the nightly sweep writes it down. A recurring Stripe
    membership has a few days' grace for the renewal to arrive."""
    if status in (Status.active.value, Status.past_due.value) and ends_at is not None:
        grace = RENEWAL_GRACE if method == Method.stripe.value and is_recurring(interval) else timedelta(0)
        if ends_at + grace <= now:
            return Status.expired.value
    return status


def may_borrow(status: str) -> bool:
    """Only an active membership lends (an overdue payment still does, while Stripe retries)."""
    return status in (Status.active.value, Status.past_due.value)


# Stripe's subscription statuses, in our words.
_STRIPE_STATUS = {
    "active": Status.active.value,
    "trialing": Status.active.value,
    "past_due": Status.past_due.value,
    "unpaid": Status.past_due.value,
    "canceled": Status.cancelled.value,
    "incomplete": Status.pending.value,
    "incomplete_expired": Status.expired.value,
    "paused": Status.past_due.value,
}


def status_from_stripe(stripe_status: str) -> str | None:
    return _STRIPE_STATUS.get(stripe_status)


def apply_stripe_status(*, current: str, incoming: str, current_at: int, incoming_at: int) -> str:
    """The status after a Stripe event that says ``incoming``: an event older than the one
    that last set the status changes nothing (events arrive out of order), and a cancelled
    membership stays cancelled."""
    if current == Status.cancelled.value:
        return current
    if incoming_at < current_at:
        return current
    return incoming


# --- refunds ---------------------------------------------------------------------------------------


def refund_problem(*, paid_pence: int, refunded_pence: int, requested_pence: int) -> AmountProblem | None:
    left = paid_pence - refunded_pence
    if left <= 0:
        return AmountProblem("already_refunded", _l("This payment has already been refunded in full."))
    if requested_pence <= 0:
        return AmountProblem("amount_not_positive", _l("Enter an amount to refund of more than £0."))
    if requested_pence > left:
        return AmountProblem(
            "refund_too_large", _l("At most %(left)s of this payment is left to refund.", left=format_money(left))
        )
    return None


# --- reports ---------------------------------------------------------------------------------------


def month_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


# --- Gift Aid and the borrowing agreement ----------------------------------------------------------

_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")


def normalise_postcode(text: str | None) -> str:
    compact = "".join((text or "").upper().split())
    return f"{compact[:-3]} {compact[-3:]}" if len(compact) > 3 else compact


def gift_aid_problems(*, full_name: str, house: str, postcode: str) -> dict[str, str]:
    """What HMRC needs on a declaration: the donor's full name, their house name or number
    and their postcode."""
    problems: dict[str, str] = {}
    if not full_name.strip() or len(full_name) > 200:
        problems["gift_aid_name"] = _l("Enter your full name for the Gift Aid declaration.")
    if not house.strip() or len(house) > 200:
        problems["gift_aid_house"] = _l("Enter your house name or number.")
    if not _POSTCODE.match(normalise_postcode(postcode)):
        problems["gift_aid_postcode"] = _l("Enter a UK postcode, like CF10 1AA.")
    return problems


MAX_AGREEMENT_LENGTH = 20_000


def agreement_problems(*, body: str, body_cy: str) -> dict[str, str]:
    problems: dict[str, str] = {}
    if not body.strip():
        problems["body"] = _l("Write the agreement members accept.")
    elif len(body) > MAX_AGREEMENT_LENGTH:
        problems["body"] = _l("Keep the agreement to at most %(max)d characters.", max=MAX_AGREEMENT_LENGTH)
    if len(body_cy) > MAX_AGREEMENT_LENGTH:
        problems["body_cy"] = _l("Keep the agreement to at most %(max)d characters.", max=MAX_AGREEMENT_LENGTH)
    return problems
