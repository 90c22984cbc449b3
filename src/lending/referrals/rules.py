"""Pure rules of social-prescribing referrals: what a referral may hold (the minimum: never a
diagnosis, never free-text health information), how long its free membership may run, and
which state it is in at a given moment.

Plain values in, decisions out; the caller passes ``now`` and ``today``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from lending.i18n import lazy_gettext as _l

CODE_LENGTH = 10  # Crockford base32: 50 bits of randomness, so codes cannot be guessed
DEFAULT_MONTHS = (3, 6, 12)
DEFAULT_REDEEM_DAYS = 60
DEFAULT_ERASE_AFTER_DAYS = 365
MAX_REDEEM_DAYS = 365
MAX_ACCESS_NEEDS = 300
MAX_NAME = 120
REDEEM_ATTEMPTS = 10  # wrong codes per address in the window before redemption pauses
REDEEM_WINDOW_MINUTES = 15

# A short fixed list of what the person might get from the library: never a diagnosis.
NEED_CATEGORIES = {
    "connection": _l("Meeting people and feeling less alone"),
    "money": _l("Saving money"),
    "home": _l("Setting up or looking after a home"),
    "activity": _l("Getting active or outdoors"),
    "skills": _l("Learning a skill or hobby"),
    "caring": _l("Caring for someone"),
}

CONTACT_ROUTES = {"email": _l("By email"), "phone": _l("By phone"), "through_me": _l("Through me (the link worker)")}


class Status:
    issued = "issued"
    redeemed = "redeemed"
    expired = "expired"
    withdrawn = "withdrawn"
    completed = "completed"
    ALL = ("issued", "redeemed", "expired", "withdrawn", "completed")


STATUS_LABELS = {
    Status.issued: _l("Issued, not yet used"),
    Status.redeemed: _l("In use"),
    Status.expired: _l("Not used in time"),
    Status.withdrawn: _l("Withdrawn"),
    Status.completed: _l("Free period ended"),
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[0-9+() -]{6,20}$")


@dataclass(frozen=True)
class Details:
    """What a link worker enters, as typed."""

    name: str
    contact_route: str
    contact: str = ""
    language: str = "en"
    access_needs: str = ""
    need_category: str = ""
    months: int | None = None
    redeem_by: date | None = None
    consent_referral: bool = False
    consent_share: bool = False


def details_problems(
    details: Details, *, months_allowed: tuple[int, ...], today: date, max_redeem_days: int = MAX_REDEEM_DAYS
) -> dict[str, str]:
    """Every problem with a referral's details, by field."""
    problems: dict[str, str] = {}
    name = " ".join(details.name.split())
    if not name or len(name) > MAX_NAME:
        problems["name"] = _l("Enter the name the person wants to be called (at most 120 characters).")
    if details.contact_route not in CONTACT_ROUTES:
        problems["contact_route"] = _l("Choose how the library should reach them.")
    elif details.contact_route == "email" and not _EMAIL.match(details.contact.strip()):
        problems["contact"] = _l("Enter their email address, like name@example.org.")
    elif details.contact_route == "phone" and not _PHONE.match(details.contact.strip()):
        problems["contact"] = _l("Enter their phone number.")
    if details.language not in ("en", "cy"):
        problems["language"] = _l("Choose English or Welsh.")
    if len(details.access_needs.strip()) > MAX_ACCESS_NEEDS:
        problems["access_needs"] = _l("Keep access or communication needs under 300 characters; no health details.")
    if details.need_category and details.need_category not in NEED_CATEGORIES:
        problems["need_category"] = _l("Choose one of the listed reasons, or none.")
    if details.months not in months_allowed:
        problems["months"] = _l(
            "Choose a free membership of %(options)s months.", options=", ".join(str(m) for m in months_allowed)
        )
    if details.redeem_by is None:
        problems["redeem_by"] = _l("Enter the date the code must be used by, like 2027-01-31.")
    elif details.redeem_by < today:
        problems["redeem_by"] = _l("The use-by date has passed.")
    elif (details.redeem_by - today).days > max_redeem_days:
        problems["redeem_by"] = _l("A code can be valid for at most %(days)d days.", days=max_redeem_days)
    if not details.consent_referral:
        problems["consent_referral"] = _l("The person must agree to be referred.")
    return problems


def months_problem(months: object, months_allowed: tuple[int, ...]) -> str | None:
    if months not in months_allowed:
        return _l("Choose a free membership of %(options)s months.", options=", ".join(str(m) for m in months_allowed))
    return None


def effective_status(*, status: str, redeem_by: date, today: date, ends_at: datetime | None, now: datetime) -> str:
    """The state a referral is in now, before a sweep has written it: an unused code past its
    date has expired; a redeemed one whose free period has ended is completed."""
    if status == Status.issued and today > redeem_by:
        return Status.expired
    if status == Status.redeemed and ends_at is not None and ends_at <= now:
        return Status.completed
    return status


def redeem_problem(status: str) -> tuple[str, str] | None:
    """Why a code cannot be used: (error code, sentence), or None."""
    if status == Status.issued:
        return None
    if status in (Status.redeemed, Status.completed):
        return "referral_used", _l("This code has already been used. A code works once.")
    if status == Status.expired:
        return "referral_expired", _l("This code was not used in time. Ask the person who referred you for a new one.")
    return "referral_withdrawn", _l("This code has been withdrawn. Ask the person who referred you.")


def parse_months_options(text: str) -> tuple[int, ...]:
    """'3, 6, 12' as (3, 6, 12); ValueError for anything that is not 1 to 24 months."""
    values = sorted({int(part) for part in re.split(r"[,\s]+", text.strip()) if part})
    if not values or any(not 1 <= value <= 24 for value in values):
        raise ValueError(text)
    return tuple(values)
