"""Memberships: the tiers a coordinator offers, the borrowing agreement members accept, each
member's membership, the payments and refunds behind it, Gift Aid declarations, checkout
attempts through Stripe and the Stripe events already processed.

Money is integer pence. Rules the column types cannot express are added as indexes by a
migration: at most one open (pending, active or past-due) membership per member; one payment
per Stripe object; one row per Stripe event id.
"""

from piccolo.columns import Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from lending.members.tables import Account


class Tier(Table, tablename="membership_tier"):
    """What a member can choose at /join: a sliding scale (suggested amounts, bounds, whether
    nothing at all is allowed), how often it is paid, and what it grants."""

    name = Varchar(length=120, unique=True)
    description = Text(default="")
    suggested_pence = Varchar(length=200, default="")  # comma-separated, in pence
    min_pence = Integer(default=0)
    max_pence = Integer(default=10000)
    allow_free = Boolean(default=False)
    interval = Varchar(length=20, default="one_off")  # one_off (a year), month, year
    offer_pay_forward = Boolean(default=True)
    # Whether members are asked for a Gift Aid declaration (a UK charity, and a tier whose
    # benefits HMRC's rules allow; the venue decides).
    gift_aid = Boolean(default=False)
    loan_limit = Integer(default=3)
    loan_days = Integer(default=7)
    public = Boolean(default=True)  # offered at /join; a concession tier may be counter-only
    active = Boolean(default=True)
    position = Integer(default=0)
    created_at = Timestamptz()


class Agreement(Table, tablename="borrowing_agreement"):
    """One version of the venue's borrowing agreement; the newest version is the one members
    accept. Versions are never edited, so an acceptance always names the words accepted."""

    version = Integer(unique=True)
    body = Text()
    body_cy = Text(default="")
    published_at = Timestamptz()
    published_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)


class AgreementAcceptance(Table, tablename="agreement_acceptance"):
    account = ForeignKey(references=Account, null=False, on_delete=OnDelete.cascade, index=True)
    agreement = ForeignKey(references=Agreement, null=False, on_delete=OnDelete.restrict)
    accepted_at = Timestamptz()


class Membership(Table, tablename="membership"):
    """A member's right to borrow. ``status`` is pending, active, past_due, expired or
    cancelled; a member has at most one open (pending, active, past_due) membership, which
    renewals extend. ``amount_pence`` is what they chose per interval, ``forward_pence`` what
    they add to fund free places. ``stripe_state_at`` is the creation time of the newest
    Stripe event that set the status, so an older event arriving late cannot undo it."""

    member = ForeignKey(references=Account, null=False, on_delete=OnDelete.restrict, index=True)
    tier = ForeignKey(
        references=Tier, null=False, on_delete=OnDelete.restrict
    )  # no index: it would be named membership_tier, like the table
    status = Varchar(length=20, default="pending", index=True)
    amount_pence = Integer(default=0)
    forward_pence = Integer(default=0)
    interval = Varchar(length=20, default="one_off")
    method = Varchar(length=20, default="")  # free, stripe, cash, card_reader
    starts_at = Timestamptz(null=True, default=None)
    ends_at = Timestamptz(null=True, default=None, index=True)
    cancel_at_period_end = Boolean(default=False)
    stripe_customer = Varchar(length=100, null=True, default=None)
    stripe_subscription = Varchar(length=100, null=True, default=None, unique=True)
    stripe_state_at = Integer(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    cancelled_at = Timestamptz(null=True, default=None)


class GiftAidDeclaration(Table, tablename="gift_aid_declaration"):
    """A UK taxpayer's declaration that the charity may claim Gift Aid on their gifts: HMRC
    asks for the full name, the house name or number and the postcode, and the date."""

    member = ForeignKey(references=Account, null=False, on_delete=OnDelete.cascade, index=True)
    full_name = Varchar(length=200)
    house = Varchar(length=200)
    postcode = Varchar(length=12)
    declared_at = Timestamptz()


class Checkout(Table, tablename="membership_checkout"):
    """One attempt to pay through Stripe Checkout. It names the membership and the amount
    asked for, so the webhook, not the browser returning from Stripe, decides what was paid.
    ``status``: creating, open, awaiting_payment (a delayed method), complete, failed, expired."""

    membership = ForeignKey(references=Membership, null=False, on_delete=OnDelete.cascade, index=True)
    tier = ForeignKey(references=Tier, null=False, on_delete=OnDelete.restrict)
    amount_pence = Integer()
    forward_pence = Integer(default=0)
    interval = Varchar(length=20)
    gift_aid_declaration = ForeignKey(references=GiftAidDeclaration, null=True, on_delete=OnDelete.set_null)
    status = Varchar(length=20, default="creating")
    session_id = Varchar(length=200, null=True, default=None, unique=True)
    url = Text(default="")
    created_at = Timestamptz()
    completed_at = Timestamptz(null=True, default=None)


class Payment(Table, tablename="payment"):
    """Money received for a membership: online through Stripe, or at the counter in cash or on
    a card reader. ``stripe_reference`` is the Checkout Session (one-off) or the invoice
    (recurring) it came from; the database holds each once, so a repeated webhook cannot
    record it twice. ``receipt_code`` is the opaque number on the member's receipt."""

    receipt_code = Varchar(length=16, unique=True)
    member = ForeignKey(references=Account, null=False, on_delete=OnDelete.restrict, index=True)
    membership = ForeignKey(references=Membership, null=True, on_delete=OnDelete.set_null, index=True)
    tier_name = Varchar(length=120, default="")
    amount_pence = Integer()
    forward_pence = Integer(default=0)
    currency = Varchar(length=3, default="gbp")
    method = Varchar(length=20)
    refunded_pence = Integer(default=0)
    stripe_reference = Varchar(length=200, null=True, default=None, unique=True)
    stripe_payment_intent = Varchar(length=100, null=True, default=None, index=True)
    gift_aid_declaration = ForeignKey(references=GiftAidDeclaration, null=True, on_delete=OnDelete.set_null)
    recorded_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    covers_until = Timestamptz(null=True, default=None)
    paid_at = Timestamptz(index=True)


class Refund(Table, tablename="refund"):
    """Money given back. A refund through Stripe carries Stripe's refund id, held once by the
    database, so the API's answer and the ``refund.created`` webhook record it only once."""

    payment = ForeignKey(references=Payment, null=False, on_delete=OnDelete.cascade, index=True)
    amount_pence = Integer()
    reason = Text(default="")
    stripe_refund = Varchar(length=100, null=True, default=None, unique=True)
    refunded_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    refunded_at = Timestamptz()


class StripeEvent(Table, tablename="stripe_event"):
    """Every Stripe event processed, once: the row is written in the transaction of the
    event's effect. ``outcome`` says what happened (applied, ignored, unmatched); an event
    that matched nothing keeps its body, so it is not lost."""

    event_id = Varchar(length=100, unique=True)
    type = Varchar(length=100)
    created = Integer()
    received_at = Timestamptz()
    outcome = Varchar(length=40)
    payload = Text(default="")
