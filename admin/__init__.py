"""piccolo_admin for coordinators, built once and mounted at /admin/.

It signs in through the app's own sign-in page and session (the same ``id`` cookie and
session table), so there is one set of credentials. Changes made here go through the same
account rules as the rest of the app, and the audit log cannot be edited.
"""

from __future__ import annotations

import functools
from typing import Any

from piccolo_admin.endpoints import TableConfig, create_admin
from piccolo_api.crud.hooks import Hook, HookType
from piccolo_api.crud.validators import Validators
from starlette.exceptions import HTTPException

from lending import clock, errors
from lending.audit.tables import AuditEvent
from lending.catalog import services as catalog
from lending.catalog.tables import Category, Item, ItemGroup, ProblemReport
from lending.loans.tables import Fee, Hold, Loan, LoanPolicy, Reservation
from lending.mail.tables import EmailTemplate
from lending.members import services as members
from lending.members.tables import Account, Organisation, Session
from lending.memberships import tiers
from lending.memberships.tables import (
    Agreement,
    AgreementAcceptance,
    Checkout,
    GiftAidDeclaration,
    Membership,
    Payment,
    Refund,
    StripeEvent,
    Tier,
)
from lending.venues.tables import Closure, OpeningSession, Site, Venue


def _reject(exc: errors.DomainError) -> HTTPException:
    problems = "; ".join(f"{field}: {text}" for field, text in exc.errors.items())
    return HTTPException(status_code=exc.status, detail=f"{exc.detail} {problems}".strip())


def _add_on_the_people_page(*_: Any, **__: Any) -> None:
    # piccolo_admin creates users through BaseUser.create_user, skipping pre-save hooks, so an
    # account made here would miss the account rules and its card code.
    raise HTTPException(status_code=405, detail="Add people on the People page (/manage/people).")


async def _before_change_account(row_id: Any, values: dict[str, Any]) -> dict[str, Any]:
    current = (
        await Account.select(Account.role, Account.email, Account.organisation, Account.name)
        .where(Account.id == row_id)
        .first()
        .run()
    )
    if current is None:
        raise HTTPException(status_code=404, detail="There is no such account.")
    merged = {**current, **{key: value for key, value in values.items() if key in current}}
    try:
        derived = await members.admin_account_fields(
            role=merged["role"], email=merged["email"], organisation_id=merged["organisation"], name=merged["name"]
        )
    except errors.DomainError as exc:
        raise _reject(exc) from exc
    # The card code and username are the member's identity on cards and in the admin.
    values = {key: value for key, value in values.items() if key not in {"card_code", "username"}}
    return {**values, **derived}


def _read_only(*_: Any, **__: Any) -> None:
    raise HTTPException(status_code=405, detail="The audit log cannot be changed.")


def _add_at_the_desk(*_: Any, **__: Any) -> None:
    raise HTTPException(status_code=405, detail="Add items at /desk/items/new, where they get a code and a label.")


def _retire_instead(*_: Any, **__: Any) -> None:
    raise HTTPException(status_code=405, detail="Items are retired (with a reason), not deleted: change the status.")


async def _before_change_group(row_id: Any, values: dict[str, Any]) -> dict[str, Any]:
    try:
        return await catalog.admin_update_group(group_id=int(row_id), values=values)
    except errors.DomainError as exc:
        raise _reject(exc) from exc


async def _before_change_category(row_id: Any, values: dict[str, Any]) -> dict[str, Any]:
    try:
        return await catalog.admin_update_category(category_id=int(row_id), values=values)
    except errors.DomainError as exc:
        raise _reject(exc) from exc


async def _before_change_item(row_id: Any, values: dict[str, Any]) -> dict[str, Any]:
    try:
        return await catalog.admin_item_changes(item_id=int(row_id), values=values)
    except errors.DomainError as exc:
        raise _reject(exc) from exc


async def _before_change_tier(row_id: Any, values: dict[str, Any]) -> dict[str, Any]:
    try:
        return await tiers.admin_tier_values(values=values, tier_id=int(row_id))
    except errors.DomainError as exc:
        raise _reject(exc) from exc


async def _before_add_tier(row: Tier) -> Tier:
    values = {
        column._meta.name: getattr(row, column._meta.name) for column in Tier._meta.columns if column._meta.name != "id"
    }
    try:
        cleaned = await tiers.admin_tier_values(values=values)
    except errors.DomainError as exc:
        raise _reject(exc) from exc
    for key, value in cleaned.items():
        setattr(row, key, value)
    if row.created_at is None:
        row.created_at = clock.now()
    return row


def _money_is_changed_on_its_pages(*_: Any, **__: Any) -> None:
    raise HTTPException(
        status_code=405,
        detail="Memberships and payments change through the desk, the member's "
        "account and /manage/payments, where their rules and receipts are.",
    )


def _lending_has_its_pages(*_: Any, **__: Any) -> None:
    raise HTTPException(
        status_code=405,
        detail="Loans, holds, bookings and fees change at the desk, on members' "
        "account pages and under Manage → Lending rules, where their rules "
        "and the audit log are.",
    )


def _venue_has_its_pages(*_: Any, **__: Any) -> None:
    raise HTTPException(
        status_code=405,
        detail="The venue's details, opening hours, closures and messages change "
        "under Manage → The venue and Manage → Lending rules, where they are "
        "checked (a readable colour, a real time zone, hours that do not "
        "overlap).",
    )


