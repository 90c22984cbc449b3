"""Suggestions of things the library should get, and which members support each one."""

from piccolo.columns import ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from lending.catalog.tables import ItemGroup
from lending.members.tables import Account


class Suggestion(Table, tablename="suggestion"):
    """A thing a member would like the library to lend. ``status`` is ``open`` until a
    coordinator marks it ``acquired`` (linking the new item group) or ``declined`` (with a
    reason the member sees). The suggestion outlives its suggester's account."""

    title = Varchar(length=200)
    details = Text(default="")
    suggested_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null, index=True)
    status = Varchar(length=20, default="open", index=True)
    decision_reason = Text(default="")
    item_group = ForeignKey(references=ItemGroup, null=True, on_delete=OnDelete.set_null)
    decided_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
    decided_at = Timestamptz(null=True, default=None)


class Support(Table, tablename="suggestion_support"):
    """One member backing one suggestion. The database holds each pair once (a unique index
    added by a migration), so supporting twice, even at the same moment, counts once."""

    suggestion = ForeignKey(references=Suggestion, null=False, on_delete=OnDelete.cascade)
    account = ForeignKey(references=Account, null=False, on_delete=OnDelete.cascade, index=True)
    created_at = Timestamptz()
