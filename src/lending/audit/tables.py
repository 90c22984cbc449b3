from piccolo.columns import ForeignKey, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.reference import LazyTableReference
from piccolo.table import Table

# The audit log is infrastructure below every domain: it names the account that acted by the
# app's table registry, as the database's foreign key does, and imports no domain.
ACCOUNT = LazyTableReference("Account", app_name="lending")


class AuditEvent(Table, tablename="audit_event"):
    """Who did what, when. ``detail`` holds no personal data beyond identifiers."""

    at = Timestamptz(index=True)
    actor = ForeignKey(references=ACCOUNT, null=True, on_delete=OnDelete.set_null)
    action = Varchar(length=60, index=True)
    subject = Varchar(length=120, default="")
    detail = Text(default="")
