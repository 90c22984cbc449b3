"""What lending's rules need, read from the tables: the copy and its thing, loan periods, the
borrower's standing, who a message goes to; and the pieces every use case shares (the screen
an action came from, a backdated time, reasons as the API lists them)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lending import codes, db, errors, i18n
from lending.catalog.tables import Category, Item, ItemGroup
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.tables import Fee, Loan
from lending.members.tables import Account
from lending.memberships import records
from lending.venues import rules as hours

SCREENS = ("desk", "api", "account", "admin", "cli")


def screen_of(via: str) -> str:
    return via if via in SCREENS else "api"


def code_from_scan(text: str) -> str:
    """A code typed, read by a barcode scanner, or decoded from a QR (``.../i/CODE`` for an item,
    ``.../c/CODE`` for a member card); '' when it cannot be one."""
    cleaned = (text or "").strip()
    for marker in ("/i/", "/c/"):
        if marker in cleaned:
            cleaned = cleaned.rsplit(marker, 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/")
            break
    return codes.normalise(cleaned)


async def category_days(category_id: int | None) -> tuple[int | None, ...]:
    """Loan periods of the category and its ancestors, nearest first."""
    if category_id is None:
        return ()
    rows = {row["id"]: row for row in await Category.select(Category.id, Category.parent, Category.loan_days).run()}
    chain, seen = [], set()
    while category_id is not None and category_id in rows and category_id not in seen:
        seen.add(category_id)
        chain.append(rows[category_id]["loan_days"])
        category_id = rows[category_id]["parent"]
    return tuple(chain)


async def borrower_facts(member_id: int, now: datetime, pol: rules.Policy) -> tuple[rules.Borrower, object]:
    membership = await records.current_membership(member_id=member_id, now=now)
    due = [
        row["due_at"]
        for row in await Loan.select(Loan.due_at).where(Loan.member == member_id, Loan.returned_at.is_null()).run()
    ]
    open_loans, overdue = len(due), sum(1 for moment in due if moment < now)
    unpaid = 0
    if pol.fees_enabled:
        rows = await Fee.select(Fee.amount_pence).where(Fee.member == member_id, Fee.settled_at.is_null()).run()
        unpaid = sum(row["amount_pence"] for row in rows)
    return rules.Borrower(
        membership_status=membership.status if membership else None,
        loan_limit=membership.loan_limit if membership else 0,
        open_loans=open_loans,
        overdue_loans=overdue,
        unpaid_fees_pence=unpaid,
    ), membership


async def item_row(code: str, *, lock: bool) -> dict | None:
    """The item (locked on PostgreSQL inside a write; SQLite's write lock serialises already)."""
    query = Item.select(Item.id, Item.code, Item.status, Item.item_group, Item.condition, Item.site).where(
        Item.code == code
    )
    if lock and db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def group_row(group_id: int) -> dict:
    return (
        await ItemGroup.select(ItemGroup.id, ItemGroup.name, ItemGroup.category, ItemGroup.loan_days, ItemGroup.parts)
        .where(ItemGroup.id == group_id)
        .first()
        .run()
    )


async def due_for(group: dict, membership, cal: hours.Calendar, lent_at: datetime) -> datetime:
    days = rules.loan_days(
        item_days=group["loan_days"],
        category_days=await category_days(group["category"]),
        tier_days=getattr(membership, "loan_days", None),
    )
    return hours.due_at(calendar=cal, lent_at=lent_at, days=days)


def reason_list(reasons) -> list[dict]:
    return [{"code": reason.code, "detail": reason.message} for reason in reasons]


def backdated(
    value: datetime | str | None, *, now: datetime, not_before: datetime | None = None, field_name: str
) -> datetime:
    """A backdated time, or now. Strings are the venue's wall-clock ("2026-12-01T15:30")."""
    if value is None or value == "":
        return now
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise errors.InvalidInput(
                _l("Enter a date and time like 2026-12-01 15:30."), code="invalid_date", field=field_name
            ) from None
        if parsed.tzinfo is None:
            parsed = hours.at_local(parsed.date(), parsed.time(), i18n.current_time_zone())
        value = parsed
    if value.tzinfo is None:
        raise errors.InvalidInput(_l("Give the time with its time zone."), code="invalid_date", field=field_name)
    if problem := rules.backdate_problem(when=value, now=now, not_before=not_before):
        raise errors.InvalidInput(problem, code="invalid_date", field=field_name)
    return value


async def refuse_unless_may_queue(
    member_id: int, now: datetime, pol: rules.Policy, message: Callable[[object], object]
) -> None:
    """Holds and bookings are for members who may borrow (the item limit applies when they
    collect, not when they ask); ``message`` words the first reason."""
    borrower, _ = await borrower_facts(member_id, now, pol)
    if blocking := rules.queue_reasons(borrower, pol):
        raise errors.RuleViolation(message(blocking[0].message), code="borrower_blocked", reasons=reason_list(blocking))


async def recipient(member_id: int) -> dict | None:
    row = (
        await Account.select(Account.email, Account.language, Account.name).where(Account.id == member_id).first().run()
    )
    return row if row and row["email"] else None
