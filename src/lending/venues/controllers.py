"""The coordinator's home, the venue's settings and setup file, the words of its messages, the
venue's look (theme and logo) and the first run on an empty installation."""

from __future__ import annotations

from litestar import Request, Response, Router, get, post, put
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template

from lending import errors, i18n
from lending.adapters.labels import TEMPLATES as LABEL_TEMPLATES
from lending.i18n import gettext as _
from lending.mail import rules as mail_rules
from lending.mail import services as mail
from lending.members import services as members
from lending.members.rules import Role
from lending.venues import rules
from lending.venues import services as venues
from lending.venues.schemas import SetupImported, VenueIn, VenueOut, venue_out
from lending.web import auth, flash
from lending.web.auth import current_user, requires
from lending.web.errors import error_responses
from lending.web.forms import form_data, form_list
from lending.workflows import first_run, setup_file, venue_details

SETUP_MAX_BYTES = 20 * 1024 * 1024  # a setup with a 100,000-thing catalogue fits


@get("/", name="venues:manage", include_in_schema=False)
async def manage(request: Request) -> Template:
    counts = await members.count_by_role()
    return Template(
        template_name="venues/manage.html",
        context={
            "counts": [(role, counts.get(role.value, 0)) for role in Role],
            "events": await members.recent_activity(limit=20),
        },
    )


# --- the venue's settings ------------------------------------------------------------------------


def _details_from(form: dict[str, str], languages: list[str]) -> rules.VenueDetails:
    return rules.VenueDetails(
        name=form.get("name", ""),
        timezone=form.get("timezone", ""),
        currency=form.get("currency", "").lower(),
        email=form.get("email", ""),
        phone=form.get("phone", ""),
        address=form.get("address", ""),
        website=form.get("website", ""),
        colour=form.get("colour", ""),
        languages=rules.offered_languages(languages, tuple(i18n.LANGUAGES), form.get("default_language", "")),
        label_template=form.get("label_template", ""),
    )


async def _settings_page(
    request: Request, *, error: errors.DomainError | None = None, values: dict | None = None, status: int = 200
) -> Template:
    current = await venues.settings(fresh=True)
    return Template(
        template_name="venues/settings.html",
        status_code=status,
        context={
            "venue": current,
            "error": error,
            "errors": error.errors if error else {},
            "values": values or {},
            "currencies": [(code, code.upper()) for code in rules.CURRENCIES],
            "label_templates": [(name, name) for name in LABEL_TEMPLATES],
            "can_import": not await setup_file.is_set_up(),
        },
    )


@get("/venue", name="venues:settings", include_in_schema=False)
async def settings_page(request: Request) -> Template:
    return await _settings_page(request)


@post("/venue", name="venues:save_settings", include_in_schema=False)
async def save_settings(request: Request) -> Response:
    form = await request.form()
    values = {key: str(value).strip() for key, value in form.items() if isinstance(value, str)}
    languages = form_list(form, "languages")
    try:
        await venue_details.save_venue_details(
            details=_details_from(values, languages), actor_id=current_user(request).id
        )
    except errors.InvalidInput as exc:
        return await _settings_page(request, error=exc, values={**values, "languages": languages}, status=422)
    flash.add(request.scope, _("The venue's details are saved."))
    return Redirect(path="/manage/venue", status_code=303)


@post("/venue/logo", name="venues:save_logo", include_in_schema=False, request_max_body_size=16 * 1024 * 1024)
async def save_logo(request: Request) -> Response:
    form = await request.form()
    upload = form.get("logo")
    actor = current_user(request).id
    if form.get("remove") == "yes":
        await venues.set_logo(data=None, actor_id=actor)
        flash.add(request.scope, _("The logo is removed."))
        return Redirect(path="/manage/venue#logo", status_code=303)
    data = await upload.read() if isinstance(upload, UploadFile) and upload.filename else b""
    try:
        if not data:
            raise errors.InvalidInput(_("Choose a picture to upload."), code="logo_missing", field="logo")
        await venues.set_logo(data=data, actor_id=actor)
    except errors.InvalidInput as exc:
        if "logo" not in exc.errors:
            exc.errors["logo"] = str(exc.detail)
        return await _settings_page(request, error=exc, status=422)
    flash.add(request.scope, _("The logo is saved."))
    return Redirect(path="/manage/venue#logo", status_code=303)


