"""Check-in: closing a loan, with the parts checklist, the item's condition, a late fee where
the venue charges one, and the copy passed to the next person waiting."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from lending import clock, db, errors
from lending.audit import services as audit
from lending.catalog.rules import CONDITIONS as ITEM_CONDITIONS
from lending.catalog.rules import Status as ItemStatus
from lending.catalog.tables import Item
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.facts import backdated, code_from_scan, screen_of
from lending.loans.fees import LATE_RETURN
from lending.loans.holds import put_aside, waiting_from
from lending.loans.loan_policy import policy
from lending.loans.records import LoanView, get_loan
from lending.loans.rules import HoldStatus
from lending.loans.tables import Fee, Loan
from lending.venues import rules as hours
from lending.venues import services as venues


@dataclass(frozen=True)
class Return:
    loan: LoanView
    changed: bool  # False when the loan had already been closed: scanning twice changes nothing
    hold_for: str | None = None  # the member the copy is now put aside for
    fee_pence: int = 0
    needs_repair: bool = False


def _parts_missing(parts: object, known: list[str]) -> list[str]:
    chosen = parts if isinstance(parts, list) else [parts] if parts else []
    missing = [str(part) for part in chosen if str(part) in known]
    if len(missing) != len(chosen):
        raise errors.InvalidInput(
            _l("Tick only parts from the item's checklist."), code="invalid_parts", field="parts_missing"
        )
    return missing


# The copy, its thing, its open loan and who borrowed it, its last loan, and the first member
# waiting for the thing, in one statement; the WHERE picks the copy by the loan asked for or by
# its code.
_RETURN_SQL = (
    "SELECT i.id, i.code, i.status, i.item_group, i.site, g.name, g.parts, "
    "o.id AS loan_id, o.lent_at, o.due_at, o.member, o.renewals, o.recorded_at, a.name AS member_name, "
    "(SELECT max(l.id) FROM loan l WHERE l.item = i.id) AS last_loan_id, "
    "w.id AS waiting_id, w.member AS waiting_member, wa.name AS waiting_name, wa.email AS waiting_email, "
    "wa.language AS waiting_language "
    "FROM item i JOIN item_group g ON g.id = i.item_group "
    "LEFT JOIN loan o ON o.item = i.id AND o.returned_at IS NULL "
    "LEFT JOIN account a ON a.id = o.member "
    f"LEFT JOIN hold w ON w.id = (SELECT h.id FROM hold h WHERE h.item_group = i.item_group "
    f"AND h.status = '{HoldStatus.waiting}' ORDER BY h.placed_at, h.id LIMIT 1) "
    "LEFT JOIN account wa ON wa.id = w.member "
)
_BY_LOAN = "WHERE i.id = (SELECT item FROM loan WHERE id = {loan})"
_BY_CODE = "WHERE i.code = {code}"
_LOAD = {where: db.Statement(_RETURN_SQL + where) for where in (_BY_LOAN, _BY_CODE)}
# PostgreSQL: the copy is locked by a statement of its own, and read by the next one, which
# sees what a check-in that held the lock meanwhile committed (a locking read would re-check
# only the copy's row, not the loan joined to it, and close the same loan twice).
_LOCK = {where: db.Statement("SELECT i.id FROM item i " + where + " FOR UPDATE") for where in (_BY_LOAN, _BY_CODE)}


async def _load(*, loan_id: int | None, code: str) -> dict | None:
    where, values = (_BY_LOAN, {"loan": loan_id}) if loan_id is not None else (_BY_CODE, {"code": code})
    if db.is_postgres():
        await _LOCK[where].rows(Item, **values)
    rows = await _LOAD[where].rows(Item, **values)
    return rows[0] if rows else None


def _checked_input(condition: str, notes: str) -> tuple[str, str]:
    condition = (condition or "").strip()
    if condition and condition not in ITEM_CONDITIONS:
        raise errors.InvalidInput(_l("Choose a condition from the list."), code="invalid_condition", field="condition")
    notes = (notes or "").strip()
    if len(notes) > rules.MAX_NOTES:
        raise errors.InvalidInput(_l("Keep notes under 2,000 characters."), code="notes_too_long", field="notes")
    return condition, notes


async def check_in(
    *,
    loan_id: int | None = None,
    item_code: str | None = None,
    condition: str = "",
    notes: str = "",
    parts_missing: list[str] | None = None,
    needs_repair: bool = False,
    returned_at: datetime | str | None = None,
    actor_id: int | None,
    via: str = "desk",
) -> Return:
    """Close the item's open loan. Returning what is already back changes nothing and says so;
    "needs repair" puts the copy into maintenance, otherwise it goes to the next hold or back
    on the shelf. Load (one statement, after the lock on PostgreSQL), decide, write."""
    condition, notes = _checked_input(condition, notes)
    pol, venue = await policy(), await venues.snapshot()
    async with db.transaction(write=True):
        code = "" if loan_id is not None else code_from_scan(item_code or "")
        row = await _load(loan_id=loan_id, code=code) if loan_id is not None or code else None
        if row is None:
            if loan_id is not None:
                raise errors.NotFound(_l("There is no such loan."), code="loan_not_found")
            raise errors.NotFound(_l("There is no item with that code."), code="item_not_found", field="item_code")
        now = clock.now()  # after the lock, so a return is never recorded before the loan it closes
        if row["loan_id"] is None or (loan_id is not None and row["loan_id"] != loan_id):
            return await _unchanged(row, loan_id)
        when = backdated(returned_at, now=now, not_before=row["lent_at"], field_name="returned_at")
        parts = row["parts"]
        known = json.loads(parts) if isinstance(parts, str) else list(parts or [])
        missing = _parts_missing(parts_missing or [], known)
        repair = needs_repair or bool(missing)
        fee = rules.late_fee(
            policy=pol,
            due_on=hours.local_date(row["due_at"], venue.settings.timezone),
            returned_on=hours.local_date(when, venue.settings.timezone),
        )
        waiting = None if repair else waiting_from(row, prefix="waiting_")
        await _write_return(
            row,
            condition=condition,
            notes=notes,
            missing=missing,
            repair=repair,
            fee=fee,
            when=when,
            now=now,
            actor_id=actor_id,
        )
        events = [_return_event(row, condition, repair, when, now, actor_id, screen_of(via))]
        if waiting is not None:
            events.append(
                await put_aside(
                    waiting, item_id=row["id"], item_name=row["name"], site_id=row["site"], now=now, pol=pol
                )
            )
        await audit.record_all(events, at=now)
    loan = LoanView(
        id=row["loan_id"],
        item_code=row["code"],
        item_name=row["name"],
        group_id=row["item_group"],
        member_id=row["member"],
        member_name=row["member_name"],
        lent_at=row["lent_at"],
        due_at=row["due_at"],
        renewals=row["renewals"],
        recorded_at=row["recorded_at"],
        returned_at=when,
        return_condition=condition,
        return_notes=notes,
        parts_missing=missing,
    )
    return Return(
        loan=loan, changed=True, hold_for=waiting.name if waiting else None, fee_pence=fee, needs_repair=repair
    )


async def _unchanged(row: dict, loan_id: int | None) -> Return:
    """Checking in what is already back: the loan as it was closed, and nothing written."""
    if loan_id is not None:
        return Return(loan=await get_loan(loan_id=loan_id), changed=False)
    if row["last_loan_id"] is None:
        raise errors.Conflict(_l("This item is not on loan."), code="not_on_loan", field="item_code")
    return Return(loan=await get_loan(loan_id=row["last_loan_id"]), changed=False)


async def _write_return(
    row: dict,
    *,
    condition: str,
    notes: str,
    missing: list[str],
    repair: bool,
    fee: int,
    when: datetime,
    now: datetime,
    actor_id: int | None,
) -> None:
    """The loan closed, the copy's status, condition and reason, and a late fee where one is due."""
    await (
        Loan.update(
            {
                Loan.returned_at: when,
                Loan.returned_by: actor_id,
                Loan.return_recorded_at: now,
                Loan.return_condition: condition,
                Loan.return_notes: notes,
                Loan.parts_missing: json.dumps(missing),
            }
        )
        .where(Loan.id == row["loan_id"])
        .run()
    )
    waiting = row["waiting_id"] is not None and not repair
    status = ItemStatus.maintenance if repair else ItemStatus.reserved if waiting else ItemStatus.available
    item_update = {Item.updated_at: now, Item.status: status.value}
    if repair:
        reason = notes or (str(_l("Parts missing: %(parts)s", parts=", ".join(missing))) if missing else "")
        item_update[Item.status_reason] = reason or str(_l("Needs repair after a loan."))
    if condition:
        item_update[Item.condition] = condition
    await Item.update(item_update).where(Item.id == row["id"]).run()
    if fee:
        await Fee.insert(
            Fee(member=row["member"], loan=row["loan_id"], amount_pence=fee, reason=LATE_RETURN, created_at=now)
        ).run()


def _return_event(
    row: dict, condition: str, repair: bool, when: datetime, now: datetime, actor_id: int | None, via: str
) -> audit.Event:
    detail = f"member:{row['member']}; via:{via}"
    if condition:
        detail += f"; condition:{condition}"
    if repair:
        detail += "; needs repair"
    if when != now:
        detail += f"; backdated to {when.isoformat()}"
    return audit.Event("loan.check_in", actor_id, f"item:{row['code']}", detail)
