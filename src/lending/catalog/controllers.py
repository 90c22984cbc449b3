"""The catalogue on the web: item pages (the target of every QR sticker), browsing and search,
photos, QR codes, label sheets, and the volunteers' pages to add and edit items."""

from __future__ import annotations

from litestar import Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template

from lending import errors
from lending.adapters import labels, qr
from lending.catalog import rules, search
from lending.catalog import services as catalog
from lending.catalog.schemas import ItemIn, ItemList, ItemOut, LabelsIn, item_out
from lending.catalog.services import ItemDetails
from lending.i18n import gettext as _
from lending.i18n import lazy_gettext as _l
from lending.loans import availability, holds
from lending.members.rules import Role
from lending.venues import services as venues
from lending.web import flash
from lending.web.auth import current_user, requires
from lending.web.forms import form_data

PHOTO_CACHE = "public, max-age=31536000, immutable"  # a photo id never changes content


def _base_url(request: Request) -> str:
    return request.app.state.settings.base_url


def _int_or_none(text: str | None, field: str) -> int | None:
    if text in (None, ""):
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise errors.InvalidInput(_l("Choose from the list."), field=field) from exc


# --- public pages ------------------------------------------------------------------------------


@get("/i/{code:str}", name="catalog:item", include_in_schema=False)
async def item_page(request: Request, code: FromPath[str]) -> Response:
    item = await availability.get_item(code=code)
    if item.code != code:
        return Redirect(path=f"/i/{item.code}", status_code=301)  # one address per item
    return Template(
        template_name="catalog/item.html",
        context={
            "item": item,
            "status_label": rules.STATUS_LABELS[rules.Status(item.status)],
            "reported": request.query_params.get("reported") == "1",
        },
    )


@post("/i/{code:str}/problems", name="catalog:report_problem", include_in_schema=False)
async def report_problem(request: Request, code: FromPath[str]) -> Response:
    form = await request.form()
    user = current_user(request)
    try:
        item = await catalog.report_problem(
            code=code, description=str(form.get("description", "")), reporter_id=user.id if user else None
        )
    except errors.InvalidInput as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(path=f"/i/{code}#report", status_code=303)
    flash.add(request.scope, _("Thank you. A volunteer will look at it."))
    return Redirect(path=f"/i/{item.code}?reported=1", status_code=303)


@get("/items", name="catalog:browse", include_in_schema=False)
async def browse(
    request: Request,
    q: FromQuery[str] = "",
    category: FromQuery[str] = "",
    available: FromQuery[str] = "",
    cursor: FromQuery[str] = "",
) -> Template:
    category_id = _int_or_none(category, "category")
    found = await search.resolve(q) if q.strip() else None
    items, next_cursor = await catalog.list_items(
        searched=found, category_id=category_id, available=available == "1", cursor=cursor
    )
    # One entry per thing: copies of a group sit next to each other in name order.
    shown, seen = [], set()
    for item in items:
        if item.group_id not in seen:
            seen.add(item.group_id)
            shown.append(item)
    items = shown
    return Template(
        template_name="catalog/browse.html",
        context={
            "items": items,
            "next_cursor": next_cursor,
            "q": q,
            "category": category_id,
            "available": available == "1",
            "corrected": found.corrected if found else None,
            "note": found.note if found else None,
            "categories": await catalog.category_tree(),
            "status_labels": rules.STATUS_LABELS,
        },
    )


@get("/photos/{photo_id:int}", name="catalog:photo", include_in_schema=False)
async def photo(photo_id: FromPath[int]) -> Response:
    data, content_type = await catalog.photo_bytes(photo_id=photo_id)
    return Response(content=data, media_type=content_type, headers={"Cache-Control": PHOTO_CACHE})


@get("/photos/{photo_id:int}/thumb", name="catalog:thumbnail", include_in_schema=False)
async def thumbnail(photo_id: FromPath[int]) -> Response:
    data, content_type = await catalog.photo_bytes(photo_id=photo_id, thumbnail=True)
    return Response(content=data, media_type=content_type, headers={"Cache-Control": PHOTO_CACHE})


