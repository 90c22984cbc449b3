from piccolo.columns import ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from lending.members.tables import Account


class AuditEvent(Table, tablename="audit_event"):
    """Who did what, when. ``detail`` holds no personal data beyond identifiers."""

    at = Timestamptz(index=True)
    actor = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    action = Varchar(length=60, index=True)
    subject = Varchar(length=120, default="")
    detail = Text(default="")
