"""The kinds of message the library sends, the placeholders each offers a coordinator who
writes their own words for it, and how those words are checked and filled in. Pure: no
database, no clock."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lending.i18n import LazyText
from lending.i18n import lazy_gettext as _l

MAX_SUBJECT = 300
MAX_BODY = 5000
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Kind:
    label: LazyText
    placeholders: dict[str, LazyText]


_NAME = _l("the member's name")
_LIBRARY = _l("the library's name")

KINDS: dict[str, Kind] = {
    "loan_receipt": Kind(
        _l("Receipt for a check-out"),
        {
            "name": _NAME,
            "items": _l("what they borrowed, one line each, with when it is due"),
            "due": _l("the earliest due date"),
            "library": _LIBRARY,
        },
    ),
    "due_soon": Kind(
        _l("Due back soon"),
        {"name": _NAME, "item": _l("the thing borrowed"), "due": _l("when it is due back"), "library": _LIBRARY},
    ),
    "overdue": Kind(
        _l("Overdue"),
        {"name": _NAME, "item": _l("the thing borrowed"), "due": _l("when it was due back"), "library": _LIBRARY},
    ),
    "hold_ready": Kind(
        _l("Ready to collect"),
        {
            "name": _NAME,
            "item": _l("the thing put aside"),
            "until": _l("when it must be collected by"),
            "library": _LIBRARY,
        },
    ),
    "payment_receipt": Kind(
        _l("Membership payment receipt"),
        {
            "name": _NAME,
            "receipt": _l("the receipt number"),
            "tier": _l("the membership"),
            "amount": _l("the amount paid"),
            "details": _l("the receipt's other lines"),
            "library": _LIBRARY,
        },
    ),
    "payment_failed": Kind(_l("Renewal payment failed"), {"name": _NAME, "library": _LIBRARY}),
    "membership_expiry": Kind(
        _l("Membership ending"),
        {"name": _NAME, "tier": _l("the membership"), "date": _l("the day it ends"), "library": _LIBRARY},
    ),
}


def problems(kind: str, subject: str, body: str) -> dict[str, str]:
    """What is wrong with a coordinator's words for ``kind``, by field; empty when none."""
    found: dict[str, str] = {}
    if kind not in KINDS:
        return {"kind": str(_l("There is no such kind of message."))}
    allowed = KINDS[kind].placeholders
    for field, text, limit in (("subject", subject, MAX_SUBJECT), ("body", body, MAX_BODY)):
        if not text.strip():
            found[field] = str(_l("Write the message's words, or use the built-in ones."))
        elif len(text) > limit:
            found[field] = str(_l("Keep it to %(count)d characters.", count=limit))
        elif "\n" in text and field == "subject":
            found[field] = str(_l("Keep the subject to one line."))
        elif unknown := sorted({name for name in _PLACEHOLDER.findall(text) if name not in allowed}):
            found[field] = str(
                _l(
                    "%(names)s cannot be filled in here. Use: %(allowed)s.",
                    names=", ".join("{" + name + "}" for name in unknown),
                    allowed=", ".join("{" + name + "}" for name in allowed),
                )
            )
    return found


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with each ``{placeholder}`` replaced; anything else in braces stays as written."""
    return _PLACEHOLDER.sub(lambda match: str(values.get(match.group(1), match.group(0))), text)