@get("/venue/setup.json", name="venues:download_setup", include_in_schema=False)
async def download_setup(request: Request) -> Response:
    catalogue = request.query_params.get("catalogue") == "yes"
    text = await setup_file.export_text(include_catalogue=catalogue, actor_id=current_user(request).id)
    name = "".join(ch if ch.isalnum() else "-" for ch in (await venues.settings()).name.lower()).strip("-") or "venue"
    return Response(
        content=text.encode("utf-8"),
        media_type="application/json; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-setup.json"', "Cache-Control": "no-store"},
    )


async def _read_setup_upload(request: Request) -> bytes:
    form = await request.form()
    upload = form.get("setup")
    data = await upload.read() if isinstance(upload, UploadFile) and upload.filename else b""
    if not data:
        raise errors.InvalidInput(_("Choose the setup file to start from."), code="setup_missing", field="setup")
    return data


@post("/venue/setup", name="venues:import_setup", include_in_schema=False, request_max_body_size=SETUP_MAX_BYTES)
async def import_setup(request: Request) -> Response:
    try:
        result = await setup_file.import_text(await _read_setup_upload(request), actor_id=current_user(request).id)
    except (errors.InvalidInput, errors.Conflict) as exc:
        return await _settings_page(request, error=exc, status=exc.status)
    flash.add(
        request.scope,
        _("%(name)s is set up from the file. Check each page under Manage before you open.", name=result.venue_name),
    )
    return Redirect(path="/manage/venue", status_code=303)


# --- the words of messages -------------------------------------------------------------------------


@get("/emails", name="venues:emails", include_in_schema=False)
async def emails_page(request: Request) -> Template:
    own = {(t.kind, t.language) for t in await mail.list_templates()}
    offered = (await venues.settings()).languages
    return Template(
        template_name="venues/emails.html",
        context={
            "kinds": mail_rules.KINDS,
            "languages": [(code, i18n.LANGUAGES[code]) for code in offered],
            "own": own,
        },
    )


async def _email_page(
    request: Request,
    kind: str,
    language: str,
    *,
    error: errors.DomainError | None = None,
    values: dict | None = None,
    status: int = 200,
) -> Template:
    if kind not in mail_rules.KINDS or language not in i18n.LANGUAGES:
        raise errors.NotFound(_("There is no such message."), code="unknown_message_kind")
    current = next((t for t in await mail.list_templates() if t.kind == kind and t.language == language), None)
    return Template(
        template_name="venues/email.html",
        status_code=status,
        context={
            "kind": kind,
            "info": mail_rules.KINDS[kind],
            "language": language,
            "language_name": i18n.LANGUAGES[language],
            "current": current,
            "error": error,
            "errors": error.errors if error else {},
            "values": values or {},
        },
    )


@get("/emails/{kind:str}/{language:str}", name="venues:email", include_in_schema=False)
async def email_page(request: Request, kind: FromPath[str], language: FromPath[str]) -> Template:
    return await _email_page(request, kind, language)


@post("/emails/{kind:str}/{language:str}", name="venues:save_email", include_in_schema=False)
async def save_email(request: Request, kind: FromPath[str], language: FromPath[str]) -> Response:
    form = await form_data(request)
    if form.get("reset") == "yes":
        await mail.reset_template(kind=kind, language=language, actor_id=current_user(request).id)
        flash.add(request.scope, _("That message is back to its built-in words."))
        return Redirect(path="/manage/emails", status_code=303)
    try:
        await mail.save_template(
            kind=kind,
            language=language,
            subject=form.get("subject", ""),
            body=form.get("body", ""),
            actor_id=current_user(request).id,
        )
    except errors.InvalidInput as exc:
        return await _email_page(request, kind, language, error=exc, values=form, status=422)
    flash.add(request.scope, _("The message's words are saved."))
    return Redirect(path="/manage/emails", status_code=303)


# --- the venue's look, for every page ----------------------------------------------------------------


