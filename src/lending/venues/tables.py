from piccolo.columns import Date, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class Site(Table, tablename="site"):
    """A place where items live and are picked up (a venue may have several)."""

    name = Varchar(length=120, unique=True)
    address = Text(default="")
    created_at = Timestamptz()


class Venue(Table, tablename="venue"):
    """The venue's own settings; one row (made on first use). Times are shown in its zone."""

    name = Varchar(length=120, default="")
    timezone = Varchar(length=64, default="Europe/London")
    updated_at = Timestamptz()


class OpeningSession(Table, tablename="opening_session"):
    """One opening on a weekday (0 is Monday), in the venue's wall-clock time, "HH:MM"."""

    weekday = Integer()
    opens = Varchar(length=5)
    closes = Varchar(length=5)


class Closure(Table, tablename="closure"):
    """Days the venue is shut (holidays, a move), inclusive."""

    starts_on = Date()
    ends_on = Date()
    reason = Varchar(length=200, default="")
    created_at = Timestamptz()