@get("/manuals/{manual_id:int}", name="catalog:manual", include_in_schema=False)
async def manual(manual_id: FromPath[int]) -> Response:
    data, title = await catalog.manual_bytes(manual_id=manual_id)
    safe = "".join(ch for ch in title if ch.isalnum() or ch in " -_")[:80].strip() or "manual"
    return Response(
        content=data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{safe}.pdf"',
            "Cache-Control": PHOTO_CACHE,
            "X-Content-Type-Options": "nosniff",
        },
    )


# --- the desk: adding and editing items --------------------------------------------------------------


async def _form_context(values: dict, problems: dict, error: str | None, item=None) -> dict:
    return {
        "values": values,
        "errors": problems,
        "error": error,
        "item": item,
        "category_options": [
            ("", _("No category")),
            *((n.id, "— " * n.depth + n.name) for n in await catalog.category_tree()),
        ],
        "site_options": [("", _("Not set")), *((s.id, s.name) for s in await catalog.list_sites())],
        "condition_options": list(rules.CONDITION_LABELS.items()),
    }


def _details(form: dict) -> ItemDetails:
    return ItemDetails(
        name=form.get("name", ""),
        description=form.get("description", ""),
        category_id=_int_or_none(form.get("category"), "category"),
        safety_notes=form.get("safety_notes", ""),
        parts=form.get("parts", ""),
        loan_days=_int_or_none(form.get("loan_days"), "loan_days"),
        condition=form.get("condition", "good"),
        replacement_value=form.get("replacement_value", ""),
        donor=form.get("donor", ""),
        site_id=_int_or_none(form.get("site"), "site"),
        notes=form.get("notes", ""),
    )


async def _read_form(request: Request) -> tuple[dict[str, str], dict[str, UploadFile]]:
    values = await form_data(request)
    form = await request.form()  # parsed once and kept by the request
    uploads = {key: form.get(key) for key in ("photo", "manual")}
    return values, {key: up for key, up in uploads.items() if isinstance(up, UploadFile) and up.filename}


async def _attach(item_code: str, uploads: dict[str, UploadFile], values: dict[str, str], actor: int) -> None:
    """The photo and manual sent with an item's form, once the item exists."""
    if "photo" in uploads:
        await catalog.add_photo(code=item_code, data=await uploads["photo"].read(), actor_id=actor)
    if "manual" in uploads:
        upload = uploads["manual"]
        await catalog.add_manual(
            code=item_code,
            title=values.get("manual_title") or upload.filename.rsplit(".", 1)[0],
            data=await upload.read(),
            actor_id=actor,
        )


@get("/new", name="catalog:add", include_in_schema=False)
async def add_page(request: Request) -> Template:
    values = {
        "condition": "good",
        "sticker": request.query_params.get("sticker", ""),
        "copy_of": request.query_params.get("copy_of", ""),
    }
    wanted = request.query_params.get("wanted", "")
    if wanted.isdigit() and (thing := await catalog.thing_details(group_id=int(wanted))) is not None:
        values.update(
            wanted=wanted,
            name=thing.name,
            description=thing.description,
            safety_notes=thing.safety_notes,
            parts=thing.parts,
            loan_days=thing.loan_days or "",
            category=thing.category_id if thing.category_id is not None else "",
        )
    return Template(template_name="catalog/edit.html", context=await _form_context(values, {}, None))