@get("/venue/theme.css", name="venues:theme", include_in_schema=False)
async def theme() -> Response:
    colour = (await venues.settings()).colour
    return Response(
        content=f":root {{ --brand: {colour}; --brand-dark: {rules.darker(colour)}; }}\n",
        media_type="text/css; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@get("/venue/logo.png", name="venues:logo", include_in_schema=False)
async def logo() -> Response:
    data = await venues.logo()
    if data is None:
        raise errors.NotFound(_("This venue has no logo."), code="no_logo")
    return Response(
        content=data,
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


# --- the first run ----------------------------------------------------------------------------------


@post("/welcome", name="venues:first_run", include_in_schema=False, request_max_body_size=SETUP_MAX_BYTES)
async def start_venue(request: Request) -> Response:
    form = await request.form()
    values = {key: str(value).strip() for key, value in form.items() if isinstance(value, str)}
    languages = form_list(form, "languages")
    upload = form.get("setup")
    from_file = values.get("start") == "file"
    data = await upload.read() if from_file and isinstance(upload, UploadFile) and upload.filename else None
    try:
        if from_file and not data:
            raise errors.InvalidInput(_("Choose the setup file to start from."), code="setup_missing", field="setup")
        account, token = await first_run.start(
            name=values.get("name", ""),
            email=values.get("email", ""),
            password=values.get("password", ""),
            venue_name=values.get("venue_name", ""),
            timezone=values.get("timezone", rules.DEFAULT_TIMEZONE),
            languages=rules.offered_languages(languages, tuple(i18n.LANGUAGES), values.get("default_language", "")),
            setup_text=data,
            language=i18n.current_language(),
        )
    except errors.Conflict:
        flash.add(request.scope, _("This library has been set up already. Sign in instead."), "info")
        return Redirect(path="/login", status_code=303)
    except errors.InvalidInput as exc:
        values.pop("password", None)
        return Template(
            template_name="venues/welcome.html",
            status_code=422,
            context={"values": {**values, "languages": languages}, "errors": exc.errors, "error": exc},
        )
    flash.add(
        request.scope,
        _(
            "Welcome, %(name)s. Your library is set up: check each page under Manage before you open.",
            name=account.name,
        ),
    )
    response = Redirect(path="/manage/venue", status_code=303)
    response.set_cookie(auth.session_cookie(token, secure=request.app.state.settings.secure_cookies))
    return response


# --- the JSON API -----------------------------------------------------------------------------------


@get("/venue", name="api:venue", tags=["venue"], summary="The venue's name, contact details, look and languages")
async def api_venue() -> VenueOut:
    return venue_out(await venues.settings())


@put(
    "/venue",
    name="api:venue_save",
    guards=[requires(Role.coordinator)],
    tags=["venue"],
    summary="Change the venue's details (all or nothing)",
)
async def api_venue_save(request: Request, data: JSONBody[VenueIn]) -> VenueOut:
    try:
        languages = rules.parse_languages(",".join(data.languages), tuple(i18n.LANGUAGES))
    except ValueError as exc:
        raise errors.InvalidInput(exc.args[0], code="invalid_venue", field="languages") from None
    details = rules.VenueDetails(
        name=data.name,
        timezone=data.timezone,
        currency=data.currency.lower(),
        email=data.email,
        phone=data.phone,
        address=data.address,
        website=data.website,
        colour=data.colour,
        languages=languages,
        label_template=data.label_template,
    )
    return venue_out(await venue_details.save_venue_details(details=details, actor_id=current_user(request).id))


@get(
    "/venue/setup",
    name="api:venue_setup",
    guards=[requires(Role.coordinator)],
    tags=["venue"],
    summary="The venue's setup file (no personal data); ?catalogue=true adds the catalogue",
)
async def api_venue_setup(request: Request, catalogue: FromQuery[bool] = False) -> Response:
    text = await setup_file.export_text(include_catalogue=catalogue, actor_id=current_user(request).id)
    return Response(content=text.encode("utf-8"), media_type="application/json")


@post(
    "/venue/setup",
    name="api:venue_setup_import",
    guards=[requires(Role.coordinator)],
    tags=["venue"],
    summary="Start this new, empty venue from a setup file (the file as the body); 422 lists every problem",
    request_max_body_size=SETUP_MAX_BYTES,
    responses=error_responses(413, 422),
)  # the body is the file
async def api_venue_setup_import(request: Request) -> Response[SetupImported]:
    result = await setup_file.import_text(await request.body(), actor_id=current_user(request).id)
    return Response(content=SetupImported(venue=result.venue_name, counts=result.counts), status_code=201)


API_ROUTES = [api_venue, api_venue_save, api_venue_setup, api_venue_setup_import]

ROUTES = [
    Router(
        path="/manage",
        guards=[requires(Role.coordinator)],
        route_handlers=[
            manage,
            settings_page,
            save_settings,
            save_logo,
            download_setup,
            import_setup,
            emails_page,
            email_page,
            save_email,
        ],
    ),
    theme,
    logo,
    start_venue,
]
