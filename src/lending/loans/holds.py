"""Holds: a place in the queue for a thing (any copy will do); a copy that comes back, or
out of repair, is put aside for the first person waiting, who is told."""

from __future__ import annotations

from datetime import datetime

from lending import clock, db, errors, i18n
from lending.audit import services as audit
from lending.catalog import services as catalog
from lending.catalog.rules import Status as ItemStatus
from lending.catalog.services import ItemView
from lending.catalog.tables import Item
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.facts import code_from_scan, item_row, recipient, refuse_unless_may_queue, screen_of
from lending.loans.loan_policy import policy
from lending.loans.records import HoldView, get_hold
from lending.loans.rules import HoldStatus
from lending.loans.tables import Hold, Loan
from lending.mail import services as mail
from lending.venues import rules as hours
from lending.venues import services as venues


def _hold_expiry(now: datetime, pol: rules.Policy, cal: hours.Calendar) -> datetime:
    """A copy put aside waits ``hold_days`` days, to the close of an open day."""
    return hours.due_at(calendar=cal, lent_at=now, days=pol.hold_days)


async def offer_copy(item_id: int, group_id: int, *, now: datetime, pol: rules.Policy) -> str | None:
    """A copy back on the shelf goes to the first member waiting for the thing: their hold is
    ready, the copy reserved for them (until the close of an open day at its site), and they
    are told. Returns their name, or None."""
    first = (
        await Hold.select(Hold.id, Hold.member, Hold.member.name.as_alias("name"))
        .where(Hold.item_group == group_id, Hold.status == HoldStatus.waiting)
        .order_by(Hold.placed_at)
        .order_by(Hold.id)
        .first()
        .run()
    )
    if first is None:
        return None
    site = await Item.select(Item.site).where(Item.id == item_id).first().run()
    expires = _hold_expiry(now, pol, await venues.calendar(site_id=site["site"] if site else None))
    await (
        Hold.update({Hold.status: HoldStatus.ready, Hold.item: item_id, Hold.ready_at: now, Hold.expires_at: expires})
        .where(Hold.id == first["id"])
        .run()
    )
    await Item.update({Item.status: ItemStatus.reserved.value, Item.updated_at: now}).where(Item.id == item_id).run()
    await audit.record(
        action="hold.ready",
        actor_id=None,
        subject=f"hold:{first['id']}",
        detail=f"member:{first['member']}; item:{item_id}",
        at=now,
    )
    await _queue_hold_ready(first["id"])
    return first["name"]


async def set_item_status(*, code: str, status: str, reason: str = "", actor_id: int | None = None) -> ItemView:
    """Change an item's status by hand (``catalog.set_status`` checks the change); a copy back
    in use (out of repair) goes to the first person waiting before anyone else."""
    item = await catalog.set_status(code=code, status=status, reason=reason, actor_id=actor_id)
    if item.status == ItemStatus.available.value:
        row = await Item.select(Item.id).where(Item.code == item.code).first().run()
        if await offer_copy_if_waiting(item_id=row["id"]):
            item = await catalog.get_item(code=item.code)
    return item


async def offer_copy_if_waiting(*, item_id: int) -> str | None:
    """After a copy comes back into use by hand (out of repair), the queue gets it first."""
    async with db.transaction(write=True):
        item = await Item.select(Item.id, Item.status, Item.item_group).where(Item.id == item_id).first().run()
        if item is None or item["status"] != ItemStatus.available.value:
            return None
        return await offer_copy(item_id, item["item_group"], now=clock.now(), pol=await policy())


async def place_hold(*, member_id: int, item_code: str, actor_id: int | None = None, via: str = "account") -> HoldView:
    """A place in the queue for the thing this copy is (any copy will do). If a copy is on the
    shelf now, it is put aside straight away."""
    code = code_from_scan(item_code)
    async with db.transaction(write=True):
        item = await item_row(code, lock=True) if code else None
        now = clock.now()
        if item is None:
            raise errors.NotFound(_l("There is no item with that code."), code="item_not_found", field="item_code")
        if item["status"] == ItemStatus.retired.value:
            raise errors.Conflict(_l("This item has been retired."), code="item_retired")
        pol = await policy()
        await refuse_unless_may_queue(
            member_id,
            now,
            pol,
            lambda reason: _l("A hold needs a membership that allows borrowing: %(reason)s", reason=reason),
        )
        if (
            await Loan.exists()
            .where(Loan.member == member_id, Loan.returned_at.is_null(), Loan.item.item_group == item["item_group"])
            .run()
        ):
            raise errors.Conflict(_l("You already have this on loan."), code="already_borrowed")
        if (
            await Hold.exists()
            .where(
                Hold.member == member_id,
                Hold.item_group == item["item_group"],
                Hold.status.is_in(list(HoldStatus.ACTIVE)),
            )
            .run()
        ):
            raise errors.Conflict(_l("You are already in the queue for this."), code="hold_exists")
        with db.unique_violation_as(
            lambda: errors.Conflict(_l("You are already in the queue for this."), code="hold_exists")
        ):
            rows = (
                await Hold.insert(
                    Hold(item_group=item["item_group"], member=member_id, status=HoldStatus.waiting, placed_at=now)
                )
                .returning(Hold.id)
                .run()
            )
        hold_id = rows[0]["id"]
        await audit.record(
            action="hold.place",
            actor_id=actor_id if actor_id is not None else member_id,
            subject=f"hold:{hold_id}",
            detail=f"member:{member_id}; item:{item['code']}; via:{screen_of(via)}",
            at=now,
        )
        free = (
            await Item.select(Item.id)
            .where(Item.item_group == item["item_group"], Item.status == ItemStatus.available.value)
            .order_by(Item.id)
            .run()
        )
        for copy in free:
            if not await Loan.exists().where(Loan.item == copy["id"], Loan.returned_at.is_null()).run():
                await offer_copy(copy["id"], item["item_group"], now=now, pol=pol)
                break
    return await get_hold(hold_id=hold_id)


