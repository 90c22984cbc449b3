from piccolo.columns import Text, Timestamptz, Varchar
from piccolo.table import Table


class Site(Table, tablename="site"):
    """A place where items live and are picked up (a venue may have several)."""

    name = Varchar(length=120, unique=True)
    address = Text(default="")
    created_at = Timestamptz()
