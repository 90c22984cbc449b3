"""Lending: the venue's loan policy, loans, holds (a queue for things on loan), reservations
for future dates, and the optional fee ledger.

Rules the column types cannot express are partial unique indexes added by a migration: one
open loan per item; one active hold per member and thing; one ready hold per copy.
"""

from piccolo.columns import JSON, Boolean, Date, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from lending.catalog.tables import Item, ItemGroup
from lending.members.tables import Account


class LoanPolicy(Table, tablename="loan_policy"):
    """The coordinator's lending rules; one row (made with the defaults on first use). Loan
    periods come from the thing, then its category, then the member's membership tier."""

    renewal_limit = Integer(default=2)
    buffer_hours = Integer(default=0)  # cleaning or safety testing between two loans of a copy
    hold_days = Integer(default=3)  # days a copy put aside waits for its member (to an open day's close)
    due_soon_days = Integer(default=2)
    reserve_ahead_days = Integer(default=90)
    max_reservation_days = Integer(default=14)
    fees_enabled = Boolean(default=False)  # no fines unless the venue chooses them
    fee_per_day_pence = Integer(default=0)
    fee_cap_pence = Integer(default=0)
    block_over_pence = Integer(default=0)  # unpaid fees above this stop borrowing; 0: never
    updated_at = Timestamptz()


class Loan(Table, tablename="loan"):
    """One copy lent to one member. Open while ``returned_at`` is null; the database allows one
    open loan per item. ``recorded_at`` differs from ``lent_at`` when a volunteer backdated it."""

    item = ForeignKey(references=Item, null=False, on_delete=OnDelete.restrict, index=True)
    member = ForeignKey(references=Account, null=False, on_delete=OnDelete.restrict, index=True)
    lent_at = Timestamptz()
    due_at = Timestamptz(index=True)
    renewals = Integer(default=0)
    lent_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    recorded_at = Timestamptz()
    returned_at = Timestamptz(null=True, default=None)
    returned_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    return_recorded_at = Timestamptz(null=True, default=None)
    return_condition = Varchar(length=20, default="")
    return_notes = Text(default="")
    parts_missing = JSON(default="[]")


class Hold(Table, tablename="hold"):
    """A place in the queue for a thing (any copy). ``waiting`` until a copy comes back, then
    ``ready`` with that copy put aside until ``expires_at``; then ``collected``, ``expired``
    (the copy passes to the next in the queue) or ``cancelled``."""

    item_group = ForeignKey(references=ItemGroup, null=False, on_delete=OnDelete.cascade, index=True)
    member = ForeignKey(references=Account, null=False, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=12, default="waiting", index=True)
    placed_at = Timestamptz()
    item = ForeignKey(references=Item, null=True, on_delete=OnDelete.set_null)
    ready_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)


class Reservation(Table, tablename="reservation"):
    """A copy booked for future dates (collect on ``starts_on``, bring back by ``ends_on``, in
    the venue's days). ``booked`` until collected, cancelled or missed."""

    item = ForeignKey(references=Item, null=False, on_delete=OnDelete.cascade, index=True)
    member = ForeignKey(references=Account, null=False, on_delete=OnDelete.cascade, index=True)
    starts_on = Date()
    ends_on = Date()
    status = Varchar(length=12, default="booked", index=True)
    created_at = Timestamptz()
    closed_at = Timestamptz(null=True, default=None)


class Fee(Table, tablename="fee"):
    """The optional fee ledger: a charge (a late return) and how it was settled."""

    member = ForeignKey(references=Account, null=False, on_delete=OnDelete.restrict, index=True)
    loan = ForeignKey(references=Loan, null=True, on_delete=OnDelete.set_null)
    amount_pence = Integer()
    reason = Varchar(length=200, default="")
    created_at = Timestamptz()
    settled_at = Timestamptz(null=True, default=None)
    settlement = Varchar(length=12, default="")  # paid or written_off
    settled_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    note = Text(default="")


class CalendarFeed(Table, tablename="calendar_feed"):
    """A secret address for a member's due dates in a calendar app (which cannot sign in). It
    reveals only item names and dates; the member can replace it, which stops the old one."""

    member = ForeignKey(references=Account, null=False, on_delete=OnDelete.cascade, unique=True)
    token = Varchar(length=64, unique=True)
    created_at = Timestamptz()