async def cancel_hold(
    *, hold_id: int, actor_id: int | None, member_id: int | None = None, via: str = "account"
) -> None:
    """Leave the queue; a copy put aside passes to the next member."""
    async with db.transaction(write=True):
        now = clock.now()
        row = (
            await Hold.select(Hold.id, Hold.member, Hold.status, Hold.item, Hold.item_group)
            .where(Hold.id == hold_id)
            .first()
            .run()
        )
        if row is None or (member_id is not None and row["member"] != member_id):
            raise errors.NotFound(_l("There is no such hold."), code="hold_not_found")
        if row["status"] not in HoldStatus.ACTIVE:
            return
        # Guarded by the status read, so a sweep that expired it meanwhile (PostgreSQL) wins.
        cancelled = (
            await Hold.update({Hold.status: HoldStatus.cancelled, Hold.closed_at: now})
            .where(Hold.id == hold_id, Hold.status == row["status"])
            .returning(Hold.id)
            .run()
        )
        if not cancelled:
            return
        await audit.record(
            action="hold.cancel",
            actor_id=actor_id,
            subject=f"hold:{hold_id}",
            detail=f"member:{row['member']}; via:{screen_of(via)}",
            at=now,
        )
        if row["status"] == HoldStatus.ready and row["item"]:
            await _release_copy(row["item"], row["item_group"], now=now)


async def _release_copy(item_id: int, group_id: int, *, now: datetime) -> None:
    """A copy no longer put aside goes back on the shelf, and to the next in the queue; unless
    it has gone out meanwhile (a hold that lapsed before the sweep noticed) or into repair."""
    released = (
        await Item.update({Item.status: ItemStatus.available.value, Item.updated_at: now})
        .where(Item.id == item_id, Item.status == ItemStatus.reserved.value)
        .returning(Item.id)
        .run()
    )
    if released:
        await offer_copy(item_id, group_id, now=now, pol=await policy())


async def expire_holds(*, now: datetime | None = None) -> int:
    """Copies put aside and not collected in time pass to the next member in the queue."""
    now = now or clock.now()
    expired = 0
    async with db.transaction(write=True):
        rows = (
            await Hold.select(Hold.id, Hold.item, Hold.item_group)
            .where(Hold.status == HoldStatus.ready, Hold.expires_at <= now)
            .run()
        )
        for row in rows:
            changed = (
                await Hold.update({Hold.status: HoldStatus.expired, Hold.closed_at: now})
                .where(Hold.id == row["id"], Hold.status == HoldStatus.ready)
                .returning(Hold.id)
                .run()
            )
            if not changed:  # collected or cancelled meanwhile
                continue
            await audit.record(action="hold.expire", actor_id=None, subject=f"hold:{row['id']}", at=now)
            if row["item"]:
                await _release_copy(row["item"], row["item_group"], now=now)
            expired += 1
    return expired


async def _queue_hold_ready(hold_id: int) -> None:
    hold = await get_hold(hold_id=hold_id)
    member = await recipient(hold.member_id)
    if member is None:
        return
    with i18n.in_language(member["language"]):
        until = i18n.format_when(hold.expires_at)
        subject = i18n.gettext("%(item)s is ready for you", item=hold.item_name)
        body = "\n".join(
            [
                i18n.gettext("Hello %(name)s,", name=member["name"]),
                "",
                i18n.gettext("The %(item)s you asked for is back and put aside for you.", item=hold.item_name),
                i18n.gettext("Collect it by %(when)s; after that it passes to the next person waiting.", when=until),
            ]
        )
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"hold-ready:{hold_id}",
        to_address=member["email"],
        subject=subject,
        body=body,
        account_id=hold.member_id,
        kind="hold_ready",
        language=member["language"],
        values={"name": member["name"], "item": hold.item_name, "until": until},
    )
