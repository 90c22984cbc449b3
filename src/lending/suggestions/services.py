"""Members suggest things the library should get and support each other's suggestions;
coordinators decide them: acquired (linked to the new item) or declined (with a reason)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lending import clock, db, errors
from lending.audit import services as audit
from lending.catalog import services as catalog
from lending.i18n import lazy_gettext as _l
from lending.members.tables import Account
from lending.suggestions import rules
from lending.suggestions.rules import Status
from lending.suggestions.tables import Suggestion, Support

LIST_LIMIT = 500


@dataclass(frozen=True)
class SuggestionView:
    id: int
    title: str
    details: str
    status: str
    supporters: int
    created_at: datetime
    suggested_by_id: int | None
    suggested_by_name: str | None
    supported_by_viewer: bool = False
    decision_reason: str = ""
    decided_at: datetime | None = None
    # For an acquired suggestion: a copy of the thing the library got (its item page is /i/{code}).
    item_code: str | None = None
    item_name: str | None = None

    @property
    def is_open(self) -> bool:
        return rules.is_open(self.status)


# Lists are read often and join four tables, so they are one hand-written query. The item
# linked to an acquired suggestion is a copy of its item group, preferring one not retired.
_SELECT = """
SELECT s.id, s.title, s.details, s.status, s.decision_reason, s.created_at, s.decided_at,
       s.suggested_by, a.name AS suggested_by_name, g.name AS item_name,
       (SELECT i.code FROM item i WHERE i.item_group = s.item_group
         ORDER BY (i.status = 'retired'), i.id LIMIT 1) AS item_code,
       (SELECT count(*) FROM suggestion_support p WHERE p.suggestion = s.id) AS supporters,
       EXISTS (SELECT 1 FROM suggestion_support p WHERE p.suggestion = s.id AND p.account = {}) AS supported_by_viewer
