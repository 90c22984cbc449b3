"""JSON shapes of the suggestions API."""

from __future__ import annotations

from datetime import datetime

import msgspec

from lending.suggestions.services import SuggestionView


class SuggestionIn(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    details: str = ""


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: str  # "acquired" or "declined"
    reason: str = ""
    item_code: str | None = None


class SuggestionOut(msgspec.Struct):
    id: int
    title: str
    details: str
    status: str  # "open", "acquired" or "declined"
    supporters: int
    supported_by_me: bool
    suggested_by_me: bool
    created_at: datetime
    decision_reason: str
    decided_at: datetime | None
    item_code: str | None


class SuggestionList(msgspec.Struct):
    suggestions: list[SuggestionOut]


def suggestion_out(view: SuggestionView, viewer_id: int | None) -> SuggestionOut:
    # Who suggested a thing is not shown to other members: only whether it was you.
    return SuggestionOut(
        id=view.id,
        title=view.title,
        details=view.details,
        status=view.status,
        supporters=view.supporters,
        supported_by_me=view.supported_by_viewer,
        suggested_by_me=viewer_id is not None and view.suggested_by_id == viewer_id,
        created_at=view.created_at,
        decision_reason=view.decision_reason,
        decided_at=view.decided_at,
        item_code=view.item_code,
    )
