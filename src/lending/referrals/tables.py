from piccolo.columns import Timestamptz, Varchar
from piccolo.table import Table


class Organisation(Table, tablename="organisation"):
    """A referring organisation: a GP practice, primary care network, charity or council team."""

    name = Varchar(length=200, unique=True)
    kind = Varchar(length=30, default="other")
    created_at = Timestamptz()
