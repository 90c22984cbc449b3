"""Joining and renewing: public sign-up (an account, the agreement accepted and a membership
started), a signed-in member's renewal, and the Stripe Checkout page a paid choice goes to.

Stripe's answers never activate anything by themselves when a browser returns from the
payment page: only a verified webhook does (``stripe_events``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from lending import clock, db, errors, i18n
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.members import rules as member_rules
from lending.members import services as members
from lending.members.services import AccountView
from lending.members.tables import Account
from lending.memberships.activation import activate_free, open_or_new
from lending.memberships.agreements import accept_agreement, accepted_version, current_agreement
from lending.memberships.amounts import (
    Choice,
    GiftAid,
    check_choice,
    declare_gift_aid,
    gift_aid_problems,
    raise_problems,
)
from lending.memberships.gateway import CheckoutRequest, StripeGateway
from lending.memberships.records import MembershipView, get_membership
from lending.memberships.rules import Method, Status
from lending.memberships.tables import Checkout, Membership
from lending.venues import services as venues


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


@dataclass(frozen=True)
class _PendingCheckout:
    membership_id: int
    request: CheckoutRequest
    superseded: list[str] = field(default_factory=list)  # earlier payment pages for this membership


async def _prepare(
    *,
    member_id: int,
    choice: Choice,
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
        await accept_agreement(account_id=member_id, version=agreement_version, now=now)
    row = await open_or_new(
        member_id=member_id, tier=tier, amount_pence=amount_pence, forward_pence=forward_pence, now=now
    )
    if row["method"] == Method.stripe.value and row["stripe_subscription"] and row["status"] != Status.pending.value:
        raise errors.Conflict(
            _l("Your membership renews by itself; change its amount on your account page instead."),
            code="already_recurring",
        )
    if amount_pence == 0:
        await activate_free(row=row, tier=tier, now=now, actor_id=member_id)
        return StartOutcome(membership=await get_membership(membership_id=row["id"], now=now))
    declaration = await declare_gift_aid(member_id, gift_aid, now)
    if not online:
        return StartOutcome(membership=await get_membership(membership_id=row["id"], now=now), pay_at_counter=True)
    checkout_id = await _new_checkout(row=row, member_id=member_id, choice=choice, declaration=declaration, now=now)
    return await _pending_checkout(row=row, member_id=member_id, choice=choice, checkout_id=checkout_id)


async def _new_checkout(*, row: dict, member_id: int, choice: Choice, declaration: int | None, now: datetime) -> int:
    """Inside the write transaction: our record of the payment page about to be created."""
    tier, amount_pence, forward_pence = choice.tier, choice.amount_pence, choice.forward_pence
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
    return checkout_id


async def _pending_checkout(*, row: dict, member_id: int, choice: Choice, checkout_id: int) -> _PendingCheckout:
    """Inside the write transaction: what Stripe will be asked for once it commits, and the
    earlier payment pages the new one replaces."""
    tier, amount_pence, forward_pence = choice.tier, choice.amount_pence, choice.forward_pence
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
    choice, problems = await check_choice(
        tier=tier,
        amount=amount,
        forward=forward,
        pounds=pounds,
        gateway=gateway,
        public_only=public_only,
        gift_aid=gift_aid,
        interval=interval,
    )
    raise_problems(problems, gift_aid_problems(gift_aid))
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


async def _sign_up_problems(
    *, name: str, email: str, password: str, phone: str | None, language: str, agreement_version: int | str | None
) -> dict[str, str]:
    """What is wrong with a sign-up's account and its acceptance of the agreement, by field."""
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
    return problems


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
    problems = await _sign_up_problems(
        name=name, email=email, password=password, phone=phone, language=language, agreement_version=agreement_version
    )
    choice, choice_problems = await check_choice(
        tier=tier, amount=amount, forward=forward, pounds=pounds, gateway=gateway, public_only=True, gift_aid=gift_aid
    )
    problems.update(gift_aid_problems(gift_aid))
    raise_problems(choice_problems, problems)
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
