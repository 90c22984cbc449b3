"""Pages every visitor reaches: home, sign-in and sign-out, the language switch, health."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from lending import db, errors, i18n
from lending.i18n import gettext as _
from lending.members import services as members
from lending.venues import services as venues
from lending.web import auth, flash
from lending.web.clients import client_address
from lending.web.forms import form_data, safe_next
from lending.workflows import first_run


@get("/", name="web:home", include_in_schema=False)
async def home(request: Request) -> Template:
    if await first_run.needed():  # an empty installation: set it up instead of showing an empty site
        return Template(template_name="venues/welcome.html", context={"values": {}, "errors": {}, "error": None})
    return Template(template_name="web/home.html", context={})


@get("/login", name="web:login", include_in_schema=False)
async def login_page(request: Request) -> Response:
    user = auth.current_user(request)
    next_url = safe_next(request.query_params.get("next"), "")
    if user is not None:
        return Redirect(path=next_url or user.home, status_code=303)
    return Template(template_name="web/login.html", context={"next": next_url, "email": "", "error": None})


@post("/login", name="web:login_submit", include_in_schema=False)
async def login_submit(request: Request) -> Response:
    data = await form_data(request)
    next_url = safe_next(data.get("next"), "")
    address = client_address(request)
    try:
        account, token = await members.sign_in(
            email=data.get("email", ""), password=data.get("password", ""), address=address
        )
    except (errors.NotSignedIn, errors.InvalidInput, errors.TooManyAttempts) as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.TooManyAttempts) else None
        return Template(
            template_name="web/login.html",
            context={"next": next_url, "email": data.get("email", ""), "error": str(exc.detail)},
            status_code=exc.status if exc.status != 401 else 400,
            headers=headers,
        )
    # Signing in brings back the account's language, for this page and after signing out.
    language = account.language if account.language in i18n.LANGUAGES else i18n.current_language()
    with i18n.in_language(language):
        flash.add(request.scope, _("You are signed in as %(name)s.", name=account.name))
    response = Redirect(path=next_url or account.home, status_code=303)
    response.set_cookie(auth.session_cookie(token, secure=request.app.state.settings.secure_cookies))
    response.set_cookie(auth.language_cookie(language, secure=request.app.state.settings.secure_cookies))
    return response


@post("/logout", name="web:logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        await members.sign_out(token=token)
    flash.add(request.scope, _("You are signed out."), "info")
    response = Redirect(path="/", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


@get("/language/{code:str}", name="web:language", include_in_schema=False)
async def switch_language(request: Request, code: FromPath[str]) -> Response:
    """A plain link, so the switch works without JavaScript and from any page."""
    if code not in (await venues.settings()).languages:
        raise errors.NotFound(_("That language is not available."), code="unknown_language")
    user = auth.current_user(request)
    if user is not None:
        await members.set_language(account_id=user.id, language=code)
    response = Redirect(path=safe_next(request.query_params.get("next"), "/"), status_code=303)
    response.set_cookie(auth.language_cookie(code, secure=request.app.state.settings.secure_cookies))
    return response


@get("/health", name="web:health", summary="Health", tags=["system"], cache=False)
async def health() -> Response:
    """200 when the database answers, 503 when it does not."""
    if await db.ping():
        return Response(content={"status": "ok"}, status_code=200)
    return Response(
        content={"status": "unavailable", "code": "database_unavailable", "detail": "The database is not answering."},
        status_code=503,
    )


ROUTES = [home, login_page, login_submit, logout, switch_language, health]
