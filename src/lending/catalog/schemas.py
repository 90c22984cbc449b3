"""JSON shapes of the catalogue API (described at /schema/openapi.json)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from lending.catalog.services import ItemView


class ItemOut(msgspec.Struct):
    code: str
    name: str
    category: str | None
    status: str
    description: str
    condition: str
    safety_notes: str
    parts: list[str]
    site: str | None
    loan_days: int | None
    due_back: datetime | None
    url: str
    photos: list[str]


class ItemList(msgspec.Struct):
    items: list[ItemOut]
    next_cursor: str | None


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""
    description: str = ""
    category: str | None = None  # a category's name or path, e.g. "Tools > Drills"
    safety_notes: str = ""
    parts: list[str] = []
    loan_days: int | None = None
    condition: str = "good"
    replacement_value: str = ""
    donor: str = ""
    sticker: str = ""
    copy_of: str = ""


class LabelsIn(msgspec.Struct, forbid_unknown_fields=True):
    codes: list[str] = []
    template: str | None = None  # the venue's label sheet unless given
    start_position: int = 0
    unprinted: bool = False


def item_out(item: ItemView, base_url: str) -> ItemOut:
    return ItemOut(
        code=item.code,
        name=item.name,
        category=item.category,
        status=item.status,
        description=item.description,
        condition=item.condition,
        safety_notes=item.safety_notes,
        parts=item.parts,
        site=item.site,
        loan_days=item.loan_days,
        due_back=item.due_back,
        url=f"{base_url}/i/{item.code}",
        photos=[f"{base_url}/photos/{photo_id}" for photo_id in item.photo_ids],
    )
