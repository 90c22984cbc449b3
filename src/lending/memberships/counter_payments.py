"""At the counter: a volunteer takes cash or a card-reader payment, and the membership is
activated or renewed, with its receipt."""

from __future__ import annotations

from datetime import datetime

from lending import clock, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.members import services as members
from lending.memberships import rules
from lending.memberships.activation import activate, activate_free, open_or_new
from lending.memberships.agreements import accept_agreement
from lending.memberships.amounts import (
    Choice,
    GiftAid,
    check_choice,
    declare_gift_aid,
    gift_aid_problems,
    raise_problems,
)
from lending.memberships.gateway import NO_GATEWAY
from lending.memberships.receipts import new_receipt_code, queue_receipt
from lending.memberships.records import MembershipView, PaymentView, get_membership, get_payment
from lending.memberships.rules import Method, Status
from lending.memberships.tables import Payment
from lending.venues import services as venues


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
    choice, problems = await check_choice(
        tier=tier,
        amount=amount,
        forward=forward,
        pounds=pounds,
        gateway=NO_GATEWAY,
        public_only=False,
        gift_aid=gift_aid,
    )
    raise_problems(problems, gift_aid_problems(gift_aid))
    assert choice is not None
    member = await members.get_account(account_id=member_id)
    if member.role != "member":
        raise errors.InvalidInput(_l("Memberships are for members' accounts."), code="not_a_member")
    async with db.transaction(write=True):
        if agreement_version not in (None, ""):
            await accept_agreement(account_id=member_id, version=agreement_version, now=now)
        row = await open_or_new(
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
            await activate_free(row=row, tier=choice.tier, now=now, actor_id=actor_id)
            return await get_membership(membership_id=row["id"], now=now), None
        payment_id = await _take_payment(
            member_id=member_id, row=row, choice=choice, method=method, gift_aid=gift_aid, actor_id=actor_id, now=now
        )
    return (await get_membership(membership_id=row["id"], now=now), await get_payment(payment_id=payment_id))


async def _take_payment(
    *,
    member_id: int,
    row: dict,
    choice: Choice,
    method: str,
    gift_aid: GiftAid | None,
    actor_id: int | None,
    now: datetime,
) -> int:
    """Inside the write transaction: the membership renewed by a period, and the payment for it
    recorded with its Gift Aid declaration; the member's receipt is queued. Returns the payment's id."""
    ends_at = await activate(
        row=row,
        tier=choice.tier,
        amount_pence=choice.amount_pence,
        forward_pence=choice.forward_pence,
        method=method,
        now=now,
        actor_id=actor_id,
    )
    declaration = await declare_gift_aid(member_id, gift_aid, now)
    payment_rows = (
        await Payment.insert(
            Payment(
                receipt_code=await new_receipt_code(),
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
    await queue_receipt(payment_rows[0]["id"])
    return payment_rows[0]["id"]
