"""Pure rules of the catalogue: item statuses and who may change them, conditions, money and
parts lists as people type them."""

from __future__ import annotations

import re
from enum import Enum

from lending.i18n import lazy_gettext as _l


class Status(str, Enum):
    available = "available"
    on_loan = "on_loan"
    reserved = "reserved"
    maintenance = "maintenance"
    retired = "retired"
    missing = "missing"


STATUS_LABELS = {
    Status.available: _l("Available"),
    Status.on_loan: _l("On loan"),
    Status.reserved: _l("Reserved"),
    Status.maintenance: _l("Being repaired or checked"),
    Status.retired: _l("Retired"),
    Status.missing: _l("Missing"),
}

# Lending sets on_loan and reserved; people set the rest by hand.
SET_BY_HAND = frozenset({Status.available, Status.maintenance, Status.retired, Status.missing})

CONDITIONS = ("new", "good", "fair", "worn", "damaged")
CONDITION_LABELS = {
    "new": _l("New"),
    "good": _l("Good"),
    "fair": _l("Fair"),
    "worn": _l("Worn"),
    "damaged": _l("Damaged"),
}

MAX_PARTS = 50
MAX_PART_LENGTH = 200
MAX_LOAN_DAYS = 365
MAX_VALUE_PENCE = 10_000_000  # £100,000: anything above is a typing slip
_MONEY = re.compile(r"^£?\s*(\d{1,7})(?:\.(\d{1,2}))?$")


def status_change_problem(*, current: str, new: str, reason: str) -> str | None:
    """Why an item may not move from ``current`` to ``new`` by hand, or None."""
    try:
        target = Status(new)
    except ValueError:
        return _l("Choose a status: available, being repaired, retired or missing.")
    if target not in SET_BY_HAND:
        return _l("Items go on loan or get reserved through the desk, not by changing their status.")
    if current == Status.on_loan.value and target != Status.missing:
        return _l("This item is on loan: check it in first.")
    if target == Status.retired and not reason.strip():
        return _l("Say why the item is retired.")
    return None


def parse_pence(text: str | None) -> int | None:
    """'£12.50', '12.5' or '12' as pence; '' as None; ValueError for anything else."""
    cleaned = (text or "").strip().replace(",", "")
    if not cleaned:
        return None
    match = _MONEY.match(cleaned)
    if not match:
        raise ValueError(text)
    pounds, pence = match.group(1), (match.group(2) or "0").ljust(2, "0")
    value = int(pounds) * 100 + int(pence)
    if value > MAX_VALUE_PENCE:
        raise ValueError(text)
    return value


def parse_parts(text: str | list[str] | None) -> list[str]:
    """A checklist, one part per line (or a list); blank lines dropped. ValueError when too long."""
    lines = text if isinstance(text, list) else (text or "").splitlines()
    parts = [" ".join(str(line).split()) for line in lines]
    parts = [part for part in parts if part]
    if len(parts) > MAX_PARTS or any(len(part) > MAX_PART_LENGTH for part in parts):
        raise ValueError("parts")
    return parts


def loan_days_problem(days: int | None) -> str | None:
    if days is not None and not 1 <= days <= MAX_LOAN_DAYS:
        return _l("A loan period is between 1 and 365 days.")
    return None