FROM suggestion s
LEFT JOIN account a ON a.id = s.suggested_by
LEFT JOIN item_group g ON g.id = s.item_group
"""


def _view(row: dict) -> SuggestionView:
    return SuggestionView(
        id=row["id"],
        title=row["title"],
        details=row["details"],
        status=row["status"],
        supporters=int(row["supporters"]),
        created_at=row["created_at"],
        suggested_by_id=row["suggested_by"],
        suggested_by_name=row["suggested_by_name"],
        supported_by_viewer=bool(row["supported_by_viewer"]),
        decision_reason=row["decision_reason"],
        decided_at=row["decided_at"],
        item_code=row["item_code"],
        item_name=row["item_name"],
    )


async def _select(
    where: str, order: str, *args: object, viewer_id: int | None = None, limit: int = LIST_LIMIT
) -> list[SuggestionView]:
    rows = await Suggestion.raw(f"{_SELECT} WHERE {where} ORDER BY {order} LIMIT {{}}", viewer_id, *args, limit).run()
    return [_view(row) for row in rows]


async def get_suggestion(*, suggestion_id: int, viewer_id: int | None = None) -> SuggestionView:
    found = await _select("s.id = {}", "s.id", suggestion_id, viewer_id=viewer_id, limit=1)
    if not found:
        raise errors.NotFound(_l("There is no such suggestion."), code="suggestion_not_found")
    return found[0]


async def list_open(*, viewer_id: int | None = None, limit: int = LIST_LIMIT) -> list[SuggestionView]:
    """Open suggestions, most supported first; among equals, the one waiting longest first.
    ``supported_by_viewer`` says whether ``viewer_id`` supports each one."""
    return await _select(
        "s.status = {}", "supporters DESC, s.created_at, s.id", Status.open.value, viewer_id=viewer_id, limit=limit
    )


async def my_suggestions(*, member_id: int, limit: int = LIST_LIMIT) -> list[SuggestionView]:
    """What a member suggested, newest first, with each outcome: the reason for a decline, the
    item for an acquisition."""
    return await _select(
        "s.suggested_by = {}", "s.created_at DESC, s.id DESC", member_id, viewer_id=member_id, limit=limit
    )


async def list_decided(*, limit: int = 50) -> list[SuggestionView]:
    """The latest decisions, for coordinators."""
    return await _select("s.status <> {}", "s.decided_at DESC, s.id DESC", Status.open.value, limit=limit)


# --- members ---------------------------------------------------------------------------------


async def suggest(*, title: str, details: str = "", member_id: int) -> SuggestionView:
    """A member suggests a thing; they support their own suggestion from the start. Nothing
    is written unless the title and details are valid."""
    title, details = rules.clean_title(title), rules.clean_text(details)
    if problems := rules.suggestion_problems(title=title, details=details):
        raise errors.InvalidInput(_l("Check your suggestion."), code="invalid_suggestion", errors=problems)
    now = clock.now()
    async with db.transaction(write=True):
        if not await Account.exists().where(Account.id == member_id).run():
            raise errors.NotFound(_l("There is no such account."), code="account_not_found")
        rows = (
            await Suggestion.insert(
                Suggestion(
                    title=title, details=details, suggested_by=member_id, status=Status.open.value, created_at=now
                )
            )
            .returning(Suggestion.id)
            .run()
        )
        suggestion_id = rows[0]["id"]
        await Support.insert(Support(suggestion=suggestion_id, account=member_id, created_at=now)).run()
        await audit.record(
            action="suggestion.create", actor_id=member_id, subject=f"suggestion:{suggestion_id}", at=now
        )
    return await get_suggestion(suggestion_id=suggestion_id, viewer_id=member_id)


async def _lock_open(suggestion_id: int) -> None:
    """Inside a write transaction: the suggestion must exist and still be open. On PostgreSQL
    the row is share-locked, so a decision taken at the same moment waits for this change
    (SQLite's write lock already serialises them)."""
    query = Suggestion.select(Suggestion.status).where(Suggestion.id == suggestion_id)
    if db.is_postgres():
        query = query.lock_rows("SHARE")
    row = await query.first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such suggestion."), code="suggestion_not_found")
    if not rules.is_open(row["status"]):
        raise errors.Conflict(_l("This suggestion has already been decided."), code="suggestion_decided")


async def support(*, suggestion_id: int, member_id: int) -> bool:
    """A member supports an open suggestion, once: supporting again (even at the same moment,
    from two tabs) changes nothing, because the database holds each pair once. Returns
    whether this call added the support."""
    now = clock.now()
    async with db.transaction(write=True):
        await _lock_open(suggestion_id)
        rows = await (
            Support.insert(Support(suggestion=suggestion_id, account=member_id, created_at=now))
            .on_conflict(action="DO NOTHING")
            .returning(Support.id)
            .run()
        )
        if rows:
            await audit.record(
                action="suggestion.support", actor_id=member_id, subject=f"suggestion:{suggestion_id}", at=now
            )
    return bool(rows)


async def withdraw_support(*, suggestion_id: int, member_id: int) -> bool:
    """A member takes back their support of an open suggestion; withdrawing what is not there
    changes nothing. Returns whether this call removed a support."""
    now = clock.now()
    async with db.transaction(write=True):
        await _lock_open(suggestion_id)
        rows = await (
            Support.delete()
            .where(Support.suggestion == suggestion_id, Support.account == member_id)
            .returning(Support.id)
            .run()
        )
        if rows:
            await audit.record(
                action="suggestion.withdraw_support", actor_id=member_id, subject=f"suggestion:{suggestion_id}", at=now
            )
    return bool(rows)


# --- coordinators ----------------------------------------------------------------------------


async def decide(
    *, suggestion_id: int, outcome: str, reason: str = "", item_code: str | None = None, actor_id: int | None
) -> SuggestionView:
    """A coordinator decides an open suggestion once: ``acquired`` links the item group of the
    item with ``item_code``; ``declined`` needs a reason, which the member sees. A suggestion
    already decided (even a moment ago, by someone else) is refused with a conflict."""
    outcome = (outcome or "").strip().lower()
    reason = rules.clean_text(reason)
    current = await get_suggestion(suggestion_id=suggestion_id)
    if not current.is_open:
        raise _already_decided()
    if problems := rules.decision_problems(outcome=outcome, reason=reason, item_code=item_code):
        raise errors.InvalidInput(_l("Check the decision."), code="invalid_decision", errors=problems)
    group_id = None
    if outcome == Status.acquired.value:
        try:
            item = await catalog.get_item(code=item_code or "")
        except errors.NotFound as exc:
            raise errors.InvalidInput(
                _l("There is no item with the code %(code)s.", code=(item_code or "").strip()[:20]),
                code="unknown_item",
                field="item_code",
            ) from exc
        group_id = item.group_id
    now = clock.now()
    async with db.transaction(write=True):
        # Only an open suggestion changes: of two coordinators deciding at once, one wins.
        rows = await (
            Suggestion.update(
                {
                    Suggestion.status: outcome,
                    Suggestion.decision_reason: reason,
                    Suggestion.item_group: group_id,
                    Suggestion.decided_by: actor_id,
                    Suggestion.decided_at: now,
                }
            )
            .where(Suggestion.id == suggestion_id, Suggestion.status == Status.open.value)
            .returning(Suggestion.id)
            .run()
        )
        if not rows:
            raise _already_decided()
        await audit.record(
            action=f"suggestion.{outcome}",
            actor_id=actor_id,
            subject=f"suggestion:{suggestion_id}",
            detail=f"item_group={group_id}" if group_id else "",
            at=now,
        )
    return await get_suggestion(suggestion_id=suggestion_id)


def _already_decided() -> errors.Conflict:
    return errors.Conflict(_l("This suggestion has already been decided."), code="suggestion_decided")