@post("/new", name="catalog:add_submit", include_in_schema=False, request_max_body_size=20 * 1024 * 1024)
async def add_submit(request: Request) -> Response:
    values, uploads = await _read_form(request)
    actor = current_user(request).id
    try:
        item = await catalog.add_item(
            details=_details(values),
            sticker=values.get("sticker", ""),
            copy_of=values.get("copy_of", ""),
            actor_id=actor,
            wanted=int(values["wanted"]) if values.get("wanted", "").isdigit() else None,
        )
    except (errors.InvalidInput, errors.Conflict, errors.NotFound) as exc:
        return Template(
            template_name="catalog/edit.html",
            context=await _form_context(values, exc.errors, str(exc.detail)),
            status_code=exc.status,
        )
    flash.add(request.scope, _("%(name)s is added with the code %(code)s.", name=item.name, code=item.code))
    try:
        await _attach(item.code, uploads, values, actor)
    except errors.InvalidInput as exc:  # the item stays; the person is told what to do with the file
        flash.add(request.scope, str(exc.detail), "error")
    return Redirect(path=f"/desk/items/{item.code}", status_code=303)


@get("/{code:str}", name="catalog:edit", include_in_schema=False)
async def edit_page(request: Request, code: FromPath[str]) -> Template:
    item = await catalog.get_item(code=code)
    values = {
        "name": item.name,
        "description": item.description,
        "category": item.category_id or "",
        "safety_notes": item.safety_notes,
        "parts": "\n".join(item.parts),
        "loan_days": item.loan_days or "",
        "condition": item.condition,
        "donor": item.donor,
        "site": item.site_id or "",
        "notes": item.notes,
        "replacement_value": f"{item.replacement_value_pence / 100:.2f}" if item.replacement_value_pence else "",
    }
    context = await _form_context(values, {}, None, item)
    context["status_options"] = [(s.value, rules.STATUS_LABELS[s]) for s in rules.SET_BY_HAND]
    return Template(template_name="catalog/edit.html", context=context)


@post("/{code:str}", name="catalog:edit_submit", include_in_schema=False, request_max_body_size=20 * 1024 * 1024)
async def edit_submit(request: Request, code: FromPath[str]) -> Response:
    values, uploads = await _read_form(request)
    actor = current_user(request).id
    try:
        item = await catalog.update_item(code=code, details=_details(values), actor_id=actor)
        await _attach(item.code, uploads, values, actor)
    except errors.InvalidInput as exc:
        item = await catalog.get_item(code=code)
        context = await _form_context(values, exc.errors, str(exc.detail), item)
        context["status_options"] = [(s.value, rules.STATUS_LABELS[s]) for s in rules.SET_BY_HAND]
        return Template(template_name="catalog/edit.html", context=context, status_code=exc.status)
    flash.add(request.scope, _("Saved."))
    return Redirect(path=f"/desk/items/{item.code}", status_code=303)


@post("/{code:str}/status", name="catalog:status", include_in_schema=False)
async def status_submit(request: Request, code: FromPath[str]) -> Response:
    form = await request.form()
    try:
        item = await holds.set_item_status(
            code=code,
            status=str(form.get("status", "")),
            reason=str(form.get("reason", "")),
            actor_id=current_user(request).id,
        )
    except errors.RuleViolation as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(path=f"/desk/items/{code}#status", status_code=303)
    flash.add(
        request.scope,
        _("%(name)s is now: %(status)s.", name=item.name, status=str(rules.STATUS_LABELS[rules.Status(item.status)])),
    )
    return Redirect(path=f"/desk/items/{item.code}", status_code=303)


# --- JSON API ----------------------------------------------------------------------------------


@get("/items", name="api:items", tags=["catalogue"], summary="Browse and search the catalogue")
async def api_items(
    request: Request,
    q: FromQuery[str] = "",
    category: FromQuery[int | None] = None,
    available: FromQuery[bool] = False,
    cursor: FromQuery[str] = "",
) -> ItemList:
    items, next_cursor = await catalog.list_items(query=q, category_id=category, available=available, cursor=cursor)
    return ItemList(
        items=[item_out(i, _base_url(request)) for i in await availability.with_due_back(items)],
        next_cursor=next_cursor,
    )


@get("/items/{code:str}", name="api:item", tags=["catalogue"], summary="One item, with its status")
async def api_item(request: Request, code: FromPath[str]) -> ItemOut:
    return item_out(await availability.get_item(code=code), _base_url(request))


