"""People: your own account, registering members at the desk, the coordinator's people
page, and the members API."""

from __future__ import annotations

from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template

from lending import errors, i18n
from lending.adapters import qr
from lending.i18n import gettext as _
from lending.loans import records
from lending.members import organisations, rules
from lending.members import services as members
from lending.members.rules import Role
from lending.members.schemas import MemberIn, MemberList, MemberOut, MeOut, member_out
from lending.memberships import controllers as membership_pages
from lending.web import flash
from lending.web.auth import current_user, language_cookie, requires, signed_in
from lending.web.forms import form_data
from lending.workflows import person_data

# --- your account ----------------------------------------------------------------------------


@get("/account", name="members:account", guards=[signed_in], include_in_schema=False)
async def account_page(request: Request) -> Template:

    user = current_user(request)
    card_url = f"{request.app.state.settings.base_url}/c/{user.card_code}"
    return Template(
        template_name="members/account.html",
        context={
            "account": user,
            **await membership_pages.account_context(user.id),
            "card_qr": qr.qr_svg(card_url).decode(),
            "loans": await records.member_loans(member_id=user.id),
        },
    )


@post("/account/language", name="members:account_language", guards=[signed_in], include_in_schema=False)
async def account_language(request: Request) -> Response:
    """The language of the member's pages and of every email the library sends them."""
    data = await form_data(request)
    language = data.get("language", "")
    try:
        await members.set_language(account_id=current_user(request).id, language=language)
    except errors.InvalidInput as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(path="/account#language", status_code=303)
    with i18n.in_language(language):
        flash.add(request.scope, _("Your pages and emails will be in %(language)s.", language=i18n.LANGUAGES[language]))
    response = Redirect(path="/account#language", status_code=303)
    response.set_cookie(language_cookie(language, secure=request.app.state.settings.secure_cookies))
    return response


# --- the desk: registering members --------------------------------------------------------------


@get("/new", name="members:register", include_in_schema=False)
async def register_page(request: Request) -> Template:
    return Template(template_name="members/register.html", context={"values": {}, "errors": {}, "error": None})