@functools.cache
def build_admin(*, production: bool):
    """The admin app, built once per process for each ``production`` (building it takes about a
    second, and every app a process makes, such as each test's, mounts the same one)."""
    account = TableConfig(
        Account,
        visible_columns=[
            Account.id,
            Account.name,
            Account.email,
            Account.role,
            Account.card_code,
            Account.organisation,
            Account.active,
        ],
        exclude_visible_filters=[Account.password],
        hooks=[Hook(HookType.pre_patch, _before_change_account)],
        validators=Validators(post_single=[_add_on_the_people_page]),
        menu_group="People",
    )
    organisation = TableConfig(Organisation, menu_group="Referrals")
    audit = TableConfig(
        AuditEvent,
        validators=Validators(
            post_single=[_read_only],
            patch_single=[_read_only],
            put_single=[_read_only],
            delete_single=[_read_only],
            delete_all=[_read_only],
        ),
        order_by=None,
        menu_group="Records",
    )
    no_adding_or_deleting = Validators(
        post_single=[_add_at_the_desk], delete_single=[_retire_instead], delete_all=[_retire_instead]
    )
    catalogue = [
        TableConfig(
            ItemGroup,
            hooks=[Hook(HookType.pre_patch, _before_change_group)],
            validators=no_adding_or_deleting,
            menu_group="Catalogue",
            visible_columns=[ItemGroup.id, ItemGroup.name, ItemGroup.category, ItemGroup.loan_days],
        ),
        TableConfig(
            Item,
            hooks=[Hook(HookType.pre_patch, _before_change_item)],
            validators=no_adding_or_deleting,
            menu_group="Catalogue",
            visible_columns=[Item.id, Item.code, Item.item_group, Item.status, Item.condition, Item.site],
        ),
        TableConfig(Category, hooks=[Hook(HookType.pre_patch, _before_change_category)], menu_group="Catalogue"),
        TableConfig(Site, menu_group="Catalogue"),
        TableConfig(
            ProblemReport,
            menu_group="Catalogue",
            validators=Validators(post_single=[_read_only], delete_single=[_read_only]),
        ),
    ]
    records_only = Validators(
        post_single=[_money_is_changed_on_its_pages],
        patch_single=[_money_is_changed_on_its_pages],
        put_single=[_money_is_changed_on_its_pages],
        delete_single=[_money_is_changed_on_its_pages],
        delete_all=[_money_is_changed_on_its_pages],
    )
    money = [
        TableConfig(
            Tier,
            hooks=[Hook(HookType.pre_patch, _before_change_tier), Hook(HookType.pre_save, _before_add_tier)],
            validators=Validators(
                delete_single=[_money_is_changed_on_its_pages], delete_all=[_money_is_changed_on_its_pages]
            ),
            menu_group="Memberships",
            visible_columns=[
                Tier.id,
                Tier.name,
                Tier.interval,
                Tier.min_pence,
                Tier.max_pence,
                Tier.allow_free,
                Tier.public,
                Tier.active,
            ],
        ),
        TableConfig(
            Membership,
            validators=records_only,
            menu_group="Memberships",
            visible_columns=[
                Membership.id,
                Membership.member,
                Membership.tier,
                Membership.status,
                Membership.amount_pence,
                Membership.method,
                Membership.ends_at,
            ],
        ),
        TableConfig(
            Payment,
            validators=records_only,
            menu_group="Memberships",
            visible_columns=[
                Payment.id,
                Payment.receipt_code,
                Payment.member,
                Payment.amount_pence,
                Payment.method,
                Payment.refunded_pence,
                Payment.paid_at,
            ],
        ),
        *(
            TableConfig(table, validators=records_only, menu_group="Memberships")
            for table in (Refund, Checkout, GiftAidDeclaration, Agreement, AgreementAcceptance, StripeEvent)
        ),
    ]
    lending_only = Validators(
        post_single=[_lending_has_its_pages],
        patch_single=[_lending_has_its_pages],
        put_single=[_lending_has_its_pages],
        delete_single=[_lending_has_its_pages],
        delete_all=[_lending_has_its_pages],
    )
    venue_only = Validators(
        post_single=[_venue_has_its_pages],
        patch_single=[_venue_has_its_pages],
        put_single=[_venue_has_its_pages],
        delete_single=[_venue_has_its_pages],
        delete_all=[_venue_has_its_pages],
    )
    lending = [
        TableConfig(
            Loan,
            validators=lending_only,
            menu_group="Lending",
            visible_columns=[
                Loan.id,
                Loan.item,
                Loan.member,
                Loan.lent_at,
                Loan.due_at,
                Loan.returned_at,
                Loan.renewals,
            ],
        ),
        TableConfig(
            Hold,
            validators=lending_only,
            menu_group="Lending",
            visible_columns=[Hold.id, Hold.item_group, Hold.member, Hold.status, Hold.placed_at, Hold.expires_at],
        ),
        *(
            TableConfig(table, validators=lending_only, menu_group="Lending")
            for table in (Reservation, Fee, LoanPolicy)
        ),
        *(
            TableConfig(table, validators=venue_only, menu_group="Venue")
            for table in (Venue, OpeningSession, Closure, EmailTemplate)
        ),
    ]
    return create_admin(
        tables=[account, organisation, audit, *catalogue, *money, *lending],
        auth_table=Account,
        session_table=Session,
        site_name="lending",
        production=production,
        auto_include_related=False,
    )
