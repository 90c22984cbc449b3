"""The catalogue: categories, items and their copies, stickers, photos, problem reports."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime

from lending import clock, codes, config_cache, db, errors
from lending.adapters import labels, photos, qr
from lending.audit import services as audit
from lending.catalog import rules, search
from lending.catalog.rules import Status
from lending.catalog.tables import Category, Item, ItemGroup, Manual, Photo, ProblemReport, Sticker
from lending.i18n import lazy_gettext as _l
from lending.venues.tables import Site

CODE_LENGTH = 8
PAGE_SIZE = 50


# --- categories -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryNode:
    id: int
    name: str
    parent_id: int | None
    depth: int
    path: str
    loan_days: int | None = None


async def category_tree(*, fresh: bool = False) -> list[CategoryNode]:
    """Every category in tree order (parents before children, siblings by position and name).
    Pages and due dates read it often, so each process keeps it until the configuration changes
    anywhere (``config_cache``)."""
    return await _kept_tree.get(fresh=fresh)


async def _load_tree() -> list[CategoryNode]:
    rows = await Category.select(
        Category.id, Category.name, Category.parent, Category.position, Category.loan_days
    ).run()
    children: dict[int | None, list[dict]] = {}
    for row in rows:
        children.setdefault(row["parent"], []).append(row)
    ordered: list[CategoryNode] = []

    def walk(parent: int | None, depth: int, prefix: str) -> None:
        for row in sorted(children.get(parent, []), key=lambda r: (r["position"], r["name"].lower())):
            path = f"{prefix} › {row['name']}" if prefix else row["name"]
            ordered.append(
                CategoryNode(
                    id=row["id"], name=row["name"], parent_id=parent, depth=depth, path=path, loan_days=row["loan_days"]
                )
            )
            walk(row["id"], depth + 1, path)

    walk(None, 0, "")
    return ordered


_kept_tree: config_cache.Kept[list[CategoryNode]] = config_cache.Kept(_load_tree)


async def create_category(*, name: str, parent_id: int | None = None, actor_id: int | None = None) -> CategoryNode:
    """Category names are unique within their parent, ignoring case (the database holds to it)."""
    name = _category_name(name)
    with db.unique_violation_as(lambda: _category_exists(name)):
        async with db.transaction(write=True):
            if parent_id is not None and not await Category.exists().where(Category.id == parent_id).run():
                raise errors.InvalidInput(_l("There is no such category."), field="parent", code="unknown_category")
            row = (
                await Category.insert(Category(name=name, parent=parent_id, created_at=clock.now()))
                .returning(Category.id)
                .run()
            )
            await audit.record(action="category.create", actor_id=actor_id, subject=f"category:{row[0]['id']}")
            await config_cache.changed()
    return next(node for node in await category_tree() if node.id == row[0]["id"])


def _category_loan_days(days: object) -> int | None:
    if days in (None, ""):
        return None
    try:
        value = int(str(days).strip())
    except ValueError:
        value = 0
    if problem := rules.loan_days_problem(value):
        raise errors.InvalidInput(problem, field="loan_days", code="invalid_loan_days")
    return value


async def set_category_loan_days(*, periods: dict[int, object], actor_id: int | None = None) -> None:
    """Loan periods by category (empty: the parent's, else the membership's), all or nothing."""
    known = {node.id for node in await category_tree()}
    problems: dict[str, str] = {}
    cleaned: dict[int, int | None] = {}
    for category_id, days in periods.items():
        if category_id not in known:
            raise errors.NotFound(_l("There is no such category."), code="unknown_category")
        try:
            cleaned[category_id] = _category_loan_days(days)
        except errors.InvalidInput as exc:
            problems[f"category_{category_id}"] = exc.detail
    if problems:
        raise errors.InvalidInput(_l("Some loan periods need correcting."), code="invalid_loan_days", errors=problems)
    async with db.transaction(write=True):
        for category_id, days in cleaned.items():
            await Category.update({Category.loan_days: days}).where(Category.id == category_id).run()
        await audit.record(
            action="category.loan_days",
            actor_id=actor_id,
            subject="categories",
            detail=", ".join(f"{k}={v}" for k, v in sorted(cleaned.items())),
        )
        await config_cache.changed()


def _category_name(name: str | None) -> str:
    name = " ".join(str(name or "").split())
    if not name or len(name) > 100:
        raise errors.InvalidInput(
            _l("Enter a category name (at most 100 characters)."), field="name", code="invalid_category"
        )
    return name


def _category_exists(name: str) -> errors.Conflict:
    return errors.Conflict(
        _l("There is already a category called %(name)s here.", name=name), code="category_exists", field="name"
    )


async def find_category(*, name_or_path: str) -> CategoryNode | None:
    """A category by its name or its full path ('Tools › Drills'), ignoring case."""
    wanted = " ".join(name_or_path.replace(">", "›").split()).lower()
    nodes = await category_tree()
    by_path = [n for n in nodes if n.path.lower().replace(" › ", "›") == wanted.replace(" › ", "›")]
    if by_path:
        return by_path[0]
    by_name = [n for n in nodes if n.name.lower() == wanted]
    return by_name[0] if len(by_name) == 1 else None


# --- sites ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteView:
    id: int
    name: str
    address: str


async def list_sites() -> list[SiteView]:
    rows = await Site.select(Site.id, Site.name, Site.address).order_by(Site.name).run()
    return [SiteView(**row) for row in rows]


async def create_site(*, name: str, address: str = "", actor_id: int | None = None) -> SiteView:
    name = " ".join((name or "").split())
    if not name or len(name) > 120:
        raise errors.InvalidInput(
            _l("Enter the site's name (at most 120 characters)."), field="name", code="invalid_site"
        )
    site_exists = errors.Conflict(
        _l("There is already a site called %(name)s.", name=name), code="site_exists", field="name"
    )
    with db.unique_violation_as(lambda: site_exists):
        async with db.transaction(write=True):
            row = (
                await Site.insert(Site(name=name, address=address.strip(), created_at=clock.now()))
                .returning(Site.id)
                .run()
            )
            await audit.record(action="site.create", actor_id=actor_id, subject=f"site:{row[0]['id']}")
    return SiteView(id=row[0]["id"], name=name, address=address.strip())


# --- items ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemView:
    code: str
    name: str
    description: str
    category_id: int | None
    category: str | None
    status: str
    status_reason: str
    condition: str
    replacement_value_pence: int | None
    donor: str
    site_id: int | None
    site: str | None
    safety_notes: str
    parts: list[str]
    loan_days: int | None
    group_id: int
    notes: str
    labelled_at: datetime | None
    photo_ids: list[int] = field(default_factory=list)
    manuals: list[tuple[int, str]] = field(default_factory=list)
    copies: int = 1  # copies of the same thing, retired ones left out
    copies_available: int = 0
    due_back: datetime | None = None  # filled in by loans.availability, which knows the loans


@dataclass(frozen=True)
class ItemDetails:
    """What a person enters for a new thing (or edits): plain text from a form or the API."""

    name: str
    description: str = ""
    category_id: int | None = None
    safety_notes: str = ""
    parts: str | list[str] = ""
    loan_days: int | None = None
    condition: str = "good"
    replacement_value: str = ""
    donor: str = ""
    site_id: int | None = None
    notes: str = ""


_ITEM_COLUMNS = (
    Item.id,
    Item.code,
    Item.status,
    Item.status_reason,
    Item.condition,
    Item.replacement_value_pence,
    Item.donor,
    Item.site,
    Item.site.name.as_alias("site_name"),
    Item.notes,
    Item.labelled_at,
    Item.item_group,
    Item.item_group.name.as_alias("name"),
    Item.item_group.description.as_alias("description"),
    Item.item_group.category.as_alias("category_id"),
    Item.item_group.safety_notes.as_alias("safety_notes"),
    Item.item_group.parts.as_alias("parts"),
    Item.item_group.loan_days.as_alias("loan_days"),
)


async def _views(rows: list[dict]) -> list[ItemView]:
    paths = {node.id: node.path for node in await category_tree()}
    group_ids = list({row["item_group"] for row in rows})
    photos: dict[int, list[int]] = {}
    manuals: dict[int, list[tuple[int, str]]] = {}
    copies: dict[int, list[str]] = {}
    if group_ids:
        for copy in await (
            Item.select(Item.item_group, Item.status)
            .where(Item.item_group.is_in(group_ids), Item.status != Status.retired.value)
            .run()
        ):
            copies.setdefault(copy["item_group"], []).append(copy["status"])
        for photo in await (
            Photo.select(Photo.id, Photo.item_group)
            .where(Photo.item_group.is_in(group_ids))
            .order_by(Photo.position)
            .order_by(Photo.id)
            .run()
        ):
            photos.setdefault(photo["item_group"], []).append(photo["id"])
        for manual in await (
            Manual.select(Manual.id, Manual.item_group, Manual.title)
            .where(Manual.item_group.is_in(group_ids))
            .order_by(Manual.id)
            .run()
        ):
            manuals.setdefault(manual["item_group"], []).append((manual["id"], manual["title"]))
    views = []
    for row in rows:
        parts = row["parts"]
        views.append(
            ItemView(
                code=row["code"],
                name=row["name"],
                description=row["description"],
                category_id=row["category_id"],
                category=paths.get(row["category_id"]),
                status=row["status"],
                status_reason=row["status_reason"],
                condition=row["condition"],
                replacement_value_pence=row["replacement_value_pence"],
                donor=row["donor"],
                site_id=row["site"],
                site=row["site_name"],
                safety_notes=row["safety_notes"],
                parts=json.loads(parts) if isinstance(parts, str) else list(parts or []),
                loan_days=row["loan_days"],
                group_id=row["item_group"],
                notes=row["notes"],
                labelled_at=row["labelled_at"],
                photo_ids=photos.get(row["item_group"], []),
                manuals=manuals.get(row["item_group"], []),
                copies=len(copies.get(row["item_group"], [])) or 1,
                copies_available=copies.get(row["item_group"], []).count(Status.available.value),
            )
        )
    return views


async def get_item(*, code: str) -> ItemView:
    canonical = codes.normalise(code)
    rows = await Item.select(*_ITEM_COLUMNS).where(Item.code == canonical).run() if canonical else []
    if not rows:
        raise errors.NotFound(
            _l("There is no item with the code %(code)s.", code=code.strip()[:20]), code="item_not_found"
        )
    return (await _views(rows))[0]


def _checked_details(details: ItemDetails) -> tuple[dict, dict, dict[str, str]]:
    """The group's and the item's fields from what a person typed, and every problem found."""
    problems: dict[str, str] = {}
    name = " ".join((details.name or "").split())
    if not name or len(name) > 200:
        problems["name"] = _l("Enter the item's name (at most 200 characters).")
    try:
        parts = rules.parse_parts(details.parts)
    except ValueError:
        parts = []
        problems["parts"] = _l("List at most 50 parts, one per line, each under 200 characters.")
    if problem := rules.loan_days_problem(details.loan_days):
        problems["loan_days"] = problem
    if details.condition not in rules.CONDITIONS:
        problems["condition"] = _l("Choose the item's condition.")
    try:
        value = rules.parse_pence(details.replacement_value)
    except ValueError:
        value = None
        problems["replacement_value"] = _l("Enter a value in pounds, like 45 or 12.50.")
    if len(details.donor or "") > 200:
        problems["donor"] = _l("The donor's name can be at most 200 characters.")
    group = {
        "name": name,
        "description": (details.description or "").strip(),
        "category": details.category_id,
        "safety_notes": (details.safety_notes or "").strip(),
        "parts": json.dumps(parts),
        "loan_days": details.loan_days,
    }
    item = {
        "condition": details.condition,
        "replacement_value_pence": value,
        "donor": (details.donor or "").strip(),
        "site": details.site_id,
        "notes": (details.notes or "").strip(),
    }
    return group, item, problems


async def _reference_problems(details: ItemDetails) -> dict[str, str]:
    problems = {}
    if details.category_id is not None and not await Category.exists().where(Category.id == details.category_id).run():
        problems["category"] = _l("There is no such category.")
    if details.site_id is not None and not await Site.exists().where(Site.id == details.site_id).run():
        problems["site"] = _l("There is no such site.")
    return problems


async def _free_code() -> str:
    """A code no item or printed sticker uses yet."""
    while True:
        code = codes.new_code(CODE_LENGTH)
        taken = (
            await Item.exists().where(Item.code == code).run()
            or await Sticker.exists().where(Sticker.code == code).run()
        )
        if not taken:
            return code


async def add_item(
    *,
    details: ItemDetails,
    sticker: str = "",
    copy_of: str = "",
    wanted: int | None = None,
    actor_id: int | None = None,
) -> ItemView:
    """Add a thing to the catalogue: a new item group, or (``copy_of`` another item's code)
    one more copy of an existing one, or (``wanted``, a thing's id) a copy of a thing the
    venue wants, such as one from another venue's setup file. With ``sticker``, the item takes the code of a
    pre-printed sticker, which must exist and be unclaimed; otherwise it gets a new code.
    Everything is checked before anything is written."""
    group_fields, item_fields, problems = _checked_details(details)
    problems.update(await _reference_problems(details))
    sticker_code = ""
    if sticker.strip():
        sticker_code = codes.normalise(sticker)
        if len(sticker_code) != CODE_LENGTH:
            problems["sticker"] = _l("A sticker code has 8 letters and digits, like M7K4-2QXD.")
    template = None
    if copy_of.strip():
        template = await get_item(code=copy_of)
    if wanted is not None and not await ItemGroup.exists().where(ItemGroup.id == wanted).run():
        raise errors.NotFound(_l("There is no such thing in the catalogue."), code="thing_not_found", field="wanted")
    if problems:
        raise errors.InvalidInput(_l("Check the item's details."), errors=problems)
    now = clock.now()
    try:
        async with db.transaction(write=True):
            if sticker_code:
                found = await Sticker.select(Sticker.id, Sticker.item).where(Sticker.code == sticker_code).first().run()
                if found is None:
                    raise errors.InvalidInput(
                        _l("No sticker with the code %(code)s was printed here.", code=codes.display(sticker_code)),
                        code="unknown_sticker",
                        field="sticker",
                    )
                if found["item"] is not None:
                    raise _sticker_used(sticker_code)
                code = sticker_code
            else:
                code = await _free_code()
            if template is not None:
                group_id = template.group_id
            elif wanted is not None:
                group_id = wanted
            else:
                rows = (
                    await ItemGroup.insert(ItemGroup(**group_fields, created_at=now, updated_at=now))
                    .returning(ItemGroup.id)
                    .run()
                )
                group_id = rows[0]["id"]
            rows = (
                await Item.insert(
                    Item(
                        **item_fields,
                        item_group=group_id,
                        code=code,
                        status=Status.available.value,
                        created_at=now,
                        updated_at=now,
                    )
                )
                .returning(Item.id)
                .run()
            )
            if sticker_code:
                await Sticker.update({Sticker.item: rows[0]["id"]}).where(Sticker.code == sticker_code).run()
            await search.index_group(group_id)
            await audit.record(action="item.create", actor_id=actor_id, subject=f"item:{code}", at=now)
    except Exception as exc:
        if db.is_unique_violation(exc) and sticker_code:
            raise _sticker_used(sticker_code) from exc
        raise
    return await get_item(code=code)


def _sticker_used(code: str) -> errors.Conflict:
    return errors.Conflict(
        _l("The sticker %(code)s is already on another item.", code=codes.display(code)),
        code="sticker_used",
        field="sticker",
    )


async def update_item(*, code: str, details: ItemDetails, actor_id: int | None = None) -> ItemView:
    """Edit an item and the description it shares with its copies."""
    current = await get_item(code=code)
    group_fields, item_fields, problems = _checked_details(details)
    problems.update(await _reference_problems(details))
    if problems:
        raise errors.InvalidInput(_l("Check the item's details."), errors=problems)
    now = clock.now()
    async with db.transaction(write=True):
        await ItemGroup.update({**group_fields, "updated_at": now}).where(ItemGroup.id == current.group_id).run()
        await search.index_group(current.group_id)
        await Item.update({**item_fields, "updated_at": now}).where(Item.code == current.code).run()
        await audit.record(action="item.update", actor_id=actor_id, subject=f"item:{current.code}", at=now)
    return await get_item(code=current.code)


async def set_status(*, code: str, status: str, reason: str = "", actor_id: int | None = None) -> ItemView:
    """Retire an item (with a reason), send it for repair, mark it missing or available again.
    ``loans.holds.set_item_status`` is the use case: a copy back in use goes to the queue."""
    current = await get_item(code=code)
    if problem := rules.status_change_problem(current=current.status, new=status, reason=reason):
        raise errors.RuleViolation(problem, code="status_not_allowed", field="status")
    async with db.transaction(write=True):
        await (
            Item.update({Item.status: status, Item.status_reason: reason.strip(), Item.updated_at: clock.now()})
            .where(Item.code == current.code)
            .run()
        )
        await audit.record(
            action="item.status",
            actor_id=actor_id,
            subject=f"item:{current.code}",
            detail=f"{current.status}->{status}",
        )
    return await get_item(code=current.code)


# --- browsing ---------------------------------------------------------------------------------


def encode_cursor(name: str, item_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([name, item_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        name, item_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(name, str) or not isinstance(item_id, int):
            raise ValueError(cursor)
    except (ValueError, TypeError) as exc:
        raise errors.InvalidInput(
            _l("That page link is not valid; start again from the first page."), code="invalid_cursor"
        ) from exc
    return name, item_id


async def list_items(
    *,
    query: str = "",
    category_id: int | None = None,
    available: bool = False,
    cursor: str = "",
    limit: int = PAGE_SIZE,
    searched: search.Search | None = None,
) -> tuple[list[ItemView], str | None]:
    """Items by name (then id), a page at a time. Filters: words in the name or description,
    a category with everything under it, only what is available now. Retired items are not
    listed. A caller that has already resolved the query (to show its spelling correction)
    passes it as ``searched``, so it is not resolved twice."""
    select = Item.select(*_ITEM_COLUMNS).where(Item.status != Status.retired.value)
    if searched is None and (query or "").strip():
        searched = await search.resolve(query)
    if searched is not None:
        select = select.where(search.item_condition(searched))
    if category_id is not None:
        select = select.where(Item.item_group.category.is_in(await _with_descendants(category_id)))
    if available:
        select = select.where(Item.status == Status.available.value)
    name, item_id = decode_cursor(cursor) if cursor else ("", 0)
    # A plain bound on the group's name, true of every row: with it the database may turn the
    # LEFT JOIN Piccolo writes into an inner join and walk the name index from the start (or
    # the cursor) rather than sort every item for each page (at 50,000 items, 16 ms to 0.2 ms).
    select = select.where(Item.item_group.name >= name)
    if cursor:
        # Keyset: the ordering and the comparison both use the database's own collation.
        select = select.where((Item.item_group.name > name) | ((Item.item_group.name == name) & (Item.id > item_id)))
    rows = await select.order_by(Item.item_group.name).order_by(Item.id).limit(limit + 1).run()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["name"], rows[-1]["id"]) if more and rows else None
    return await _views(rows), next_cursor


async def _with_descendants(category_id: int) -> list[int]:
    """A category and every category below it, from one read of the tree."""
    found = [category_id]
    for node in await category_tree():  # parents come before their children
        if node.parent_id in found:
            found.append(node.id)
    return found


async def _ancestors(category_id: int) -> set[int]:
    by_id = {n.id: n for n in await category_tree()}
    found, current = set(), by_id.get(category_id)
    while current is not None and current.parent_id is not None:
        found.add(current.parent_id)
        current = by_id.get(current.parent_id)
    return found


# --- stickers ---------------------------------------------------------------------------------


async def create_stickers(*, count: int, actor_id: int | None = None) -> list[str]:
    """Codes for a sheet printed in advance, to be claimed when items are added."""
    if not 1 <= count <= 1000:
        raise errors.InvalidInput(
            _l("Print between 1 and 1,000 stickers at a time."), code="invalid_count", field="count"
        )
    now = clock.now()
    created: list[str] = []
    async with db.transaction(write=True):
        for _ in range(count):
            code = await _free_code()
            await Sticker.insert(Sticker(code=code, printed_at=now)).run()
            created.append(code)
        await audit.record(action="sticker.create", actor_id=actor_id, detail=f"count={count}", at=now)
    return created


async def mark_labelled(*, codes_printed: list[str]) -> None:
    if codes_printed:
        await Item.update({Item.labelled_at: clock.now()}).where(Item.code.is_in(codes_printed)).run()


async def unlabelled_codes(*, limit: int = 1000) -> list[str]:
    rows = await (
        Item.select(Item.code)
        .where(Item.labelled_at.is_null(), Item.status != Status.retired.value)
        .order_by(Item.id)
        .limit(limit)
        .run()
    )
    return [row["code"] for row in rows]


# --- problem reports --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemView:
    id: int
    code: str
    name: str
    description: str
    created_at: datetime


async def report_problem(*, code: str, description: str, reporter_id: int | None = None) -> ProblemView:
    """Anyone who scans an item can say something is wrong with it; volunteers see it at the desk."""
    item = await get_item(code=code)
    text = (description or "").strip()
    if not text or len(text) > 2000:
        raise errors.InvalidInput(
            _l("Describe the problem in at most 2,000 characters."), field="description", code="invalid_problem"
        )
    now = clock.now()
    row_id = (await Item.select(Item.id).where(Item.code == item.code).first().run())["id"]
    async with db.transaction(write=True):
        rows = (
            await ProblemReport.insert(
                ProblemReport(item=row_id, description=text, reporter=reporter_id, created_at=now)
            )
            .returning(ProblemReport.id)
            .run()
        )
        await audit.record(action="item.problem", actor_id=reporter_id, subject=f"item:{item.code}", at=now)
    return ProblemView(id=rows[0]["id"], code=item.code, name=item.name, description=text, created_at=now)


async def open_problems(*, limit: int = 100) -> list[ProblemView]:
    rows = await (
        ProblemReport.select(
            ProblemReport.id,
            ProblemReport.item.code.as_alias("code"),
            ProblemReport.item.item_group.name.as_alias("name"),
            ProblemReport.description,
            ProblemReport.created_at,
        )
        .where(ProblemReport.resolved_at.is_null())
        .order_by(ProblemReport.id, ascending=False)
        .limit(limit)
        .run()
    )
    return [ProblemView(**row) for row in rows]


async def resolve_problem(*, problem_id: int, actor_id: int) -> None:
    updated = await (
        ProblemReport.update({ProblemReport.resolved_at: clock.now(), ProblemReport.resolved_by: actor_id})
        .where(ProblemReport.id == problem_id, ProblemReport.resolved_at.is_null())
        .returning(ProblemReport.id)
        .run()
    )
    if not updated:
        raise errors.NotFound(_l("That problem is already dealt with."), code="problem_not_found")


# --- photos -----------------------------------------------------------------------------------


async def add_photo(*, code: str, data: bytes, actor_id: int | None = None) -> int:
    """A photo for an item (shared by its copies): checked, stripped of location data and
    resized before it is stored, off the event loop."""

    item = await get_item(code=code)
    processed = await photos.process_photo_async(data)
    async with db.transaction(write=True):
        position = await Photo.count().where(Photo.item_group == item.group_id).run()
        rows = (
            await Photo.insert(
                Photo(
                    item_group=item.group_id,
                    position=position,
                    content_type=processed.content_type,
                    full=processed.full,
                    thumbnail=processed.thumbnail,
                    width=processed.width,
                    height=processed.height,
                    created_at=clock.now(),
                )
            )
            .returning(Photo.id)
            .run()
        )
        await audit.record(action="item.photo", actor_id=actor_id, subject=f"item:{item.code}")
    return rows[0]["id"]


async def photo_bytes(*, photo_id: int, thumbnail: bool = False) -> tuple[bytes, str]:
    column = Photo.thumbnail if thumbnail else Photo.full
    row = await Photo.select(column.as_alias("data"), Photo.content_type).where(Photo.id == photo_id).first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such photo."), code="photo_not_found")
    return bytes(row["data"]), row["content_type"]


# --- manuals ----------------------------------------------------------------------------------

MAX_MANUAL_BYTES = 20 * 1024 * 1024


async def add_manual(*, code: str, title: str, data: bytes, actor_id: int | None = None) -> int:
    """A manual (PDF) for an item and its copies. Only real PDFs are kept: anything else is
    refused, since a manual is opened by members on their own devices."""
    item = await get_item(code=code)
    title = " ".join((title or "").split())[:200] or "Manual"
    if not data:
        raise errors.InvalidInput(_l("That file is empty. Choose a PDF."), code="manual_empty", field="manual")
    if len(data) > MAX_MANUAL_BYTES:
        raise errors.InvalidInput(
            _l("That file is too big. Choose a PDF smaller than 20 MB."), code="manual_too_large", field="manual"
        )
    if not data.startswith(b"%PDF-"):
        raise errors.InvalidInput(_l("That file is not a PDF."), code="manual_not_pdf", field="manual")
    async with db.transaction(write=True):
        rows = (
            await Manual.insert(
                Manual(item_group=item.group_id, title=title, content=data, size=len(data), created_at=clock.now())
            )
            .returning(Manual.id)
            .run()
        )
        await audit.record(action="item.manual", actor_id=actor_id, subject=f"item:{item.code}")
    return rows[0]["id"]


async def manual_bytes(*, manual_id: int) -> tuple[bytes, str]:
    row = await Manual.select(Manual.content, Manual.title).where(Manual.id == manual_id).first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such manual."), code="manual_not_found")
    return bytes(row["content"]), row["title"]


# --- labels -----------------------------------------------------------------------------------


async def label_sheet(
    *, item_codes: list[str], template: str, base_url: str, start_position: int = 0, unprinted: bool = False
) -> tuple[bytes, list[str]]:
    """A PDF of labels for the given items (or every item not yet labelled), rendered off the
    event loop. The items are then marked as labelled. Returns the PDF and the codes on it."""

    wanted = [codes.normalise(code) for code in item_codes if code.strip()]
    if any(not code for code in wanted):
        raise errors.InvalidInput(_l("That is not an item code."), code="invalid_item_code", field="codes")
    if unprinted:
        wanted = [*wanted, *(code for code in await unlabelled_codes() if code not in wanted)]
    if not wanted:
        raise errors.InvalidInput(_l("Choose at least one item to print a label for."), code="no_labels", field="codes")
    rows = await Item.select(Item.code, Item.item_group.name.as_alias("name")).where(Item.code.is_in(wanted)).run()
    names = {row["code"]: row["name"] for row in rows}
    if missing := [code for code in wanted if code not in names]:
        raise errors.NotFound(
            _l("There is no item with the code %(code)s.", code=codes.display(missing[0])),
            code="item_not_found",
            field="codes",
        )
    sheet = [labels.Label(code=code, name=names[code], url=qr.item_url(base_url, code)) for code in wanted]
    pdf = await labels.render_labels_async(sheet, template, start_position=start_position)
    await mark_labelled(codes_printed=wanted)
    return pdf, wanted


async def sticker_sheet(
    *, count: int, template: str, base_url: str, start_position: int = 0, actor_id: int | None = None
) -> bytes:
    """A sheet of new, unclaimed sticker codes to stick on things before they are added."""

    labels.find_template(template)  # an unknown layout is refused before any code is made
    created = await create_stickers(count=count, actor_id=actor_id)
    sheet = [labels.Label(code=code, name="", url=qr.item_url(base_url, code)) for code in created]
    return await labels.render_labels_async(sheet, template, start_position=start_position)


# --- piccolo_admin ------------------------------------------------------------------------------


async def admin_update_group(*, group_id: int, values: dict) -> dict:
    """An item group edited in piccolo_admin, under the same rules as the desk's form. The
    change is written (and the search index refreshed) here, in one transaction; the cleaned
    values are returned for the admin to write again unchanged."""
    current = await ItemGroup.select().where(ItemGroup.id == group_id).first().run()
    if current is None:
        raise errors.NotFound(_l("There is no such item."), code="item_not_found")
    merged = {**current, **values}
    parts = merged["parts"]
    details = ItemDetails(
        name=merged["name"],
        description=merged["description"],
        category_id=merged["category"],
        safety_notes=merged["safety_notes"],
        parts=json.loads(parts) if isinstance(parts, str) else parts,
        loan_days=merged["loan_days"],
    )
    group_fields, _item_fields, problems = _checked_details(details)
    problems = {key: text for key, text in problems.items() if key in group_fields or key == "category"}
    problems.update(await _reference_problems(details))
    if problems:
        raise errors.InvalidInput(_l("Check the item's details."), errors=problems)
    cleaned = {key: group_fields[key] for key in values if key in group_fields}
    async with db.transaction(write=True):
        await ItemGroup.update({**cleaned, "updated_at": clock.now()}).where(ItemGroup.id == group_id).run()
        await _after_group_change(group_id)
    return cleaned


async def admin_item_changes(*, item_id: int, values: dict) -> dict:
    """Item fields edited in piccolo_admin: status changes follow the same rules as the desk;
    the code and the group cannot change there."""
    current = await Item.select(Item.status).where(Item.id == item_id).first().run()
    if current is None:
        raise errors.NotFound(_l("There is no such item."), code="item_not_found")
    problems: dict[str, str] = {}
    if "status" in values and values["status"] != current["status"]:
        if problem := rules.status_change_problem(
            current=current["status"], new=values["status"], reason=str(values.get("status_reason", ""))
        ):
            problems["status"] = problem
    if "condition" in values and values["condition"] not in rules.CONDITIONS:
        problems["condition"] = _l("Choose the item's condition.")
    value = values.get("replacement_value_pence")
    if value is not None and not (isinstance(value, int) and 0 <= value <= rules.MAX_VALUE_PENCE):
        problems["replacement_value_pence"] = _l("Enter a value in pounds, like 45 or 12.50.")
    if problems:
        raise errors.InvalidInput(_l("Check the item's details."), errors=problems)
    return {key: value for key, value in values.items() if key not in {"code", "item_group", "id"}}


async def _after_group_change(group_id: int) -> None:
    """Keep what depends on a group's text (the search index) in step, in the same transaction."""
    await search.index_group(group_id)


async def admin_update_category(*, category_id: int, values: dict) -> dict:
    """A category renamed or moved in piccolo_admin: names stay unique within a parent, a
    category cannot move inside itself, and the items under it are re-indexed for search."""
    current = await Category.select().where(Category.id == category_id).first().run()
    if current is None:
        raise errors.NotFound(_l("There is no such category."), code="unknown_category")
    cleaned = {key: value for key, value in values.items() if key in {"name", "parent", "position", "loan_days"}}
    if "loan_days" in cleaned:
        cleaned["loan_days"] = _category_loan_days(cleaned["loan_days"])
    if "name" in cleaned:
        cleaned["name"] = _category_name(cleaned["name"])
    parent = cleaned.get("parent", current["parent"])
    if parent is not None and (parent == category_id or category_id in await _ancestors(int(parent))):
        raise errors.InvalidInput(_l("A category cannot go inside itself."), field="parent", code="category_cycle")
    with db.unique_violation_as(lambda: _category_exists(cleaned.get("name", current["name"]))):
        async with db.transaction(write=True):
            await Category.update(cleaned).where(Category.id == category_id).run()
            await search.index_category(category_id)
            await config_cache.changed()
    return cleaned


@dataclass(frozen=True)
class WantedThing:
    id: int
    name: str
    category: str
    wanted: int
    copies: int


async def wanted_things() -> list[WantedThing]:
    """Things the venue wants more copies of than it has (from a setup file it started from)."""
    paths = {node.id: node.path for node in await category_tree()}
    groups = (
        await ItemGroup.select(ItemGroup.id, ItemGroup.name, ItemGroup.category, ItemGroup.wanted)
        .where(ItemGroup.wanted > 0)
        .order_by(ItemGroup.name)
        .run()
    )
    have: dict[int, int] = {}
    for row in await Item.select(Item.item_group).where(Item.status != Status.retired.value).run():
        have[row["item_group"]] = have.get(row["item_group"], 0) + 1
    return [
        WantedThing(
            id=g["id"],
            name=g["name"],
            category=paths.get(g["category"], ""),
            wanted=g["wanted"],
            copies=have.get(g["id"], 0),
        )
        for g in groups
        if have.get(g["id"], 0) < g["wanted"]
    ]


async def thing_details(*, group_id: int) -> ItemDetails | None:
    """A thing's shared details, to start the form for its first copy."""
    row = await ItemGroup.select().where(ItemGroup.id == group_id).first().run()
    if row is None:
        return None
    parts = row["parts"]
    parts = json.loads(parts) if isinstance(parts, str) else (parts or [])
    return ItemDetails(
        name=row["name"],
        description=row["description"],
        category_id=row["category"],
        safety_notes=row["safety_notes"],
        parts="\n".join(parts),
        loan_days=row["loan_days"],
    )
