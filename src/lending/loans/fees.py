"""The fee ledger: late fees, paid or written off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lending import clock, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.loans.tables import Fee


@dataclass(frozen=True)
class FeeView:
    id: int
    member_id: int
    member_name: str
    amount_pence: int
    reason: str
    created_at: datetime
    settled_at: datetime | None
    settlement: str
    item_code: str | None = None


# A fee's reason is stored in English and shown in the reader's language.
LATE_RETURN = "Late return"


FEE_REASONS = {LATE_RETURN: _l("Late return")}


async def list_fees(*, member_id: int | None = None, unsettled_only: bool = True, limit: int = 500) -> list[FeeView]:
    query = Fee.select(
        Fee.id,
        Fee.member,
        Fee.member.name.as_alias("member_name"),
        Fee.amount_pence,
        Fee.reason,
        Fee.created_at,
        Fee.settled_at,
        Fee.settlement,
        Fee.loan.item.code.as_alias("item_code"),
    )
    if member_id is not None:
        query = query.where(Fee.member == member_id)
    if unsettled_only:
        query = query.where(Fee.settled_at.is_null())
    rows = await query.order_by(Fee.id, ascending=False).limit(limit).run()
    return [
        FeeView(
            id=r["id"],
            member_id=r["member"],
            member_name=r["member_name"],
            amount_pence=r["amount_pence"],
            reason=FEE_REASONS.get(r["reason"], r["reason"]),
            created_at=r["created_at"],
            settled_at=r["settled_at"],
            settlement=r["settlement"],
            item_code=r["item_code"],
        )
        for r in rows
    ]


async def settle_fee(*, fee_id: int, settlement: str, actor_id: int | None, note: str = "") -> None:
    """A fee paid, or written off (the venue's choice, with a note why)."""
    if settlement not in ("paid", "written_off"):
        raise errors.InvalidInput(_l("Choose paid or written off."), code="invalid_settlement", field="settlement")
    async with db.transaction(write=True):
        rows = (
            await Fee.update(
                {
                    Fee.settled_at: clock.now(),
                    Fee.settlement: settlement,
                    Fee.settled_by: actor_id,
                    Fee.note: note.strip()[:500],
                }
            )
            .where(Fee.id == fee_id, Fee.settled_at.is_null())
            .returning(Fee.id)
            .run()
        )
        if not rows:
            if not await Fee.exists().where(Fee.id == fee_id).run():
                raise errors.NotFound(_l("There is no such fee."), code="fee_not_found")
            return
        await audit.record(action=f"fee.{settlement}", actor_id=actor_id, subject=f"fee:{fee_id}", detail=note[:200])
