from piccolo.columns import ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.reference import LazyTableReference
from piccolo.table import Table

# The outbox is infrastructure below every domain: it names the account a message is for by
# the app's table registry, as the database's foreign key does, and imports no domain.
ACCOUNT = LazyTableReference("Account", app_name="lending")


class Email(Table, tablename="email"):
    """One message to send. ``key`` names what it is about ("receipt:12",
    "membership-expiry:4:2027-01-31") and the database holds each key once, so a reminder
    queued by two processes at the same moment is sent once. A sender claims a message
    (``claimed_at``) before sending it, so two senders never send the same one. It keeps the
    language it is written in and the name it is sent under (the venue's, when it was queued)."""

    key = Varchar(length=200, unique=True)
    account = ForeignKey(references=ACCOUNT, null=True, on_delete=OnDelete.set_null, index=True)
    to_address = Varchar(length=255)
    language = Varchar(length=8, default="en")
    sender_name = Varchar(length=200, default="")
    subject = Varchar(length=300)
    body = Text()
    created_at = Timestamptz()
    claimed_at = Timestamptz(null=True, default=None)
    sent_at = Timestamptz(null=True, default=None, index=True)
    attempts = Integer(default=0)
    last_error = Text(default="")


class EmailTemplate(Table, tablename="email_template"):
    """A coordinator's own words for one kind of message in one language, in place of the
    built-in text. ``{placeholders}`` are filled in when the message is queued."""

    kind = Varchar(length=40)
    language = Varchar(length=8)
    subject = Varchar(length=300)
    body = Text()
    updated_at = Timestamptz()
