from piccolo.columns import Bytea, Date, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table


class Site(Table, tablename="site"):
    """A place where items live and are picked up (a venue may have several)."""

    name = Varchar(length=120, unique=True)
    address = Text(default="")
    created_at = Timestamptz()


class Venue(Table, tablename="venue"):
    """The venue's own settings; one row (made on first use). Times are shown in its zone,
    money in its currency. The logo is kept in the database, as a small PNG, so every app
    process serves the same one."""

    name = Varchar(length=120, default="")
    timezone = Varchar(length=64, default="Europe/London")
    currency = Varchar(length=3, default="gbp")
    email = Varchar(length=255, default="")
    phone = Varchar(length=40, default="")
    address = Text(default="")
    website = Varchar(length=255, default="")
    colour = Varchar(length=7, default="#1d5e3a")
    logo = Bytea(null=True, default=None)
    languages = Varchar(length=40, default="en,cy")  # offered, the first the default
    label_template = Varchar(length=20, default="L7160")
    updated_at = Timestamptz()


class OpeningSession(Table, tablename="opening_session"):
    """One opening on a weekday (0 is Monday), in the venue's wall-clock time, "HH:MM"."""

    site = ForeignKey(references=Site, null=True, on_delete=OnDelete.cascade)  # None: every site without its own
    weekday = Integer()
    opens = Varchar(length=5)
    closes = Varchar(length=5)


class Closure(Table, tablename="closure"):
    """Days the venue, or one site of it, is shut (holidays, a move), inclusive."""

    site = ForeignKey(references=Site, null=True, on_delete=OnDelete.cascade)  # None: the whole venue
    starts_on = Date()
    ends_on = Date()
    reason = Varchar(length=200, default="")
    created_at = Timestamptz()
