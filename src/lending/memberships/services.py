"""Memberships: tiers and the borrowing agreement, joining and renewing (free, through Stripe
Checkout, or at the counter), what Stripe's webhooks change, members' own changes, refunds
and the coordinators' income figures.

Stripe's answers never activate anything by themselves when a browser returns from the
payment page: only a verified webhook does (``handle_stripe_event``). Each event is recorded
once, in the transaction of its effect, and every effect is written as a state ("paid until
the later of the two dates"), never as an increment, so a repeated or late event is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import secrets
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from lending import clock, codes, db, errors, i18n
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.mail import services as mail
from lending.members import rules as member_rules
from lending.members import services as members
from lending.members.services import AccountView
from lending.members.tables import Account
from lending.memberships import rules
from lending.memberships.gateway import CheckoutRequest, StripeGateway
from lending.memberships.rules import Interval, Method, Status
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
from lending.spreadsheets import safe_cell
from lending.venues import services as venues

VENUE_TIME_ZONE = ZoneInfo("Europe/London")  # the venue's own setting arrives with venue settings
LIST_LIMIT = 500


# --- views ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierView:
    id: int
    name: str
    description: str
    suggested: list[int]
    min_pence: int
    max_pence: int
    allow_free: bool
    interval: str
    offer_pay_forward: bool
    gift_aid: bool
    loan_limit: int
    loan_days: int
    public: bool
    active: bool
    position: int

    @property
    def terms(self) -> rules.TierTerms:
        return rules.TierTerms(
            min_pence=self.min_pence,
            max_pence=self.max_pence,
            allow_free=self.allow_free,
            interval=self.interval,
            offer_pay_forward=self.offer_pay_forward,
        )

    @property
    def recurring(self) -> bool:
        return rules.is_recurring(self.interval)

    @property
    def choices(self) -> list[int]:
        """The amounts offered first: the suggestions, and nothing where nothing is allowed."""
        return self.suggested if not self.allow_free or 0 in self.suggested else [0, *self.suggested]

    @property
    def online_min_pence(self) -> int:
        """The smallest amount a member can pay through Stripe."""
        return max(self.min_pence, rules.STRIPE_MINIMUM_PENCE)


def _tier_view(row: dict) -> TierView:
    return TierView(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        suggested=rules.parse_suggested(row["suggested_pence"]),
        min_pence=row["min_pence"],
        max_pence=row["max_pence"],
        allow_free=bool(row["allow_free"]),
        interval=row["interval"],
        offer_pay_forward=bool(row["offer_pay_forward"]),
        gift_aid=bool(row["gift_aid"]),
        loan_limit=row["loan_limit"],
        loan_days=row["loan_days"],
        public=bool(row["public"]),
        active=bool(row["active"]),
        position=row["position"],
    )


@dataclass(frozen=True)
class MembershipView:
    id: int
    member_id: int
    tier_id: int
    tier_name: str
    status: str  # as it is now (a lapsed membership reads "expired" before the sweep writes it)
    amount_pence: int
    forward_pence: int
    interval: str
    method: str
    starts_at: datetime | None
    ends_at: datetime | None
    cancel_at_period_end: bool
    stripe_subscription: str | None
    loan_limit: int
    loan_days: int

    @property
    def recurring_online(self) -> bool:
        return (
            self.method == Method.stripe.value and rules.is_recurring(self.interval) and bool(self.stripe_subscription)
        )

    @property
    def may_borrow(self) -> bool:
        return rules.may_borrow(self.status)

    @property
    def is_open(self) -> bool:
        return self.status in rules.OPEN_STATUSES


_MEMBERSHIP_COLUMNS = (
    Membership.id,
    Membership.member,
    Membership.tier,
    Membership.tier.name.as_alias("tier_name"),
    Membership.status,
    Membership.amount_pence,
    Membership.forward_pence,
    Membership.interval,
    Membership.method,
    Membership.starts_at,
    Membership.ends_at,
    Membership.cancel_at_period_end,
    Membership.stripe_subscription,
    Membership.tier.loan_limit.as_alias("loan_limit"),
    Membership.tier.loan_days.as_alias("loan_days"),
)


def _membership_view(row: dict, now: datetime) -> MembershipView:
    return MembershipView(
        id=row["id"],
        member_id=row["member"],
        tier_id=row["tier"],
        tier_name=row["tier_name"],
        status=rules.effective_status(
            status=row["status"], ends_at=row["ends_at"], now=now, method=row["method"], interval=row["interval"]
        ),
        amount_pence=row["amount_pence"],
        forward_pence=row["forward_pence"],
        interval=row["interval"],
        method=row["method"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        cancel_at_period_end=bool(row["cancel_at_period_end"]),
        stripe_subscription=row["stripe_subscription"],
        loan_limit=row["loan_limit"],
        loan_days=row["loan_days"],
    )


@dataclass(frozen=True)
class PaymentView:
    id: int
    receipt_code: str
    member_id: int
    member_name: str
    member_email: str | None
    tier_name: str
    amount_pence: int
    forward_pence: int
    currency: str
    method: str
    refunded_pence: int
    paid_at: datetime
    covers_until: datetime | None
    recorded_by_name: str | None
    gift_aid: bool
    stripe_payment_intent: str | None

    @property
    def net_pence(self) -> int:
        return self.amount_pence - self.refunded_pence

    @property
    def refundable_pence(self) -> int:
        return max(0, self.amount_pence - self.refunded_pence)


_PAYMENT_COLUMNS = (
    Payment.id,
    Payment.receipt_code,
    Payment.member,
    Payment.member.name.as_alias("member_name"),
    Payment.member.email.as_alias("member_email"),
    Payment.tier_name,
    Payment.amount_pence,
    Payment.forward_pence,
    Payment.currency,
    Payment.method,
    Payment.refunded_pence,
    Payment.paid_at,
    Payment.covers_until,
    Payment.recorded_by.name.as_alias("recorded_by_name"),
    Payment.gift_aid_declaration,
    Payment.stripe_payment_intent,
)


def _payment_view(row: dict) -> PaymentView:
    return PaymentView(
        id=row["id"],
        receipt_code=row["receipt_code"],
        member_id=row["member"],
        member_name=row["member_name"],
        member_email=row["member_email"],
        tier_name=row["tier_name"],
        amount_pence=row["amount_pence"],
        forward_pence=row["forward_pence"],
        currency=row["currency"],
        method=row["method"],
        refunded_pence=row["refunded_pence"],
        paid_at=row["paid_at"],
        covers_until=row["covers_until"],
        recorded_by_name=row["recorded_by_name"],
        gift_aid=row["gift_aid_declaration"] is not None,
        stripe_payment_intent=row["stripe_payment_intent"],
    )


@dataclass(frozen=True)
class AgreementView:
    id: int
    version: int
    body: str
    body_cy: str
    published_at: datetime

    def text_for(self, language: str) -> str:
        return self.body_cy if language == "cy" and self.body_cy.strip() else self.body


@dataclass(frozen=True)
class GiftAid:
    """A Gift Aid declaration as entered with a payment."""

    full_name: str
    house: str
    postcode: str


@dataclass(frozen=True)
class StartOutcome:
    """Where a sign-up or renewal stands: ``checkout_url`` to send the member to Stripe, or an
    active membership already (a free choice), or ``pay_at_counter`` when online payment is
    not available (not set up, or the payment service did not answer: ``payment_problem``)."""

    membership: MembershipView
    checkout_url: str | None = None
    pay_at_counter: bool = False
    payment_problem: str | None = None


@dataclass(frozen=True)
class JoinOutcome(StartOutcome):
    account: AccountView | None = None
    session_token: str = field(default="", repr=False)


# --- tiers ---------------------------------------------------------------------------------------


async def list_tiers(*, public_only: bool = False, include_inactive: bool = False) -> list[TierView]:
    query = Tier.select().order_by(Tier.position).order_by(Tier.min_pence).order_by(Tier.id)
    if not include_inactive:
        query = query.where(Tier.active == True)  # noqa: E712
    if public_only:
        query = query.where(Tier.public == True)  # noqa: E712
    return [_tier_view(row) for row in await query.run()]


async def get_tier(*, tier_id: int) -> TierView:
    row = await Tier.select().where(Tier.id == tier_id).first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such membership."), code="tier_not_found", field="tier")
    return _tier_view(row)


async def find_tier(*, tier: int | str | None, public_only: bool = False, interval: str | None = None) -> TierView:
    """A tier by id or name; without one, the only tier offered (with ``interval``, the only
    one paid that often)."""
    if tier in (None, ""):
        offered = [t for t in await list_tiers(public_only=public_only) if interval in (None, t.interval)]
        if len(offered) == 1:
            return offered[0]
        raise errors.InvalidInput(_l("Choose a membership."), code="tier_required", field="tier")
    if isinstance(tier, int) or str(tier).strip().isdigit():
        found = await get_tier(tier_id=int(tier))
    else:
        row = await Tier.select().where(Tier.name == str(tier).strip()).first().run()
        if row is None:
            raise errors.NotFound(_l("There is no such membership."), code="tier_not_found", field="tier")
        found = _tier_view(row)
    if not found.active or (public_only and not found.public):
        raise errors.NotFound(_l("There is no such membership."), code="tier_not_found", field="tier")
    return found


TierInput = rules.TierInput  # what a coordinator sets for a tier (pure; the setup file checks the same)


async def save_tier(*, values: TierInput, tier_id: int | None = None, actor_id: int | None = None) -> TierView:
    """Add a tier or change one. Its bounds must hold its suggested amounts, and a recurring
    tier's smallest amount must reach Stripe's minimum charge. Existing memberships keep the
    amount their members chose; the new terms apply to the next sign-up or renewal."""
    name = " ".join(values.name.split())
    problems = rules.tier_problems(
        name=name,
        min_pence=values.min_pence,
        max_pence=values.max_pence,
        suggested=values.suggested,
        interval=values.interval,
        loan_limit=values.loan_limit,
        loan_days=values.loan_days,
        allow_free=values.allow_free,
    )
    if len(values.description) > 2000:
        problems["description"] = _l("Keep the explanation to at most 2000 characters.")
    if problems:
        raise errors.InvalidInput(_l("Check the membership's settings."), code="invalid_tier", errors=problems)
    data = {
        Tier.name: name,
        Tier.description: values.description.strip(),
        Tier.suggested_pence: ",".join(str(p) for p in sorted(set(values.suggested))),
        Tier.min_pence: values.min_pence,
        Tier.max_pence: values.max_pence,
        Tier.allow_free: values.allow_free,
        Tier.interval: values.interval,
        Tier.offer_pay_forward: values.offer_pay_forward,
        Tier.gift_aid: values.gift_aid,
        Tier.loan_limit: values.loan_limit,
        Tier.loan_days: values.loan_days,
        Tier.public: values.public,
        Tier.active: values.active,
        Tier.position: values.position,
    }
    taken = errors.Conflict(
        _l("There is already a membership called %(name)s.", name=name), code="tier_name_taken", field="name"
    )
    with db.unique_violation_as(lambda: taken):
        async with db.transaction(write=True):
            clash = Tier.exists().where(Tier.name == name)
            if tier_id is not None:
                clash = clash.where(Tier.id != tier_id)
            if await clash.run():
                raise taken
            if tier_id is None:
                rows = (
                    await Tier.insert(
                        Tier(**{column._meta.name: value for column, value in data.items()}, created_at=clock.now())
                    )
                    .returning(Tier.id)
                    .run()
                )
                tier_id = rows[0]["id"]
                action = "tier.create"
            else:
                rows = await Tier.update(data).where(Tier.id == tier_id).returning(Tier.id).run()
                if not rows:
                    raise errors.NotFound(_l("There is no such membership."), code="tier_not_found")
                action = "tier.update"
            await audit.record(action=action, actor_id=actor_id, subject=f"tier:{tier_id}")
    return await get_tier(tier_id=tier_id)


# --- the borrowing agreement --------------------------------------------------------------------


def _agreement_view(row: dict) -> AgreementView:
    return AgreementView(
        id=row["id"], version=row["version"], body=row["body"], body_cy=row["body_cy"], published_at=row["published_at"]
    )


async def current_agreement() -> AgreementView | None:
    row = await Agreement.select().order_by(Agreement.version, ascending=False).first().run()
    return _agreement_view(row) if row else None


async def publish_agreement(*, body: str, body_cy: str = "", actor_id: int | None = None) -> AgreementView:
    """A new version of the agreement; members accept it when they next join or renew."""
    body, body_cy = body.replace("\r\n", "\n").strip(), body_cy.replace("\r\n", "\n").strip()
    if problems := rules.agreement_problems(body=body, body_cy=body_cy):
        raise errors.InvalidInput(_l("Check the agreement."), code="invalid_agreement", errors=problems)
    busy = errors.Conflict(_l("Someone published a version at the same moment; try again."), code="try_again")
    with db.unique_violation_as(lambda: busy):
        async with db.transaction(write=True):
            latest = await current_agreement()
            version = (latest.version if latest else 0) + 1
            await Agreement.insert(
                Agreement(version=version, body=body, body_cy=body_cy, published_at=clock.now(), published_by=actor_id)
            ).run()
            await audit.record(action="agreement.publish", actor_id=actor_id, subject=f"agreement:{version}")
    found = await current_agreement()
    assert found is not None
    return found


async def _accept_agreement(*, account_id: int, version: int | str | None, now: datetime) -> None:
    """Inside a write transaction: the member accepts the version they were shown, which
    must still be the current one."""
    current = await current_agreement()
    if current is None:
        return  # the venue has not written one yet
    if str(version or "").strip() != str(current.version):
        raise errors.InvalidInput(
            _l("Read and accept the borrowing agreement (version %(version)d).", version=current.version),
            code="agreement_not_accepted",
            field="agreement",
        )
    await AgreementAcceptance.insert(
        AgreementAcceptance(account=account_id, agreement=current.id, accepted_at=now)
    ).run()
    await audit.record(
        action="agreement.accept",
        actor_id=account_id,
        subject=f"account:{account_id}",
        detail=f"version={current.version}",
        at=now,
    )


async def accepted_version(*, account_id: int) -> int | None:
    row = await (
        AgreementAcceptance.select(AgreementAcceptance.agreement.version.as_alias("version"))
        .where(AgreementAcceptance.account == account_id)
        .order_by(AgreementAcceptance.agreement.version, ascending=False)
        .first()
        .run()
    )
    return row["version"] if row else None


# --- reading memberships and payments --------------------------------------------------------------


async def current_membership(*, member_id: int, now: datetime | None = None) -> MembershipView | None:
    """The member's open membership, else their latest one."""
    now = now or clock.now()
    rows = await (
        Membership.select(*_MEMBERSHIP_COLUMNS)
        .where(Membership.member == member_id)
        .order_by(Membership.id, ascending=False)
        .limit(20)
        .run()
    )
    if not rows:
        return None
    open_rows = [row for row in rows if row["status"] in rules.OPEN_STATUSES]
    return _membership_view(open_rows[0] if open_rows else rows[0], now)


