"""Holds: a place in the queue for a thing (any copy will do); a copy that comes back, or
out of repair, is put aside for the first person waiting, who is told."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lending import clock, db, errors, i18n
from lending.audit import services as audit
from lending.catalog import services as catalog
from lending.catalog.rules import Status as ItemStatus
from lending.catalog.services import ItemView
from lending.catalog.tables import Item
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.facts import code_from_scan, item_row, refuse_unless_may_queue, screen_of
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


@dataclass(frozen=True)
class Waiting:
    """The first member waiting for a thing, as a copy put aside for them needs them."""

    hold_id: int
    member_id: int
    name: str
    email: str | None
    language: str


_FIRST_WAITING = db.Statement(
    "SELECT h.id, h.member, a.name, a.email, a.language FROM hold h JOIN account a ON a.id = h.member "
    f"WHERE h.item_group = {{group}} AND h.status = '{HoldStatus.waiting}' ORDER BY h.placed_at, h.id LIMIT 1"
)


def waiting_from(row: dict, prefix: str = "") -> Waiting | None:
    """The first member waiting, from a row that read them (columns ``{prefix}id`` and so on)."""
    if row.get(f"{prefix}id") is None:
        return None
    return Waiting(
        hold_id=row[f"{prefix}id"],
        member_id=row[f"{prefix}member"],
        name=row[f"{prefix}name"],
        email=row[f"{prefix}email"],
        language=row[f"{prefix}language"],
    )


async def put_aside(
    waiting: Waiting, *, item_id: int, item_name: str, site_id: int | None, now: datetime, pol: rules.Policy
) -> audit.Event:
    """Their hold is ready, the copy theirs until the close of an open day at its site, and
    they are told. The caller sets the copy ``reserved`` and records the returned event."""
    expires = _hold_expiry(now, pol, await venues.calendar(site_id=site_id))
    await (
        Hold.update({Hold.status: HoldStatus.ready, Hold.item: item_id, Hold.ready_at: now, Hold.expires_at: expires})
        .where(Hold.id == waiting.hold_id)
        .run()
    )
    await _queue_hold_ready(waiting, item_name=item_name, expires_at=expires)
    return audit.Event("hold.ready", None, f"hold:{waiting.hold_id}", f"member:{waiting.member_id}; item:{item_id}")


async def offer_copy(item_id: int, group_id: int, *, now: datetime, pol: rules.Policy) -> str | None:
    """A copy back on the shelf goes to the first member waiting for the thing (``put_aside``).
    Returns their name, or None."""
    rows = await _FIRST_WAITING.rows(Hold, group=group_id)
    if not rows:
        return None
    waiting = waiting_from(rows[0])
    item = await Item.select(Item.site, Item.item_group.name.as_alias("name")).where(Item.id == item_id).first().run()
    event = await put_aside(waiting, item_id=item_id, item_name=item["name"], site_id=item["site"], now=now, pol=pol)
    await Item.update({Item.status: ItemStatus.reserved.value, Item.updated_at: now}).where(Item.id == item_id).run()
    await audit.record_all([event], at=now)
    return waiting.name


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


async def _queue_hold_ready(waiting: Waiting, *, item_name: str, expires_at: datetime) -> None:
    if not waiting.email:
        return
    with i18n.in_language(waiting.language):
        until = i18n.format_when(expires_at)
        subject = i18n.gettext("%(item)s is ready for you", item=item_name)
        body = "\n".join(
            [
                i18n.gettext("Hello %(name)s,", name=waiting.name),
                "",
                i18n.gettext("The %(item)s you asked for is back and put aside for you.", item=item_name),
                i18n.gettext("Collect it by %(when)s; after that it passes to the next person waiting.", when=until),
            ]
        )
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"hold-ready:{waiting.hold_id}",
        to_address=waiting.email,
        subject=subject,
        body=body,
        account_id=waiting.member_id,
        kind="hold_ready",
        language=waiting.language,
        values={"name": waiting.name, "item": item_name, "until": until},
    )