@post("/", name="members:register_submit", include_in_schema=False)
async def register_submit(request: Request) -> Response:
    data = await form_data(request)
    try:
        member = await members.register_member(
            name=data.get("name", ""),
            email=data.get("email") or None,
            phone=data.get("phone") or None,
            language=data.get("language") or i18n.current_language(),
            actor_id=current_user(request).id,
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(
            template_name="members/register.html",
            context={"values": data, "errors": exc.errors, "error": str(exc.detail)},
            status_code=exc.status,
        )
    flash.add(
        request.scope,
        _("%(name)s is registered. Their card number is %(code)s.", name=member.name, code=member.card_code),
    )
    return Redirect(path=f"/desk/members/{member.id}", status_code=303)  # straight on to lending


@post("/{account_id:int}/language", name="members:desk_language", include_in_schema=False)
async def desk_language(request: Request, account_id: FromPath[int]) -> Response:
    """At the counter: the language the library writes to this member in."""
    data = await form_data(request)
    member = await members.get_account(account_id=account_id)
    try:
        await members.set_language(account_id=member.id, language=data.get("language", ""))
    except errors.InvalidInput as exc:
        flash.add(request.scope, str(exc.detail), "error")
    else:
        flash.add(
            request.scope,
            _(
                "Messages to %(name)s will be in %(language)s.",
                name=member.name,
                language=i18n.LANGUAGES[data["language"]],
            ),
        )
    return Redirect(path=f"/desk/members/{member.id}#language", status_code=303)


desk_members = Router(
    path="/desk/members",
    guards=[requires(Role.volunteer)],
    route_handlers=[register_page, register_submit, desk_language],
)


# --- the coordinator's people page -------------------------------------------------------------


async def _people_context(values: dict, problems: dict, error: str | None) -> dict:
    known = await organisations.list_organisations()
    return {
        "people": await members.list_accounts(),
        "role_options": [(role.value, rules.ROLE_LABELS[role]) for role in Role],
        "organisation_options": [("", _("None")), *((o.id, o.name) for o in known)],
        "values": values,
        "errors": problems,
        "error": error,
    }


@get("/", name="members:people", include_in_schema=False)
async def people_page(request: Request) -> Template:
    return Template(template_name="members/people.html", context=await _people_context({"role": "volunteer"}, {}, None))


@post("/", name="members:people_create", include_in_schema=False)
async def people_create(request: Request) -> Response:
    data = await form_data(request)
    try:
        person = await members.create_account(
            name=data.get("name", ""),
            email=data.get("email") or None,
            role=data.get("role", ""),
            password=data.get("password") or None,
            phone=data.get("phone") or None,
            language=data.get("language", "en"),
            organisation=data.get("organisation") or None,
            actor_id=current_user(request).id,
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        data.pop("password", None)
        return Template(
            template_name="members/people.html",
            context=await _people_context(data, exc.errors, str(exc.detail)),
            status_code=exc.status,
        )
    flash.add(
        request.scope,
        _("Account created for %(name)s (%(role)s).", name=person.name, role=str(rules.ROLE_LABELS[Role(person.role)])),
    )
    return Redirect(path="/manage/people", status_code=303)


@get("/{account_id:int}", name="members:person", include_in_schema=False)
async def person_page(request: Request, account_id: FromPath[int]) -> Template:
    return Template(
        template_name="members/person.html", context={"person": await members.get_account(account_id=account_id)}
    )


@get("/{account_id:int}/export", name="members:person_export", include_in_schema=False)
async def person_export(request: Request, account_id: FromPath[int]) -> Response:
    """Everything held about one person, for a subject access request."""

    body = await person_data.export_person(account_id=account_id, actor_id=current_user(request).id)
    return Response(
        content=body,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="person-{account_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@post("/{account_id:int}/erase", name="members:person_erase", include_in_schema=False)
async def person_erase(request: Request, account_id: FromPath[int]) -> Response:
    data = await form_data(request)
    if data.get("confirm") != "yes":
        flash.add(request.scope, _("Tick the box to confirm the erasure."), "error")
        return Redirect(path=f"/manage/people/{account_id}", status_code=303)
    try:
        await person_data.erase_person(account_id=account_id, actor_id=current_user(request).id)
    except (errors.Conflict, errors.RuleViolation) as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(path=f"/manage/people/{account_id}", status_code=303)
    flash.add(request.scope, _("Their personal details are erased; the anonymous records stay."))
    return Redirect(path="/manage/people/", status_code=303)


manage_people = Router(
    path="/manage/people",
    guards=[requires(Role.coordinator)],
    route_handlers=[people_page, people_create, person_page, person_export, person_erase],
)


# --- JSON API ----------------------------------------------------------------------------------


@post(
    "/members",
    name="api:members_create",
    guards=[requires(Role.volunteer)],
    tags=["members"],
    summary="Register a member at the counter",
)
async def api_create_member(request: Request, data: JSONBody[MemberIn]) -> Response[MemberOut]:
    member = await members.register_member(
        name=data.name, email=data.email, phone=data.phone, language=data.language, actor_id=current_user(request).id
    )
    return Response(content=member_out(member), status_code=201)


@get(
    "/members",
    name="api:members_search",
    guards=[requires(Role.volunteer)],
    tags=["members"],
    summary="Find members by name, email or card code",
)
async def api_search_members(q: FromQuery[str] = "") -> MemberList:
    return MemberList(members=[member_out(m) for m in await members.find_members(query=q)])


@get("/me", name="api:me", guards=[signed_in], tags=["members"], summary="The signed-in account")
async def api_me(request: Request) -> MeOut:
    user = current_user(request)
    return MeOut(
        id=user.id,
        name=user.name,
        email=user.email,
        role=user.role,
        language=user.language,
        card_code=user.card_code,
        organisation=user.organisation_name,
    )


API_ROUTES = [api_create_member, api_search_members, api_me]
ROUTES = [account_page, account_language, desk_members, manage_people]