async def get_membership(*, membership_id: int, now: datetime | None = None) -> MembershipView:
    row = await Membership.select(*_MEMBERSHIP_COLUMNS).where(Membership.id == membership_id).first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such membership."), code="membership_not_found")
    return _membership_view(row, now or clock.now())


async def member_payments(*, member_id: int, limit: int = 100) -> list[PaymentView]:
    rows = await (
        Payment.select(*_PAYMENT_COLUMNS)
        .where(Payment.member == member_id)
        .order_by(Payment.paid_at, ascending=False)
        .limit(limit)
        .run()
    )
    return [_payment_view(row) for row in rows]


async def receipt_for(*, receipt_code: str, viewer_id: int, sees_everyones: bool) -> PaymentView:
    """A receipt is for its member, and for the staff at the counter; to anyone else it does
    not exist."""
    payment = await get_payment(receipt_code=receipt_code)
    if payment.member_id != viewer_id and not sees_everyones:
        raise errors.NotFound(_l("There is no such payment."), code="payment_not_found")
    return payment


async def get_payment(*, payment_id: int | None = None, receipt_code: str | None = None) -> PaymentView:
    query = Payment.select(*_PAYMENT_COLUMNS)
    if payment_id is not None:
        query = query.where(Payment.id == payment_id)
    else:
        query = query.where(Payment.receipt_code == codes.normalise(receipt_code or ""))
    row = await query.first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such payment."), code="payment_not_found")
    return _payment_view(row)


async def currencies_taken() -> set[str]:
    """The currencies payments have been taken in (the venue's currency stays once there is one)."""
    return {row["currency"] for row in await Payment.select(Payment.currency).distinct().run()}


async def list_payments(*, limit: int = LIST_LIMIT) -> list[PaymentView]:
    rows = await Payment.select(*_PAYMENT_COLUMNS).order_by(Payment.paid_at, ascending=False).limit(limit).run()
    return [_payment_view(row) for row in rows]


async def checkout_for_member(*, member_id: int, session_id: str) -> dict | None:
    """The checkout a returning browser names, if it is this member's: a session id from
    someone else's URL, or one made up, finds nothing."""
    if not session_id or len(session_id) > 200:
        return None
    return await (
        Checkout.select(
            Checkout.id,
            Checkout.status,
            Checkout.membership,
            Checkout.amount_pence,
            Checkout.forward_pence,
            Checkout.interval,
        )
        .where(Checkout.session_id == session_id, Checkout.membership.member == member_id)
        .first()
        .run()
    )


# --- choosing an amount ---------------------------------------------------------------------------


def read_amount(value: object, *, pounds: bool, field_name: str = "amount") -> int:
    """An amount from a form (pounds, as typed) or the API (pence), or a clear error."""
    parsed = rules.parse_pounds(str(value or "")) if pounds else rules.parse_pence(value)
    if isinstance(parsed, rules.AmountProblem):
        raise errors.InvalidInput(parsed.message, code=parsed.code, field=field_name)
    if parsed > rules.MAX_AMOUNT_PENCE:
        raise errors.InvalidInput(
            _l("The largest amount for this membership is %(max)s.", max=rules.format_money(rules.MAX_AMOUNT_PENCE)),
            code="amount_above_maximum",
            field=field_name,
        )
    return parsed


def _amount_problems(tier: TierView, amount_pence: int, forward_pence: int, *, online: bool) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    if problem := rules.amount_problem(tier.terms, amount_pence, online=online):
        found["amount"] = (problem.code, problem.message)
    if problem := rules.forward_problem(tier.terms, forward_pence):
        found["forward"] = (problem.code, problem.message)
    if online and amount_pence == 0 and forward_pence:
        found.setdefault(
            "forward",
            (
                "pay_forward_with_free",
                _l("A free membership cannot include a pay-it-forward amount: add it when you pay."),
            ),
        )
    return found


def _raise_problems(problems: dict[str, tuple], extra: dict[str, str] | None = None) -> None:
    messages = {key: message for key, (_code, message) in problems.items()}
    messages.update(extra or {})
    if not messages:
        return
    first_code = next(iter(problems.values()))[0] if problems else "invalid_input"
    detail = next(iter(problems.values()))[1] if len(messages) == 1 and problems else _l("Check what you entered.")
    raise errors.InvalidInput(detail, code=first_code if problems else "invalid_input", errors=messages)


def _gift_aid_problems(gift_aid: GiftAid | None) -> dict[str, str]:
    if gift_aid is None:
        return {}
    return rules.gift_aid_problems(full_name=gift_aid.full_name, house=gift_aid.house, postcode=gift_aid.postcode)


