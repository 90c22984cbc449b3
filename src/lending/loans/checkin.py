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
from lending.loans.facts import backdated, code_from_scan, group_row, item_row, screen_of
from lending.loans.fees import LATE_RETURN
from lending.loans.holds import offer_copy
from lending.loans.loan_policy import policy
from lending.loans.records import LoanView, get_loan
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
    on the shelf."""
    condition = (condition or "").strip()
    if condition and condition not in ITEM_CONDITIONS:
        raise errors.InvalidInput(_l("Choose a condition from the list."), code="invalid_condition", field="condition")
    notes = (notes or "").strip()
    if len(notes) > rules.MAX_NOTES:
        raise errors.InvalidInput(_l("Keep notes under 2,000 characters."), code="notes_too_long", field="notes")
    screen = screen_of(via)
    async with db.transaction(write=True):
        if loan_id is not None:
            target = await Loan.select(Loan.id, Loan.item).where(Loan.id == loan_id).first().run()
            if target is None:
                raise errors.NotFound(_l("There is no such loan."), code="loan_not_found")
            item = (
                await Item.select(Item.id, Item.code, Item.status, Item.item_group)
                .where(Item.id == target["item"])
                .first()
                .run()
            )
            item = await item_row(item["code"], lock=True)
        else:
            code = code_from_scan(item_code or "")
            item = await item_row(code, lock=True) if code else None
            if item is None:
                raise errors.NotFound(_l("There is no item with that code."), code="item_not_found", field="item_code")
        now = clock.now()  # after the lock, so a return is never recorded before the loan it closes
        open_loan = (
            await Loan.select(Loan.id, Loan.lent_at, Loan.due_at, Loan.member)
            .where(Loan.item == item["id"], Loan.returned_at.is_null())
            .first()
            .run()
        )
        if loan_id is not None and (open_loan is None or open_loan["id"] != loan_id):
            return Return(loan=await get_loan(loan_id=loan_id), changed=False)
        if open_loan is None:
            last = (
                await Loan.select(Loan.id)
                .where(Loan.item == item["id"])
                .order_by(Loan.id, ascending=False)
                .first()
                .run()
            )
            if last is None:
                raise errors.Conflict(_l("This item is not on loan."), code="not_on_loan", field="item_code")
            return Return(loan=await get_loan(loan_id=last["id"]), changed=False)
        when = backdated(returned_at, now=now, not_before=open_loan["lent_at"], field_name="returned_at")
        group = await group_row(item["item_group"])
        known = json.loads(group["parts"]) if isinstance(group["parts"], str) else list(group["parts"] or [])
        missing = _parts_missing(parts_missing or [], known)
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
            .where(Loan.id == open_loan["id"])
            .run()
        )
        repair = needs_repair or bool(missing)
        item_update = {
            Item.updated_at: now,
            Item.status: ItemStatus.maintenance.value if repair else ItemStatus.available.value,
        }
        if repair:
            reason = notes or (str(_l("Parts missing: %(parts)s", parts=", ".join(missing))) if missing else "")
            item_update[Item.status_reason] = reason or str(_l("Needs repair after a loan."))
        if condition:
            item_update[Item.condition] = condition
        await Item.update(item_update).where(Item.id == item["id"]).run()
        pol = await policy()
        cal = await venues.calendar()
        fee = rules.late_fee(
            policy=pol,
            due_on=hours.local_date(open_loan["due_at"], cal.timezone),
            returned_on=hours.local_date(when, cal.timezone),
        )
        if fee:
            await Fee.insert(
                Fee(
                    member=open_loan["member"],
                    loan=open_loan["id"],
                    amount_pence=fee,
                    reason=LATE_RETURN,
                    created_at=now,
                )
            ).run()
        detail = f"member:{open_loan['member']}; via:{screen}"
        if condition:
            detail += f"; condition:{condition}"
        if repair:
            detail += "; needs repair"
        if when != now:
            detail += f"; backdated to {when.isoformat()}"
        await audit.record(
            action="loan.check_in", actor_id=actor_id, subject=f"item:{item['code']}", detail=detail, at=now
        )
        hold_for = None if repair else await offer_copy(item["id"], item["item_group"], now=now, pol=pol)
        loan = await get_loan(loan_id=open_loan["id"])
    return Return(loan=loan, changed=True, hold_for=hold_for, fee_pence=fee, needs_repair=repair)
