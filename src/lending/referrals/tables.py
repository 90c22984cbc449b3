"""Referring organisations, the referrals their link workers issue, and the venue's referral
settings. A referral holds the minimum: the name a person wants to be called, how to reach
them, their language and access needs, at most one category from a fixed list (never a
diagnosis), and their two consents. Its personal details are erased a set time after it ends
(``erased_at``) while the anonymous counts stay."""

from piccolo.columns import Boolean, Date, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from lending.members.tables import Account, Organisation
from lending.memberships.tables import Tier


class Referral(Table, tablename="referral"):
    code = Varchar(length=16, unique=True)
    organisation = ForeignKey(references=Organisation, null=False, on_delete=OnDelete.restrict, index=True)
    issued_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    name = Varchar(length=120, default="")
    contact_route = Varchar(length=12, default="through_me")
    contact = Varchar(length=255, default="")
    language = Varchar(length=8, default="en")
    access_needs = Text(default="")
    need_category = Varchar(length=20, default="")
    months = Integer(default=6)
    redeem_by = Date()
    consent_share = Boolean(default=False)
    status = Varchar(length=12, default="issued", index=True)
    issued_at = Timestamptz()
    redeemed_at = Timestamptz(null=True, default=None)
    member = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    ends_at = Timestamptz(null=True, default=None)  # the end of the free membership
    closed_at = Timestamptz(null=True, default=None)  # expired, withdrawn or completed
    erased_at = Timestamptz(null=True, default=None)


class ReferralSettings(Table, tablename="referral_settings"):
    """The venue's bounds for referrals; one row (defaults until a coordinator saves)."""

    tier = ForeignKey(references=Tier, null=True, on_delete=OnDelete.set_null)
    months_options = Varchar(length=40, default="3,6,12")
    redeem_days = Integer(default=60)
    erase_after_days = Integer(default=365)
    updated_at = Timestamptz()