async def _declare_gift_aid(member_id: int, gift_aid: GiftAid | None, now: datetime) -> int | None:
    if gift_aid is None:
        return None
    rows = (
        await GiftAidDeclaration.insert(
            GiftAidDeclaration(
                member=member_id,
                full_name=" ".join(gift_aid.full_name.split()),
                house=gift_aid.house.strip(),
                postcode=rules.normalise_postcode(gift_aid.postcode),
                declared_at=now,
            )
        )
        .returning(GiftAidDeclaration.id)
        .run()
    )
    await audit.record(action="gift_aid.declare", actor_id=member_id, subject=f"account:{member_id}", at=now)
    return rows[0]["id"]


# --- memberships: the open row ---------------------------------------------------------------------


async def _lock_open(member_id: int) -> dict | None:
    """Inside a write transaction: the member's open membership, locked on PostgreSQL (SQLite's
    write lock already serialises writers)."""
    query = Membership.select().where(
        Membership.member == member_id, Membership.status.is_in(list(rules.OPEN_STATUSES))
    )
    if db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def _lock_membership(membership_id: int) -> dict | None:
    query = Membership.select().where(Membership.id == membership_id)
    if db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def _open_or_new(*, member_id: int, tier: TierView, amount_pence: int, forward_pence: int, now: datetime) -> dict:
    """The member's open membership, or a new pending one for this tier. One that has lapsed
    (its end passed before the sweep marked it) is closed first, so a new one can open."""
    row = await _lock_open(member_id)
    if row is not None:
        status = rules.effective_status(
            status=row["status"], ends_at=row["ends_at"], now=now, method=row["method"], interval=row["interval"]
        )
        if status == Status.expired.value:
            await (
                Membership.update({Membership.status: Status.expired.value, Membership.updated_at: now})
                .where(Membership.id == row["id"])
                .run()
            )
            row = None
    if row is not None:
        if row["status"] == Status.pending.value:
            await (
                Membership.update(
                    {
                        Membership.tier: tier.id,
                        Membership.amount_pence: amount_pence,
                        Membership.forward_pence: forward_pence,
                        Membership.interval: tier.interval,
                        Membership.updated_at: now,
                    }
                )
                .where(Membership.id == row["id"])
                .run()
            )
        return await _lock_membership(row["id"])
    one_open = errors.Conflict(
        _l("A membership is being set up for this member at this moment; reload the page."), code="membership_busy"
    )
    with db.unique_violation_as(lambda: one_open):
        rows = (
            await Membership.insert(
                Membership(
                    member=member_id,
                    tier=tier.id,
                    status=Status.pending.value,
                    amount_pence=amount_pence,
                    forward_pence=forward_pence,
                    interval=tier.interval,
                    method="",
                    created_at=now,
                    updated_at=now,
                )
            )
            .returning(Membership.id)
            .run()
        )
    return await _lock_membership(rows[0]["id"])


def _renewal_window_problem(row: dict, now: datetime) -> str | None:
    """A free membership renews only in its last weeks (or once lapsed), so "free for a year"
    cannot be stretched ahead without limit."""
    if row["status"] != Status.active.value or row["ends_at"] is None:
        return None
    if row["ends_at"] - now > rules.EXPIRY_REMINDER_BEFORE * 2:
        return _l(
            "Your membership runs until %(date)s; you can renew it from four weeks before then.",
            date=i18n.lazy_date(row["ends_at"]),
        )
    return None


async def _activate(
    *,
    row: dict,
    tier: TierView,
    amount_pence: int,
    forward_pence: int,
    method: str,
    now: datetime,
    actor_id: int | None,
    interval: str | None = None,
) -> datetime:
    """Make the membership active (or renew it): a period is added to what is left."""
    interval = interval or tier.interval
    current_end = row["ends_at"] if row["status"] == Status.active.value else None
    ends_at = rules.renewed_until(current_end=current_end, now=now, interval=interval)
    await (
        Membership.update(
            {
                Membership.status: Status.active.value,
                Membership.tier: tier.id,
                Membership.amount_pence: amount_pence,
                Membership.forward_pence: forward_pence,
                Membership.interval: interval,
                Membership.method: method,
                Membership.starts_at: row["starts_at"] or now,
                Membership.ends_at: ends_at,
                Membership.cancel_at_period_end: False,
                Membership.updated_at: now,
            }
        )
        .where(Membership.id == row["id"])
        .run()
    )
    await audit.record(
        action="membership.activate",
        actor_id=actor_id,
        subject=f"membership:{row['id']}",
        detail=f"method={method}",
        at=now,
    )
    return ends_at


