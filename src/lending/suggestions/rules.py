"""Pure rules of suggestions: what a suggestion may say, and how a coordinator decides one."""

from __future__ import annotations

from enum import Enum

from lending.i18n import lazy_gettext as _l

MAX_TITLE_LENGTH = 200  # the column's length
MAX_DETAILS_LENGTH = 2000
MAX_REASON_LENGTH = 2000


class Status(str, Enum):
    open = "open"
    acquired = "acquired"
    declined = "declined"


STATUS_LABELS = {Status.open: _l("Open"), Status.acquired: _l("Acquired"), Status.declined: _l("Declined")}

# The outcomes a coordinator chooses between: every status but "open".
OUTCOMES = (Status.acquired.value, Status.declined.value)


def clean_title(text: str | None) -> str:
    """One line, single spaces: a title is shown in lists and buttons."""
    return " ".join((text or "").split())


def clean_text(text: str | None) -> str:
    """Free text keeps its line breaks (in one style) but loses surrounding space."""
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def suggestion_problems(*, title: str, details: str) -> dict[str, str]:
    """Every problem with a (cleaned) title and details, by field; empty when they are fine."""
    problems: dict[str, str] = {}
    if not title:
        problems["title"] = _l("Say what the library should get.")
    elif len(title) > MAX_TITLE_LENGTH:
        problems["title"] = _l("Keep the name of the thing to at most %(max)d characters.", max=MAX_TITLE_LENGTH)
    if len(details) > MAX_DETAILS_LENGTH:
        problems["details"] = _l("Keep the details to at most %(max)d characters.", max=MAX_DETAILS_LENGTH)
    return problems


def is_open(status: str) -> bool:
    """Only open suggestions gather (or lose) support and wait for a decision."""
    return status == Status.open.value


def decision_problems(*, outcome: str, reason: str, item_code: str | None) -> dict[str, str]:
    """Every problem with a decision, by field. Declining needs a reason the member will
    read; acquiring needs the code of the item the library now has."""
    problems: dict[str, str] = {}
    if outcome not in OUTCOMES:
        problems["outcome"] = _l("Choose whether the thing was acquired or declined.")
        return problems
    if len(reason) > MAX_REASON_LENGTH:
        problems["reason"] = _l("Keep the reason to at most %(max)d characters.", max=MAX_REASON_LENGTH)
    elif outcome == Status.declined.value and not reason:
        problems["reason"] = _l("Say why the suggestion is declined: the member will see it.")
    if outcome == Status.acquired.value and not (item_code or "").strip():
        problems["item_code"] = _l("Enter the code of the item the library now has.")
    return problems