@post(
    "/items",
    name="api:items_create",
    guards=[requires(Role.volunteer)],
    tags=["catalogue"],
    summary="Add an item (or a copy of one)",
)
async def api_create_item(request: Request, data: JSONBody[ItemIn]) -> Response[ItemOut]:
    category_id = None
    if data.category:
        found = await catalog.find_category(name_or_path=data.category)
        if found is None:
            raise errors.InvalidInput(
                _l("There is no category called %(name)s.", name=data.category),
                code="unknown_category",
                field="category",
            )
        category_id = found.id
    details = ItemDetails(
        name=data.name,
        description=data.description,
        category_id=category_id,
        safety_notes=data.safety_notes,
        parts=data.parts,
        loan_days=data.loan_days,
        condition=data.condition,
        replacement_value=data.replacement_value,
        donor=data.donor,
    )
    item = await catalog.add_item(
        details=details, sticker=data.sticker, copy_of=data.copy_of, actor_id=current_user(request).id
    )
    return Response(content=item_out(item, _base_url(request)), status_code=201)


# --- QR codes and labels --------------------------------------------------------------------


def _pdf(data: bytes, filename: str) -> Response:
    return Response(
        content=data,
        media_type="application/pdf",
        status_code=200,
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"},
    )


@get(
    "/items/{code:str}/qr.png",
    name="api:item_qr_png",
    tags=["catalogue"],
    summary="The item's QR code (PNG)",
    media_type="image/png",
)
async def api_qr_png(request: Request, code: FromPath[str]) -> Response:
    item = await catalog.get_item(code=code)
    return Response(
        content=qr.qr_png(qr.item_url(_base_url(request), item.code)),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@get(
    "/items/{code:str}/qr.svg",
    name="api:item_qr_svg",
    tags=["catalogue"],
    summary="The item's QR code (SVG)",
    media_type="image/svg+xml",
)
async def api_qr_svg(request: Request, code: FromPath[str]) -> Response:
    item = await catalog.get_item(code=code)
    return Response(
        content=qr.qr_svg(qr.item_url(_base_url(request), item.code)),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@post(
    "/labels",
    name="api:labels",
    guards=[requires(Role.volunteer)],
    tags=["catalogue"],
    summary="A PDF sheet of labels, one per item code",
    status_code=200,
)
async def api_labels(request: Request, data: JSONBody[LabelsIn]) -> Response:
    template = data.template or (await venues.settings()).label_template
    pdf, _printed = await catalog.label_sheet(
        item_codes=data.codes,
        template=template,
        base_url=_base_url(request),
        start_position=data.start_position,
        unprinted=data.unprinted,
    )
    return _pdf(pdf, "labels.pdf")


@get("/", name="catalog:labels", include_in_schema=False)
async def labels_page(request: Request) -> Template:
    return Template(
        template_name="catalog/labels.html",
        context=await _labels_context(
            {
                "template": (await venues.settings()).label_template,
                "start": "1",
                "codes": request.query_params.get("codes", ""),
            },
            {},
            None,
        ),
    )


async def _labels_context(values: dict, problems: dict, error: str | None) -> dict:
    return {
        "values": values,
        "errors": problems,
        "error": error,
        "template_options": [(name, name) for name in labels.TEMPLATES],
        "unlabelled": len(await catalog.unlabelled_codes()),
    }


@post("/", name="catalog:labels_print", include_in_schema=False)
async def labels_print(request: Request) -> Response:
    values = await form_data(request)
    try:
        start = int(values.get("start") or 1) - 1  # people count label slots from 1
        if values.get("what") == "stickers":
            pdf = await catalog.sticker_sheet(
                count=int(values.get("count") or 0),
                template=values.get("template", ""),
                base_url=_base_url(request),
                start_position=start,
                actor_id=current_user(request).id,
            )
            return _pdf(pdf, "stickers.pdf")
        pdf, _printed = await catalog.label_sheet(
            item_codes=values.get("codes", "").replace(",", " ").split(),
            template=values.get("template", ""),
            base_url=_base_url(request),
            start_position=start,
            unprinted=values.get("what") == "unprinted",
        )
    except ValueError:
        return Template(
            template_name="catalog/labels.html",
            status_code=422,
            context=await _labels_context(values, {"count": _("Enter a whole number.")}, _("Enter a whole number.")),
        )
    except (errors.InvalidInput, errors.NotFound) as exc:
        return Template(
            template_name="catalog/labels.html",
            status_code=exc.status,
            context=await _labels_context(values, exc.errors, str(exc.detail)),
        )
    return _pdf(pdf, "labels.pdf")


@post("/{problem_id:int}/resolve", name="catalog:resolve_problem", include_in_schema=False)
async def resolve_problem(request: Request, problem_id: FromPath[int]) -> Response:
    try:
        await catalog.resolve_problem(problem_id=problem_id, actor_id=current_user(request).id)
    except errors.NotFound as exc:
        flash.add(request.scope, str(exc.detail), "info")
    else:
        flash.add(request.scope, _("Marked as dealt with."))
    return Redirect(path="/desk", status_code=303)


# --- the coordinator: categories and sites --------------------------------------------------------


async def _setup_context(values: dict, problems: dict, error: str | None) -> dict:
    tree = await catalog.category_tree()
    return {
        "tree": tree,
        "sites": await catalog.list_sites(),
        "values": values,
        "errors": problems,
        "error": error,
        "wanted": await catalog.wanted_things(),
        "parent_options": [("", _("None (a top-level category)")), *((n.id, n.path) for n in tree)],
    }


@get("/", name="catalog:setup", include_in_schema=False)
async def setup_page(request: Request) -> Template:
    return Template(template_name="catalog/setup.html", context=await _setup_context({}, {}, None))


@post("/categories", name="catalog:add_category", include_in_schema=False)
async def add_category(request: Request) -> Response:
    values = await form_data(request)
    try:
        node = await catalog.create_category(
            name=values.get("name", ""),
            parent_id=_int_or_none(values.get("parent"), "parent"),
            actor_id=current_user(request).id,
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(
            template_name="catalog/setup.html",
            status_code=exc.status,
            context=await _setup_context(values, exc.errors, str(exc.detail)),
        )
    flash.add(request.scope, _("%(name)s is added.", name=node.path))
    return Redirect(path="/manage/catalogue", status_code=303)


@post("/sites", name="catalog:add_site", include_in_schema=False)
async def add_site(request: Request) -> Response:
    values = {f"site_{key}": value for key, value in (await form_data(request)).items()}
    try:
        site = await catalog.create_site(
            name=values.get("site_name", ""), address=values.get("site_address", ""), actor_id=current_user(request).id
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        problems = {f"site_{key}": text for key, text in exc.errors.items()}
        return Template(
            template_name="catalog/setup.html",
            status_code=exc.status,
            context=await _setup_context(values, problems, str(exc.detail)),
        )
    flash.add(request.scope, _("%(name)s is added.", name=site.name))
    return Redirect(path="/manage/catalogue", status_code=303)


PUBLIC_ROUTES = [item_page, report_problem, browse, photo, thumbnail, manual]
API_ROUTES = [api_items, api_item, api_create_item, api_qr_png, api_qr_svg, api_labels]
ROUTES = [
    *PUBLIC_ROUTES,
    Router(
        path="/desk/items",
        guards=[requires(Role.volunteer)],
        route_handlers=[add_page, add_submit, edit_page, edit_submit, status_submit],
    ),
    Router(path="/desk/labels", guards=[requires(Role.volunteer)], route_handlers=[labels_page, labels_print]),
    Router(path="/desk/problems", guards=[requires(Role.volunteer)], route_handlers=[resolve_problem]),
    Router(
        path="/manage/catalogue",
        guards=[requires(Role.coordinator)],
        route_handlers=[setup_page, add_category, add_site],
    ),
]