def _months_later(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (or the month's last day), at the same time."""
    import calendar

    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


async def grant_free_months(
    *, member_id: int, tier_id: int, months: int, actor_id: int | None, now: datetime | None = None
) -> MembershipView:
    """A free membership of ``tier_id`` for ``months`` (a referral's), inside the caller's
    transaction: it activates a pending or lapsed one, or extends the member's current one by
    that much from its end. No payment is recorded; it is not charged to anyone."""
    now = now or clock.now()
    tier = await get_tier(tier_id=tier_id)
    row = await _open_or_new(member_id=member_id, tier=tier, amount_pence=0, forward_pence=0, now=now)
    if row["stripe_subscription"] and row["status"] == Status.active.value:
        raise errors.Conflict(
            _l("This member pays by subscription; cancel it before giving a free membership."),
            code="membership_recurring",
        )
    current_end = row["ends_at"] if row["status"] == Status.active.value and row["ends_at"] else None
    ends_at = _months_later(current_end if current_end and current_end > now else now, months)
    await (
        Membership.update(
            {
                Membership.status: Status.active.value,
                Membership.tier: tier.id,
                Membership.amount_pence: 0,
                Membership.forward_pence: 0,
                Membership.interval: Interval.one_off.value,
                Membership.method: Method.free.value,
                Membership.starts_at: row["starts_at"] or now,
                Membership.ends_at: ends_at,
                Membership.cancel_at_period_end: False,
                Membership.updated_at: now,
            }
        )
        .where(Membership.id == row["id"])
        .run()
    )
    await audit.record(
        action="membership.activate", actor_id=actor_id, subject=f"membership:{row['id']}", detail="method=free", at=now
    )
    return await get_membership(membership_id=row["id"], now=now)


async def _new_receipt_code() -> str:
    for _ in range(5):
        code = codes.new_code(10)
        if not await Payment.exists().where(Payment.receipt_code == code).run():
            return code
    raise errors.Conflict(_l("Could not record the payment; try again."), code="try_again")


# --- joining, renewing and paying ------------------------------------------------------------------


@dataclass(frozen=True)
class _Choice:
    tier: TierView
    amount_pence: int
    forward_pence: int


async def _check_choice(
    *,
    tier: int | str | None,
    amount: object,
    forward: object,
    pounds: bool,
    gateway: StripeGateway,
    public_only: bool,
    gift_aid: GiftAid | None = None,
    interval: str | None = None,
) -> tuple[_Choice | None, dict[str, tuple]]:
    """The tier and amounts chosen, or every problem with them by field as (code, message)."""
    problems: dict[str, tuple] = {}
    try:
        chosen = await find_tier(tier=tier, public_only=public_only, interval=interval)
    except (errors.InvalidInput, errors.NotFound) as exc:
        return None, {"tier": (exc.code, exc.detail)}
    amounts = {}
    for name, value in (("amount", amount), ("forward", forward)):
        try:
            amounts[name] = read_amount(value, pounds=pounds, field_name=name)
        except errors.InvalidInput as exc:
            problems[name] = (exc.code, exc.detail)
    if problems:
        return None, problems
    online = amounts["amount"] > 0 and gateway.configured
    problems = _amount_problems(chosen, amounts["amount"], amounts["forward"], online=online)
    if gift_aid is not None and not chosen.gift_aid:
        problems["gift_aid"] = ("gift_aid_not_offered", _l("This membership does not take Gift Aid declarations."))
    if problems:
        return None, problems
    return _Choice(tier=chosen, amount_pence=amounts["amount"], forward_pence=amounts["forward"]), {}


@dataclass(frozen=True)
class _PendingCheckout:
    membership_id: int
    request: CheckoutRequest
    superseded: list[str] = field(default_factory=list)  # earlier payment pages for this membership


async def _prepare(
    *,
    member_id: int,
    choice: _Choice,
    gift_aid: GiftAid | None,
    agreement_version: int | str | None,
    online: bool,
    now: datetime,
) -> StartOutcome | _PendingCheckout:
    """Inside a write transaction: accept the agreement, then activate a free choice, or leave
    a pending membership with a checkout ready to open (or for the counter)."""
    tier, amount_pence, forward_pence = choice.tier, choice.amount_pence, choice.forward_pence
    current = await current_agreement()
    if agreement_version is not None or (
        current is not None and await accepted_version(account_id=member_id) != current.version
    ):
        # Joining or renewing online accepts the newest version, once.
        await _accept_agreement(account_id=member_id, version=agreement_version, now=now)
    row = await _open_or_new(
        member_id=member_id, tier=tier, amount_pence=amount_pence, forward_pence=forward_pence, now=now
    )
    if row["method"] == Method.stripe.value and row["stripe_subscription"] and row["status"] != Status.pending.value:
        raise errors.Conflict(
            _l("Your membership renews by itself; change its amount on your account page instead."),
            code="already_recurring",
        )
    if amount_pence == 0:
        if problem := _renewal_window_problem(row, now):
            raise errors.Conflict(problem, code="renewal_not_open")
        await _activate(
            row=row, tier=tier, amount_pence=0, forward_pence=0, method=Method.free.value, now=now, actor_id=member_id
        )
        return StartOutcome(membership=await get_membership(membership_id=row["id"], now=now))
    declaration = await _declare_gift_aid(member_id, gift_aid, now)
    if not online:
        return StartOutcome(membership=await get_membership(membership_id=row["id"], now=now), pay_at_counter=True)
    checkout_rows = (
        await Checkout.insert(
            Checkout(
                membership=row["id"],
                tier=tier.id,
                amount_pence=amount_pence,
                forward_pence=forward_pence,
                interval=tier.interval,
                gift_aid_declaration=declaration,
                status="creating",
                created_at=now,
            )
        )
        .returning(Checkout.id)
        .run()
    )
    checkout_id = checkout_rows[0]["id"]
    await audit.record(
        action="membership.checkout",
        actor_id=member_id,
        subject=f"membership:{row['id']}",
        detail=f"checkout={checkout_id}",
        at=now,
    )
    account = await Account.select(Account.email).where(Account.id == member_id).first().run()
    # A returning member pays as the same Stripe customer, so Stripe keeps one record of them.
    known = await (
        Membership.select(Membership.stripe_customer)
        .where(Membership.member == member_id, Membership.stripe_customer.is_not_null())
        .order_by(Membership.id, ascending=False)
        .first()
        .run()
    )
    superseded = (
        await Checkout.select(Checkout.session_id)
        .where(Checkout.membership == row["id"], Checkout.status == "open", Checkout.id != checkout_id)
        .run()
    )
    request = CheckoutRequest(
        reference=str(checkout_id),
        nonce=secrets.token_hex(8),
        mode="subscription" if tier.recurring else "payment",
        amount_pence=amount_pence + forward_pence,
        currency=await venues.currency(),
        interval=tier.interval if tier.recurring else None,
        # What the member reads on Stripe's page, in their language (the page around it is English).
        product_name=i18n.gettext(
            "%(tier)s membership (includes %(amount)s to fund free places)",
            tier=tier.name,
            amount=i18n.format_money(forward_pence),
        )
        if forward_pence
        else i18n.gettext("%(tier)s membership", tier=tier.name),
        success_url="/join/done?session_id={CHECKOUT_SESSION_ID}",
        cancel_url=f"/join/cancelled?checkout={checkout_id}",
        customer_email=account["email"] if account else None,
        customer_id=known["stripe_customer"] if known else None,
        metadata={"checkout_id": str(checkout_id), "membership_id": str(row["id"]), "member_id": str(member_id)},
    )
    return _PendingCheckout(
        membership_id=row["id"], request=request, superseded=[r["session_id"] for r in superseded if r["session_id"]]
    )


async def _open_checkout(
    pending: _PendingCheckout, *, gateway: StripeGateway, base_url: str, now: datetime
) -> StartOutcome:
    """After the commit, so nobody's write waits for Stripe: create the Checkout Session. If
    Stripe does not answer, the membership stays pending for the member to try again (or pay
    at the counter); nothing is lost."""
    request = pending.request
    request = CheckoutRequest(
        **{
            **request.__dict__,
            "success_url": base_url + request.success_url,
            "cancel_url": base_url + request.cancel_url,
        }
    )
    checkout_id = int(request.reference)
    try:
        created = await gateway.create_checkout(request)
    except (errors.Unavailable, errors.RuleViolation) as exc:
        await Checkout.update({Checkout.status: "failed"}).where(Checkout.id == checkout_id).run()
        return StartOutcome(
            membership=await get_membership(membership_id=pending.membership_id, now=now),
            pay_at_counter=True,
            payment_problem=str(exc.detail),
        )
    await (
        Checkout.update({Checkout.status: "open", Checkout.session_id: created.session_id, Checkout.url: created.url})
        .where(Checkout.id == checkout_id)
        .run()
    )
    # The new page replaces any left open, so the same membership cannot be paid for twice.
    for session_id in pending.superseded:
        await gateway.expire_checkout(session_id=session_id)
    return StartOutcome(
        membership=await get_membership(membership_id=pending.membership_id, now=now), checkout_url=created.url
    )


async def start_membership(
    *,
    member_id: int,
    tier: int | str | None,
    amount: object,
    forward: object = 0,
    pounds: bool = False,
    gift_aid: GiftAid | None = None,
    agreement_version: int | str | None = None,
    gateway: StripeGateway,
    base_url: str,
    public_only: bool = True,
    interval: str | None = None,
    now: datetime | None = None,
) -> StartOutcome:
    """A member chooses a tier and an amount (no means test). £0 where the tier allows it
    activates (or, in its last weeks, renews) the membership at once, without Stripe. Any
    other amount goes to Stripe Checkout: a one-off payment, or a subscription at that amount
    for a recurring tier; the membership then waits for Stripe's webhook. Where online
    payment is not set up, it waits for payment at the counter."""
    now = now or clock.now()
    choice, problems = await _check_choice(
        tier=tier,
        amount=amount,
        forward=forward,
        pounds=pounds,
        gateway=gateway,
        public_only=public_only,
        gift_aid=gift_aid,
        interval=interval,
    )
    _raise_problems(problems, _gift_aid_problems(gift_aid))
    assert choice is not None
    await members.get_account(account_id=member_id)
    async with db.transaction(write=True):
        prepared = await _prepare(
            member_id=member_id,
            choice=choice,
            gift_aid=gift_aid,
            agreement_version=agreement_version,
            online=gateway.configured,
            now=now,
        )
    if isinstance(prepared, _PendingCheckout):
        return await _open_checkout(prepared, gateway=gateway, base_url=base_url, now=now)
    return prepared


async def join(
    *,
    name: str,
    email: str,
    password: str,
    phone: str | None = None,
    language: str = "en",
    tier: int | str | None,
    amount: object,
    forward: object = 0,
    pounds: bool = False,
    agreement_version: int | str | None,
    gift_aid: GiftAid | None = None,
    gateway: StripeGateway,
    base_url: str,
    now: datetime | None = None,
) -> JoinOutcome:
    """Public sign-up: an account (a member who signs in with their email and a password), the
    borrowing agreement accepted in the version shown (recorded with its version and time),
    and a membership started as in ``start_membership``. Every problem is reported together;
    nothing is written unless the account, the agreement and the amount are all good."""
    now = now or clock.now()
    problems: dict[str, str] = {}
    try:
        members.check_account_details(name=name, email=email, role="member", phone=phone, language=language)
    except errors.InvalidInput as exc:
        problems.update(exc.errors)
    if not member_rules.normalise_email(email):
        problems["email"] = _l("Enter your email address: you sign in with it.")
    if problem := member_rules.password_problem(password or ""):
        problems["password"] = problem
    agreement = await current_agreement()
    if agreement is not None and str(agreement_version or "").strip() != str(agreement.version):
        problems["agreement"] = _l("Read and accept the borrowing agreement.")
    choice, choice_problems = await _check_choice(
        tier=tier, amount=amount, forward=forward, pounds=pounds, gateway=gateway, public_only=True, gift_aid=gift_aid
    )
    problems.update(_gift_aid_problems(gift_aid))
    _raise_problems(choice_problems, problems)
    assert choice is not None

    async with db.transaction(write=True):
        account = await members.create_account(
            name=name, email=email, role="member", password=password, phone=phone, language=language
        )
        prepared = await _prepare(
            member_id=account.id,
            choice=choice,
            gift_aid=gift_aid,
            agreement_version=agreement_version,
            online=gateway.configured,
            now=now,
        )
    token = await members.start_session(account_id=account.id, now=now)
    if isinstance(prepared, _PendingCheckout):
        prepared = await _open_checkout(prepared, gateway=gateway, base_url=base_url, now=now)
    return JoinOutcome(
        membership=prepared.membership,
        checkout_url=prepared.checkout_url,
        pay_at_counter=prepared.pay_at_counter,
        payment_problem=prepared.payment_problem,
        account=account,
        session_token=token,
    )


# --- at the counter --------------------------------------------------------------------------------


async def record_counter_payment(
    *,
    member_id: int,
    tier: int | str | None,
    amount: object,
    method: str,
    forward: object = 0,
    pounds: bool = False,
    gift_aid: GiftAid | None = None,
    agreement_version: int | str | None = None,
    actor_id: int | None,
    now: datetime | None = None,
) -> tuple[MembershipView, PaymentView | None]:
    """A volunteer takes cash or a card-reader payment and the membership is activated, or
    renewed by one period from where it stands. £0 on a tier that allows it activates a free
    membership with no payment. Counter-only (non-public) tiers can be chosen here. A member
    whose membership renews itself through Stripe is not charged twice. ``agreement_version``
    records that the member accepted that version of the borrowing agreement at the counter."""
    now = now or clock.now()
    if method not in rules.COUNTER_METHODS:
        raise errors.InvalidInput(_l("Choose cash or card reader."), code="invalid_method", field="method")
    choice, problems = await _check_choice(
        tier=tier,
        amount=amount,
        forward=forward,
        pounds=pounds,
        gateway=NO_GATEWAY,
        public_only=False,
        gift_aid=gift_aid,
    )
    _raise_problems(problems, _gift_aid_problems(gift_aid))
    assert choice is not None
    member = await members.get_account(account_id=member_id)
    if member.role != "member":
        raise errors.InvalidInput(_l("Memberships are for members' accounts."), code="not_a_member")
    async with db.transaction(write=True):
        if agreement_version not in (None, ""):
            await _accept_agreement(account_id=member_id, version=agreement_version, now=now)
        row = await _open_or_new(
            member_id=member_id,
            tier=choice.tier,
            amount_pence=choice.amount_pence,
            forward_pence=choice.forward_pence,
            now=now,
        )
        if (
            row["method"] == Method.stripe.value
            and row["stripe_subscription"]
            and row["status"] != Status.pending.value
        ):
            raise errors.Conflict(
                _l("This membership renews itself through Stripe: it needs no payment here."), code="already_recurring"
            )
        if choice.amount_pence == 0:
            if problem := _renewal_window_problem(row, now):
                raise errors.Conflict(problem, code="renewal_not_open")
            await _activate(
                row=row,
                tier=choice.tier,
                amount_pence=0,
                forward_pence=0,
                method=Method.free.value,
                now=now,
                actor_id=actor_id,
            )
            return await get_membership(membership_id=row["id"], now=now), None
        ends_at = await _activate(
            row=row,
            tier=choice.tier,
            amount_pence=choice.amount_pence,
            forward_pence=choice.forward_pence,
            method=method,
            now=now,
            actor_id=actor_id,
        )
        declaration = await _declare_gift_aid(member_id, gift_aid, now)
        payment_rows = (
            await Payment.insert(
                Payment(
                    receipt_code=await _new_receipt_code(),
                    member=member_id,
                    membership=row["id"],
                    tier_name=choice.tier.name,
                    amount_pence=choice.amount_pence + choice.forward_pence,
                    forward_pence=choice.forward_pence,
                    currency=await venues.currency(),
                    method=method,
                    gift_aid_declaration=declaration,
                    recorded_by=actor_id,
                    covers_until=ends_at,
                    paid_at=now,
                )
            )
            .returning(Payment.id)
            .run()
        )
        await audit.record(
            action="payment.counter",
            actor_id=actor_id,
            subject=f"payment:{payment_rows[0]['id']}",
            detail=f"method={method}",
            at=now,
        )
        await _queue_receipt(payment_rows[0]["id"])
    return (await get_membership(membership_id=row["id"], now=now), await get_payment(payment_id=payment_rows[0]["id"]))


NO_GATEWAY = StripeGateway(secret_key="", webhook_secret="")


# --- Stripe's webhooks ---------------------------------------------------------------------------


def _stamp(seconds: object) -> datetime | None:
    return datetime.fromtimestamp(int(seconds), tz=UTC) if isinstance(seconds, int | float) else None


def _metadata_id(metadata: object, key: str) -> int | None:
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _invoice_subscription(invoice: dict) -> tuple[str | None, dict]:
    """The invoice's subscription and its metadata; the current API keeps them under
    ``parent.subscription_details`` (older ones had ``invoice.subscription``)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or invoice.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return subscription, details.get("metadata") or {}


def _invoice_payment_intent(invoice: dict) -> str | None:
    for entry in (invoice.get("payments") or {}).get("data") or []:
        intent = (entry.get("payment") or {}).get("payment_intent")
        if intent:
            return intent if isinstance(intent, str) else intent.get("id")
    intent = invoice.get("payment_intent")
    return intent if isinstance(intent, str) else None


def _invoice_period_end(invoice: dict) -> datetime | None:
    ends = [line.get("period", {}).get("end") for line in ((invoice.get("lines") or {}).get("data") or [])]
    ends = [end for end in ends if isinstance(end, int)]
    return _stamp(max(ends)) if ends else None


async def _membership_for_subscription(subscription_id: str | None, metadata: dict) -> dict | None:
    """By the subscription we stored; failing that (its first events can overtake the checkout's)
    by the membership id we put in its metadata, if that membership has no other subscription."""
    if subscription_id:
        query = Membership.select().where(Membership.stripe_subscription == subscription_id)
        if db.is_postgres():
            query = query.lock_rows("UPDATE")
        row = await query.first().run()
        if row is not None:
            return row
    membership_id = _metadata_id(metadata, "membership_id")
    if membership_id is None:
        return None
    row = await _lock_membership(membership_id)
    if row is None or (row["stripe_subscription"] and row["stripe_subscription"] != subscription_id):
        return None
    return row


async def _checkout_by_reference(session_id: str | None, metadata: dict) -> dict | None:
    query = Checkout.select()
    if session_id:
        query = query.where(Checkout.session_id == session_id)
    else:
        checkout_id = _metadata_id(metadata, "checkout_id")
        if checkout_id is None:
            return None
        query = query.where(Checkout.id == checkout_id)
    if db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def _target_membership(checkout: dict) -> dict | None:
    """The membership a paid checkout renews: its own, while open; otherwise (it lapsed or
    was cancelled while the member was paying) the member's open one, or its own reopened."""
    row = await _lock_membership(checkout["membership"])
    if row is None:
        return None
    if row["status"] in rules.OPEN_STATUSES:
        return row
    other = await _lock_open(row["member"])
    return other or row


async def _apply_checkout_terms(
    *,
    checkout: dict,
    membership: dict,
    when: datetime,
    customer: str | None,
    subscription: str | None,
    period_end: datetime | None,
    created: int,
) -> datetime:
    """A paid checkout makes its membership active on the terms chosen; the end date only
    ever moves later, so the checkout's event and the invoice's may come in either order."""
    tier = await get_tier(tier_id=checkout["tier"])
    current_end = membership["ends_at"] if membership["status"] == Status.active.value else None
    if subscription:
        # The invoice's period is the truth; until it arrives (its event may come second) the
        # membership runs for a few days, so a lost invoice cannot make it last for ever.
        ends_at = max(d for d in (current_end, period_end or when + rules.RENEWAL_GRACE) if d)
    else:
        ends_at = rules.renewed_until(current_end=current_end, now=when, interval=checkout["interval"])
    status = rules.apply_stripe_status(
        current=membership["status"] if membership["status"] in rules.OPEN_STATUSES else Status.pending.value,
        incoming=Status.active.value,
        current_at=membership["stripe_state_at"],
        incoming_at=created,
    )
    await (
        Membership.update(
            {
                Membership.status: status,
                Membership.tier: tier.id,
                Membership.amount_pence: checkout["amount_pence"],
                Membership.forward_pence: checkout["forward_pence"],
                Membership.interval: checkout["interval"],
                Membership.method: Method.stripe.value,
                Membership.starts_at: membership["starts_at"] or when,
                Membership.ends_at: ends_at,
                Membership.stripe_state_at: max(created, membership["stripe_state_at"]),
                Membership.stripe_customer: customer or membership["stripe_customer"],
                Membership.stripe_subscription: subscription or membership["stripe_subscription"],
                Membership.cancelled_at: None,
                Membership.updated_at: clock.now(),
            }
        )
        .where(Membership.id == membership["id"])
        .run()
    )
    if checkout["status"] != "complete":
        await (
            Checkout.update({Checkout.status: "complete", Checkout.completed_at: when})
            .where(Checkout.id == checkout["id"])
            .run()
        )
        await audit.record(
            action="membership.activate",
            actor_id=None,
            subject=f"membership:{membership['id']}",
            detail="method=stripe",
        )
    return ends_at


async def _record_stripe_payment(
    *,
    reference: str,
    membership: dict,
    checkout: dict | None,
    amount_pence: int,
    payment_intent: str | None,
    when: datetime,
    covers_until: datetime | None,
) -> bool:
    """One payment per Stripe object (the database holds each reference once)."""
    if amount_pence <= 0:
        return False
    tier = await Tier.select(Tier.name).where(Tier.id == membership["tier"]).first().run()
    rows = (
        await Payment.insert(
            Payment(
                receipt_code=await _new_receipt_code(),
                member=membership["member"],
                membership=membership["id"],
                tier_name=tier["name"] if tier else "",
                amount_pence=amount_pence,
                forward_pence=min(checkout["forward_pence"], amount_pence) if checkout else membership["forward_pence"],
                currency=await venues.currency(),
                method=Method.stripe.value,
                stripe_reference=reference,
                stripe_payment_intent=payment_intent,
                gift_aid_declaration=checkout["gift_aid_declaration"] if checkout else None,
                covers_until=covers_until,
                paid_at=when,
            )
        )
        .on_conflict(action="DO NOTHING")
        .returning(Payment.id)
        .run()
    )
    if rows:
        await _queue_receipt(rows[0]["id"])
    return bool(rows)


async def _on_checkout_paid(event: dict, session: dict) -> str:
    checkout = await _checkout_by_reference(session.get("id"), session.get("metadata") or {})
    if checkout is None:
        return "unmatched"
    membership = await _target_membership(checkout)
    if membership is None:
        return "unmatched"
    when = _stamp(event.get("created")) or clock.now()
    subscription = session.get("subscription")
    subscription = subscription.get("id") if isinstance(subscription, dict) else subscription
    customer = session.get("customer")
    customer = customer.get("id") if isinstance(customer, dict) else customer
    already = checkout["status"] == "complete"
    ends_at = await _apply_checkout_terms(
        checkout=checkout,
        membership=membership,
        when=when,
        customer=customer,
        subscription=subscription,
        period_end=None,
        created=event["created"],
    )
    if session.get("mode") == "payment" and not already:
        intent = session.get("payment_intent")
        await _record_stripe_payment(
            reference=session["id"],
            membership=membership,
            checkout=checkout,
            amount_pence=int(session.get("amount_total") or 0),
            payment_intent=intent.get("id") if isinstance(intent, dict) else intent,
            when=when,
            covers_until=ends_at,
        )
    return "applied"


async def _on_checkout_completed(event: dict) -> str:
    session = event["data"]["object"]
    if session.get("payment_status") in ("paid", "no_payment_required"):
        return await _on_checkout_paid(event, session)
    checkout = await _checkout_by_reference(session.get("id"), session.get("metadata") or {})
    if checkout is None:
        return "unmatched"
    if checkout["status"] in ("creating", "open"):
        # A delayed method (Bacs Direct Debit): paid later, or not.
        await Checkout.update({Checkout.status: "awaiting_payment"}).where(Checkout.id == checkout["id"]).run()
    return "applied"


async def _on_checkout_async_succeeded(event: dict) -> str:
    return await _on_checkout_paid(event, event["data"]["object"])


async def _on_checkout_closed(event: dict) -> str:
    """A delayed payment failed, or the session expired unpaid: the checkout is over; the
    membership stays as it was (pending, or active until its end)."""
    session = event["data"]["object"]
    checkout = await _checkout_by_reference(session.get("id"), session.get("metadata") or {})
    if checkout is None:
        return "unmatched"
    if checkout["status"] != "complete":
        status = "expired" if event["type"] == "checkout.session.expired" else "failed"
        await Checkout.update({Checkout.status: status}).where(Checkout.id == checkout["id"]).run()
    return "applied"


async def _invoice_membership(event: dict) -> tuple[dict, str | None, dict, dict | None]:
    """An invoice event's invoice, subscription, metadata and membership (locked)."""
    invoice = event["data"]["object"]
    subscription, metadata = _invoice_subscription(invoice)
    return invoice, subscription, metadata, await _membership_for_subscription(subscription, metadata)


async def _on_invoice_paid(event: dict) -> str:
    invoice, subscription, metadata, membership = await _invoice_membership(event)
    if membership is None:
        return "unmatched"
    when = _stamp(event.get("created")) or clock.now()
    period_end = _invoice_period_end(invoice)
    checkout = await _checkout_by_reference(None, metadata)
    if checkout is not None and checkout["membership"] != membership["id"]:
        checkout = None
    if checkout is not None and checkout["status"] != "complete":
        customer = invoice.get("customer")
        ends_at = await _apply_checkout_terms(
            checkout=checkout,
            membership=membership,
            when=when,
            subscription=subscription,
            period_end=period_end,
            customer=customer.get("id") if isinstance(customer, dict) else customer,
            created=event["created"],
        )
    else:
        ends_at = max(d for d in (membership["ends_at"], period_end, when) if d)
        status = rules.apply_stripe_status(
            current=membership["status"],
            incoming=Status.active.value,
            current_at=membership["stripe_state_at"],
            incoming_at=event["created"],
        )
        if membership["status"] == Status.expired.value:
            status = Status.active.value  # paid again after lapsing
        await (
            Membership.update(
                {
                    Membership.status: status,
                    Membership.ends_at: ends_at if status != Status.cancelled.value else membership["ends_at"],
                    Membership.stripe_subscription: subscription or membership["stripe_subscription"],
                    Membership.stripe_state_at: max(event["created"], membership["stripe_state_at"]),
                    Membership.updated_at: clock.now(),
                }
            )
            .where(Membership.id == membership["id"])
            .run()
        )
    await _record_stripe_payment(
        reference=invoice["id"],
        membership=membership,
        checkout=checkout,
        amount_pence=int(invoice.get("amount_paid") or 0),
        payment_intent=_invoice_payment_intent(invoice),
        when=when,
        covers_until=ends_at,
    )
    return "applied"


async def _on_invoice_failed(event: dict) -> str:
    invoice, _subscription, _metadata, membership = await _invoice_membership(event)
    if membership is None:
        return "unmatched"
    if membership["status"] == Status.active.value:
        status = rules.apply_stripe_status(
            current=membership["status"],
            incoming=Status.past_due.value,
            current_at=membership["stripe_state_at"],
            incoming_at=event["created"],
        )
        await (
            Membership.update(
                {
                    Membership.status: status,
                    Membership.stripe_state_at: max(event["created"], membership["stripe_state_at"]),
                    Membership.updated_at: clock.now(),
                }
            )
            .where(Membership.id == membership["id"])
            .run()
        )
        if status == Status.past_due.value:
            await _queue_payment_failed(membership["member"], invoice["id"])
    return "applied"


async def _queue_payment_failed(member_id: int, invoice_id: str) -> None:
    """Tell the member, once per invoice, that a renewal did not go through."""
    account = (
        await Account.select(Account.email, Account.language, Account.name).where(Account.id == member_id).first().run()
    )
    if not account or not account["email"]:
        return
    with i18n.in_language(account["language"]):
        subject = i18n.gettext("Your membership payment did not go through")
        body = "\n".join(
            [
                i18n.gettext("Hello %(name)s,", name=account["name"]),
                "",
                i18n.gettext(
                    "Your card was not charged for your membership's renewal. Stripe will try again over the "
                    "next few days, and you can keep borrowing meanwhile."
                ),
                i18n.gettext(
                    "If your card has changed, cancel the membership on your account page and join again, or "
                    "pay at the counter."
                ),
            ]
        )
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"payment-failed:{invoice_id}",
        to_address=account["email"],
        subject=subject,
        body=body,
        account_id=member_id,
        kind="payment_failed",
        language=account["language"],
        values={"name": account["name"]},
    )


async def _on_subscription_updated(event: dict) -> str:
    subscription = event["data"]["object"]
    membership = await _membership_for_subscription(subscription.get("id"), subscription.get("metadata") or {})
    if membership is None:
        return "unmatched"
    if event["created"] < membership["stripe_state_at"]:
        return "ignored"  # an older picture of the subscription than the one applied
    incoming = rules.status_from_stripe(subscription.get("status", ""))
    changes: dict = {
        Membership.stripe_state_at: event["created"],
        Membership.updated_at: clock.now(),
        Membership.cancel_at_period_end: bool(subscription.get("cancel_at_period_end")),
        Membership.stripe_subscription: subscription.get("id"),
    }
    if incoming and membership["status"] != Status.pending.value or incoming == Status.active.value:
        changes[Membership.status] = rules.apply_stripe_status(
            current=membership["status"],
            incoming=incoming,
            current_at=membership["stripe_state_at"],
            incoming_at=event["created"],
        )
    items = (subscription.get("items") or {}).get("data") or []
    if items:
        period_end = _stamp(items[0].get("current_period_end"))
        if period_end and changes.get(Membership.status, membership["status"]) == Status.active.value:
            changes[Membership.ends_at] = max(d for d in (membership["ends_at"], period_end) if d)
        unit = (items[0].get("price") or {}).get("unit_amount")
        if isinstance(unit, int) and unit != membership["amount_pence"] + membership["forward_pence"]:
            forward = membership["forward_pence"] if unit >= membership["forward_pence"] else 0
            changes[Membership.amount_pence] = unit - forward
            changes[Membership.forward_pence] = forward
    await Membership.update(changes).where(Membership.id == membership["id"]).run()
    return "applied"


async def _on_subscription_deleted(event: dict) -> str:
    """The subscription is over, whatever came before: the membership is cancelled, and ends
    when Stripe ended it."""
    subscription = event["data"]["object"]
    membership = await _membership_for_subscription(subscription.get("id"), subscription.get("metadata") or {})
    if membership is None:
        return "unmatched"
    ended = _stamp(subscription.get("ended_at")) or _stamp(subscription.get("canceled_at")) or _stamp(event["created"])
    ends_at = min(d for d in (membership["ends_at"], ended) if d) if (membership["ends_at"] or ended) else None
    await (
        Membership.update(
            {
                Membership.status: Status.cancelled.value,
                Membership.cancelled_at: ended,
                Membership.ends_at: ends_at,
                Membership.cancel_at_period_end: False,
                Membership.stripe_state_at: max(event["created"], membership["stripe_state_at"]),
                Membership.updated_at: clock.now(),
            }
        )
        .where(Membership.id == membership["id"])
        .run()
    )
    await audit.record(
        action="membership.cancel", actor_id=None, subject=f"membership:{membership['id']}", detail="stripe"
    )
    return "applied"


async def _on_refund_created(event: dict) -> str:
    refund = event["data"]["object"]
    intent = refund.get("payment_intent")
    intent = intent.get("id") if isinstance(intent, dict) else intent
    if not intent:
        return "unmatched"
    payment = await Payment.select(Payment.id).where(Payment.stripe_payment_intent == intent).first().run()
    if payment is None:
        return "unmatched"
    await _record_refund(
        payment_id=payment["id"],
        amount_pence=int(refund.get("amount") or 0),
        stripe_refund=refund.get("id"),
        reason="",
        actor_id=None,
        when=_stamp(refund.get("created")) or clock.now(),
    )
    return "applied"


_HANDLERS = {
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.async_payment_succeeded": _on_checkout_async_succeeded,
    "checkout.session.async_payment_failed": _on_checkout_closed,
    "checkout.session.expired": _on_checkout_closed,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_failed": _on_invoice_failed,
    "customer.subscription.updated": _on_subscription_updated,
    "customer.subscription.deleted": _on_subscription_deleted,
    "refund.created": _on_refund_created,
}


async def handle_stripe_event(*, event: dict) -> str:
    """Apply one verified Stripe event, once. The event's id is written in the same
    transaction as its effect, so of five deliveries at the same moment exactly one has an
    effect, and a crash between the two leaves neither. Returns the outcome: ``applied``,
    ``ignored`` (not an event we act on), ``unmatched`` (about nothing we know: kept, with
    its body, for a person to look at) or ``duplicate``."""
    event_type = str(event.get("type") or "")
    created = event.get("created")
    data = event.get("data")
    if not isinstance(created, int) or not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise errors.InvalidInput(_l("This is not a Stripe event."), code="invalid_event")
    handler = _HANDLERS.get(event_type)
    event_id = str(event["id"])[:100]
    async with _one_writer():
        return await _apply_event(event, event_id, event_type, created, handler)


_SQLITE_WRITERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _one_writer():
    """On SQLite, this process's webhook deliveries queue here instead of polling for the
    database's write lock (copies of one event arriving together then find it recorded at
    once: bench/memberships.py measured 13 events/s before, 50-60 after, five copies each);
    PostgreSQL's row locks do the same job without it. Other processes are kept apart by the
    database either way."""
    if db.is_postgres():
        yield
        return
    loop = asyncio.get_running_loop()
    lock = _SQLITE_WRITERS.get(loop)
    if lock is None:
        lock = _SQLITE_WRITERS[loop] = asyncio.Lock()
    async with lock:
        yield


async def _apply_event(event: dict, event_id: str, event_type: str, created: int, handler) -> str:
    async with db.transaction(write=True):
        rows = (
            await StripeEvent.insert(
                StripeEvent(
                    event_id=event_id,
                    type=event_type[:100],
                    created=created,
                    received_at=clock.now(),
                    outcome="processing",
                )
            )
            .on_conflict(action="DO NOTHING")
            .returning(StripeEvent.id)
            .run()
        )
        if not rows:
            return "duplicate"
        outcome = await handler(event) if handler else "ignored"
        await (
            StripeEvent.update(
                {
                    StripeEvent.outcome: outcome,
                    StripeEvent.payload: json.dumps(event)[:200_000] if outcome == "unmatched" else "",
                }
            )
            .where(StripeEvent.id == rows[0]["id"])
            .run()
        )
    return outcome


async def unmatched_events(*, limit: int = 50) -> list[dict]:
    return await (
        StripeEvent.select(StripeEvent.event_id, StripeEvent.type, StripeEvent.received_at)
        .where(StripeEvent.outcome == "unmatched")
        .order_by(StripeEvent.id, ascending=False)
        .limit(limit)
        .run()
    )


# --- members' own changes --------------------------------------------------------------------------


async def _recurring_membership(member_id: int) -> MembershipView:
    found = await current_membership(member_id=member_id)
    if found is None or not found.recurring_online or found.status not in (Status.active.value, Status.past_due.value):
        raise errors.Conflict(
            _l("Only a membership that renews itself online can be changed here."), code="not_recurring"
        )
    return found


async def cancel_recurring(*, member_id: int, gateway: StripeGateway, actor_id: int | None = None) -> MembershipView:
    """Stop a recurring membership at the end of the period already paid for: the member keeps
    borrowing until then, and Stripe charges nothing more."""
    membership = await _recurring_membership(member_id)
    if membership.cancel_at_period_end:
        return membership
    await gateway.cancel_at_period_end(
        subscription_id=membership.stripe_subscription or "", reference=membership.stripe_subscription or ""
    )
    now = clock.now()
    async with db.transaction(write=True):
        await (
            Membership.update({Membership.cancel_at_period_end: True, Membership.updated_at: now})
            .where(Membership.id == membership.id)
            .run()
        )
        await audit.record(
            action="membership.cancel_requested",
            actor_id=actor_id or member_id,
            subject=f"membership:{membership.id}",
            at=now,
        )
    return await get_membership(membership_id=membership.id)


async def change_amount(
    *,
    member_id: int,
    amount: object,
    forward: object = None,
    pounds: bool = False,
    gateway: StripeGateway,
    actor_id: int | None = None,
) -> MembershipView:
    """A member of a recurring membership pays a different amount from the next renewal on,
    within the tier's bounds (and Stripe's minimum)."""
    membership = await _recurring_membership(member_id)
    tier = await get_tier(tier_id=membership.tier_id)
    amount_pence = read_amount(amount, pounds=pounds)
    forward_pence = (
        membership.forward_pence if forward in (None, "") else read_amount(forward, pounds=pounds, field_name="forward")
    )
    problems = _amount_problems(tier, amount_pence, forward_pence, online=True)
    if amount_pence == 0 and "amount" not in problems:
        problems["amount"] = (
            "free_not_recurring",
            _l("To pay nothing, cancel this membership and choose the free option when it ends."),
        )
    _raise_problems(problems)
    if amount_pence == membership.amount_pence and forward_pence == membership.forward_pence:
        return membership
    now = clock.now()
    await gateway.change_subscription_amount(
        subscription_id=membership.stripe_subscription or "",
        amount_pence=amount_pence + forward_pence,
        currency=await venues.currency(),
        interval=membership.interval,
        reference=f"{membership.stripe_subscription}-{amount_pence}-{forward_pence}-{int(now.timestamp())}",
    )
    async with db.transaction(write=True):
        await (
            Membership.update(
                {
                    Membership.amount_pence: amount_pence,
                    Membership.forward_pence: forward_pence,
                    Membership.updated_at: now,
                }
            )
            .where(Membership.id == membership.id)
            .run()
        )
        await audit.record(
            action="membership.amount",
            actor_id=actor_id or member_id,
            subject=f"membership:{membership.id}",
            detail=f"amount={amount_pence}",
            at=now,
        )
    return await get_membership(membership_id=membership.id)


# --- refunds -----------------------------------------------------------------------------------------


async def _record_refund(
    *, payment_id: int, amount_pence: int, stripe_refund: str | None, reason: str, actor_id: int | None, when: datetime
) -> None:
    """Inside a write transaction. A Stripe refund is held once by its id, whether the API's
    answer or the webhook records it first; the payment's refunded total is recounted."""
    rows = (
        await Refund.insert(
            Refund(
                payment=payment_id,
                amount_pence=amount_pence,
                reason=reason,
                stripe_refund=stripe_refund,
                refunded_by=actor_id,
                refunded_at=when,
            )
        )
        .on_conflict(action="DO NOTHING")
        .returning(Refund.id)
        .run()
    )
    if not rows:
        return
    total = await Refund.raw(
        "SELECT COALESCE(SUM(amount_pence), 0) AS total FROM refund WHERE payment = {}", payment_id
    ).run()
    await Payment.update({Payment.refunded_pence: int(total[0]["total"])}).where(Payment.id == payment_id).run()
    await audit.record(
        action="payment.refund",
        actor_id=actor_id,
        subject=f"payment:{payment_id}",
        detail=f"amount={amount_pence}",
        at=when,
    )


async def refund_payment(
    *,
    payment_id: int,
    amount: object = None,
    pounds: bool = False,
    reason: str = "",
    end_membership: bool = False,
    gateway: StripeGateway,
    actor_id: int | None,
) -> PaymentView:
    """Give back all or part of a payment: through Stripe when it was paid there (Stripe's
    answer is recorded, and its webhook finds it already recorded), otherwise as cash handed
    back at the counter. Optionally the membership it paid for ends now."""
    payment = await get_payment(payment_id=payment_id)
    requested = payment.refundable_pence if amount in (None, "") else read_amount(amount, pounds=pounds)
    if problem := rules.refund_problem(
        paid_pence=payment.amount_pence, refunded_pence=payment.refunded_pence, requested_pence=requested
    ):
        raise errors.InvalidInput(problem.message, code=problem.code, field="amount")
    reason = reason.strip()[:500]
    now = clock.now()
    stripe_refund = None
    if payment.method == Method.stripe.value and not payment.stripe_payment_intent:
        reference = await Payment.select(Payment.stripe_reference).where(Payment.id == payment.id).first().run()
        if reference and (reference["stripe_reference"] or "").startswith("in_"):
            intent = await gateway.invoice_payment_intent(invoice_id=reference["stripe_reference"])
            if intent:
                # Kept first, so Stripe's refund.created webhook finds the payment too.
                await Payment.update({Payment.stripe_payment_intent: intent}).where(Payment.id == payment.id).run()
                payment = await get_payment(payment_id=payment.id)
    if payment.method == Method.stripe.value:
        if not payment.stripe_payment_intent:
            raise errors.Conflict(
                _l("Stripe gave no payment reference for this payment; refund it in Stripe's dashboard."),
                code="no_payment_reference",
            )
        refunded = await gateway.refund(
            payment_intent=payment.stripe_payment_intent,
            amount_pence=requested,
            reference=f"{payment.receipt_code}-{payment.refunded_pence}-{requested}",
        )
        stripe_refund = refunded.get("id")
    if end_membership and payment.method == Method.stripe.value:
        # Ending the membership must also stop Stripe charging for it.
        row = (
            await Payment.select(
                Payment.membership.stripe_subscription.as_alias("subscription"),
                Payment.membership.status.as_alias("status"),
            )
            .where(Payment.id == payment.id)
            .first()
            .run()
        )
        if row and row["subscription"] and row["status"] in rules.OPEN_STATUSES:
            await gateway.cancel_now(subscription_id=row["subscription"])
    async with db.transaction(write=True):
        if payment.method != Method.stripe.value:
            current = await Payment.select(Payment.refunded_pence).where(Payment.id == payment.id).first().run()
            if problem := rules.refund_problem(
                paid_pence=payment.amount_pence, refunded_pence=current["refunded_pence"], requested_pence=requested
            ):
                raise errors.Conflict(problem.message, code=problem.code)
        await _record_refund(
            payment_id=payment.id,
            amount_pence=requested,
            stripe_refund=stripe_refund,
            reason=reason,
            actor_id=actor_id,
            when=now,
        )
        if end_membership:
            row = await Payment.select(Payment.membership).where(Payment.id == payment.id).first().run()
            if row and row["membership"]:
                await (
                    Membership.update(
                        {
                            Membership.status: Status.cancelled.value,
                            Membership.ends_at: now,
                            Membership.cancelled_at: now,
                            Membership.updated_at: now,
                        }
                    )
                    .where(Membership.id == row["membership"], Membership.status.is_in(list(rules.OPEN_STATUSES)))
                    .run()
                )
                await audit.record(
                    action="membership.cancel",
                    actor_id=actor_id,
                    subject=f"membership:{row['membership']}",
                    detail="refund",
                    at=now,
                )
    return await get_payment(payment_id=payment.id)


# --- coordinators' figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class IncomeRow:
    month: str
    method: str
    payments: int
    received_pence: int
    refunded_pence: int
    forward_pence: int

    @property
    def net_pence(self) -> int:
        return self.received_pence - self.refunded_pence


async def income_by_month(*, months: int = 24) -> list[IncomeRow]:
    """Money received by month (in the venue's time) and method, newest month first, with
    refunds and the part that funds free places."""
    rows = await Payment.select(
        Payment.paid_at, Payment.method, Payment.amount_pence, Payment.refunded_pence, Payment.forward_pence
    ).run()
    totals: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        key = (rules.month_key(row["paid_at"].astimezone(VENUE_TIME_ZONE)), row["method"])
        entry = totals.setdefault(key, [0, 0, 0, 0])
        entry[0] += 1
        entry[1] += row["amount_pence"]
        entry[2] += row["refunded_pence"]
        entry[3] += row["forward_pence"]
    ordered = sorted(totals.items(), key=lambda item: (item[0][0], item[0][1]), reverse=True)
    kept_months = sorted({month for month, _ in totals}, reverse=True)[:months]
    return [
        IncomeRow(
            month=month, method=method, payments=v[0], received_pence=v[1], refunded_pence=v[2], forward_pence=v[3]
        )
        for (month, method), v in ordered
        if month in kept_months
    ]


CSV_COLUMNS = (
    "receipt",
    "paid_at",
    "member_id",
    "member_name",
    "member_email",
    "membership",
    "method",
    "amount",
    "pay_it_forward",
    "refunded",
    "currency",
    "covers_until",
    "recorded_by",
    "gift_aid",
    "gift_aid_full_name",
    "gift_aid_house",
    "gift_aid_postcode",
    "gift_aid_declared_at",
)


async def export_payments_csv() -> str:
    """Every payment, oldest first, in pounds, with the Gift Aid declaration where there is one."""
    rows = (
        await Payment.select(
            *_PAYMENT_COLUMNS,
            Payment.gift_aid_declaration.full_name.as_alias("ga_name"),
            Payment.gift_aid_declaration.house.as_alias("ga_house"),
            Payment.gift_aid_declaration.postcode.as_alias("ga_postcode"),
            Payment.gift_aid_declaration.declared_at.as_alias("ga_at"),
        )
        .order_by(Payment.paid_at)
        .run()
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        view = _payment_view(row)

        def pounds(pence: int) -> str:
            return f"{pence / 100:.2f}"

        writer.writerow(
            [
                safe_cell(v)
                for v in (
                    view.receipt_code,
                    view.paid_at.astimezone(UTC).isoformat(),
                    view.member_id,
                    view.member_name,
                    view.member_email or "",
                    view.tier_name,
                    view.method,
                    pounds(view.amount_pence),
                    pounds(view.forward_pence),
                    pounds(view.refunded_pence),
                    view.currency.upper(),
                    view.covers_until.date().isoformat() if view.covers_until else "",
                    view.recorded_by_name or "",
                    "yes" if view.gift_aid else "no",
                    row["ga_name"] or "",
                    row["ga_house"] or "",
                    row["ga_postcode"] or "",
                    row["ga_at"].date().isoformat() if row["ga_at"] else "",
                )
            ]
        )
    return out.getvalue()


# --- the passing of time ------------------------------------------------------------------------------


async def expire_lapsed(*, now: datetime | None = None) -> int:
    """Write down what time has done: memberships whose end (plus the renewal grace for
    recurring online ones) has passed are expired. Returns how many."""
    now = now or clock.now()
    rows = (
        await Membership.select(
            Membership.id, Membership.status, Membership.ends_at, Membership.method, Membership.interval
        )
        .where(Membership.status.is_in([Status.active.value, Status.past_due.value]), Membership.ends_at < now)
        .run()
    )
    lapsed = [
        row["id"]
        for row in rows
        if rules.effective_status(
            status=row["status"], ends_at=row["ends_at"], now=now, method=row["method"], interval=row["interval"]
        )
        == Status.expired.value
    ]
    if lapsed:
        async with db.transaction(write=True):
            await (
                Membership.update({Membership.status: Status.expired.value, Membership.updated_at: now})
                .where(
                    Membership.id.is_in(lapsed), Membership.status.is_in([Status.active.value, Status.past_due.value])
                )
                .run()
            )
    return len(lapsed)


# --- messages to members ------------------------------------------------------------------------


async def _queue_receipt(payment_id: int) -> None:
    """Inside the transaction that recorded the payment: the member's receipt, in their
    language, once."""
    payment = await get_payment(payment_id=payment_id)
    account = (
        await Account.select(Account.email, Account.language, Account.name)
        .where(Account.id == payment.member_id)
        .first()
        .run()
    )
    if not account or not account["email"]:
        return
    with i18n.in_language(account["language"]):
        amount = i18n.format_money(payment.amount_pence, currency=payment.currency)
        lines = [
            i18n.gettext("Thank you, %(name)s. This is your receipt.", name=account["name"]),
            "",
            i18n.gettext("Receipt number: %(code)s", code=codes.display(payment.receipt_code)),
            i18n.gettext("Membership: %(tier)s", tier=payment.tier_name),
            i18n.gettext("Amount paid: %(amount)s", amount=amount),
        ]
        if payment.forward_pence:
            lines.append(
                i18n.gettext(
                    "Of which to fund free places: %(amount)s",
                    amount=i18n.format_money(payment.forward_pence, currency=payment.currency),
                )
            )
        lines.append(
            i18n.gettext(
                "Paid on %(date)s (%(method)s)",
                date=i18n.format_date(payment.paid_at),
                method=str(rules.METHOD_LABELS[Method(payment.method)]),
            )
        )
        if payment.covers_until:
            lines.append(
                i18n.gettext("Your membership runs until %(date)s.", date=i18n.format_date(payment.covers_until))
            )
        if payment.gift_aid:
            lines.append(i18n.gettext("You made a Gift Aid declaration with this payment."))
        lines += ["", i18n.gettext("Sign in to your account to see your membership and payments.")]
        subject = i18n.gettext("Your receipt %(code)s", code=codes.display(payment.receipt_code))
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"receipt:{payment_id}",
        to_address=account["email"],
        subject=subject,
        body="\n".join(lines),
        account_id=payment.member_id,
        kind="payment_receipt",
        language=account["language"],
        values={
            "name": account["name"],
            "receipt": codes.display(payment.receipt_code),
            "tier": payment.tier_name,
            "amount": amount,
            "details": "\n".join(lines[5:]),
        },
    )


async def queue_expiry_reminders(*, now: datetime | None = None, dry_run: bool = False) -> int:
    """A reminder, once per membership and end date, to members whose membership ends within
    two weeks and will not renew by itself. Returns how many were queued (or, with
    ``dry_run``, would be)."""
    now = now or clock.now()
    rows = (
        await Membership.select(
            Membership.id,
            Membership.member,
            Membership.ends_at,
            Membership.method,
            Membership.interval,
            Membership.cancel_at_period_end,
            Membership.stripe_subscription,
            Membership.tier.name.as_alias("tier_name"),
            Membership.member.email.as_alias("email"),
            Membership.member.language.as_alias("language"),
            Membership.member.name.as_alias("name"),
        )
        .where(
            Membership.status == Status.active.value,
            Membership.ends_at > now,
            Membership.ends_at <= now + rules.EXPIRY_REMINDER_BEFORE,
        )
        .run()
    )
    queued = 0
    for row in rows:
        renews_itself = (
            row["method"] == Method.stripe.value
            and rules.is_recurring(row["interval"])
            and row["stripe_subscription"]
            and not row["cancel_at_period_end"]
        )
        if renews_itself or not row["email"]:
            continue
        with i18n.in_language(row["language"]):
            values = {"name": row["name"], "tier": row["tier_name"], "date": i18n.format_date(row["ends_at"])}
            subject = i18n.gettext("Your membership ends on %(date)s", date=i18n.format_date(row["ends_at"]))
            body = "\n".join(
                [
                    i18n.gettext("Hello %(name)s,", name=row["name"]),
                    "",
                    i18n.gettext(
                        "Your %(tier)s membership of the library ends on %(date)s.",
                        tier=row["tier_name"],
                        date=i18n.format_date(row["ends_at"]),
                    ),
                    i18n.gettext(
                        "To keep borrowing, renew it from your account page, or at the counter. You choose "
                        "what you pay, as before."
                    ),
                ]
            )
        key = f"membership-expiry:{row['id']}:{row['ends_at'].date().isoformat()}"
        if dry_run:
            queued += not await mail.queued(key=key)
            continue
        if await mail.queue(
            library=(await venues.settings()).name,
            key=key,
            to_address=row["email"],
            subject=subject,
            body=body,
            account_id=row["member"],
            kind="membership_expiry",
            language=row["language"],
            values=values,
            now=now,
        ):
            queued += 1
    return queued


# --- piccolo_admin ---------------------------------------------------------------------------------


async def admin_tier_values(*, values: dict, tier_id: int | None = None) -> dict:
    """The same rules as the tiers page for a tier edited in piccolo_admin: the merged row must
    be a valid tier, else InvalidInput. Returns the values to write."""
    current = {}
    if tier_id is not None:
        current = await Tier.select().where(Tier.id == tier_id).first().run() or {}
    merged = {**current, **values}
    name = " ".join(str(merged.get("name") or "").split())
    suggested = rules.parse_suggested(str(merged.get("suggested_pence") or ""))
    try:
        numbers = {key: int(merged.get(key) or 0) for key in ("min_pence", "max_pence", "loan_limit", "loan_days")}
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(_l("Check the membership's settings."), code="invalid_tier") from exc
    problems = rules.tier_problems(
        name=name,
        suggested=suggested,
        interval=str(merged.get("interval") or ""),
        allow_free=bool(merged.get("allow_free")),
        **numbers,
    )
    clash = Tier.exists().where(Tier.name == name)
    if tier_id is not None:
        clash = clash.where(Tier.id != tier_id)
    if name and await clash.run():
        problems["name"] = _l("There is already a membership called %(name)s.", name=name)
    if problems:
        raise errors.InvalidInput(_l("Check the membership's settings."), code="invalid_tier", errors=problems)
    cleaned = dict(values)
    if "name" in cleaned:
        cleaned["name"] = name
    if "suggested_pence" in cleaned:
        cleaned["suggested_pence"] = ",".join(str(p) for p in suggested)
    return cleaned
