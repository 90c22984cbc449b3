"""The catalogue: categories, item groups (what a member asks for: "a drill"), the items
themselves (the copies with QR stickers), their photos and manuals, pre-printed stickers and
problem reports."""

from piccolo.columns import JSON, Bytea, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from lending.members.tables import Account
from lending.venues.tables import Site


class Category(Table, tablename="category"):
    """A node in the tree the coordinator edits (Tools > Power tools > Drills)."""

    name = Varchar(length=100)
    parent = ForeignKey(references="self", null=True, on_delete=OnDelete.restrict)
    position = Integer(default=0)
    loan_days = Integer(null=True, default=None)  # None: the parent's, else the membership's
    created_at = Timestamptz()


class ItemGroup(Table, tablename="item_group"):
    """Copies of the same thing. The description, safety notes, parts checklist, photos and
    manuals belong here; each copy has its own code, condition and status."""

    name = Varchar(length=200, index=True)
    description = Text(default="")
    category = ForeignKey(references=Category, null=True, on_delete=OnDelete.restrict, index=True)
    safety_notes = Text(default="")
    parts = JSON(default="[]")
    loan_days = Integer(null=True, default=None)
    # Copies the venue aims to have (a venue started from another's setup file starts with the
    # things and none of the copies): shown as wanted while it has fewer.
    wanted = Integer(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Item(Table, tablename="item"):
    """One physical thing with a QR sticker. ``code`` is its public identity, never the id."""

    item_group = ForeignKey(references=ItemGroup, null=False, on_delete=OnDelete.restrict, index=True)
    code = Varchar(length=16, unique=True)
    status = Varchar(length=20, default="available", index=True)
    status_reason = Text(default="")
    condition = Varchar(length=20, default="good")
    replacement_value_pence = Integer(null=True, default=None)
    donor = Varchar(length=200, default="")
    site = ForeignKey(references=Site, null=True, on_delete=OnDelete.restrict)
    notes = Text(default="")
    labelled_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Sticker(Table, tablename="sticker"):
    """A code printed in advance; claimed when a volunteer adds an item with it."""

    code = Varchar(length=16, unique=True)
    printed_at = Timestamptz()
    item = ForeignKey(references=Item, null=True, on_delete=OnDelete.set_null)


class Photo(Table, tablename="photo"):
    """Photos live in the database so every app process serves the same ones."""

    item_group = ForeignKey(references=ItemGroup, null=False, on_delete=OnDelete.cascade, index=True)
    position = Integer(default=0)
    content_type = Varchar(length=40, default="image/jpeg")
    full = Bytea()
    thumbnail = Bytea()
    width = Integer()
    height = Integer()
    created_at = Timestamptz()


class Manual(Table, tablename="manual"):
    item_group = ForeignKey(references=ItemGroup, null=False, on_delete=OnDelete.cascade, index=True)
    title = Varchar(length=200)
    content = Bytea()
    size = Integer()
    created_at = Timestamptz()


class ProblemReport(Table, tablename="problem_report"):
    """'Report a problem' from an item's page; volunteers see open reports at the desk."""

    item = ForeignKey(references=Item, null=False, on_delete=OnDelete.cascade, index=True)
    description = Text()
    reporter = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
    resolved_at = Timestamptz(null=True, default=None)
    resolved_by = ForeignKey(references=Account, null=True, on_delete=OnDelete.set_null)
