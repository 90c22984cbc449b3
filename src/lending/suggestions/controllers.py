"""Suggestions on the web: members suggest and support things at /suggestions; coordinators
decide them, most supported first, at /manage/suggestions; and the suggestions API."""

from __future__ import annotations

from litestar import Request, Response, Router, delete, get, post, put
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Template

from lending import errors
from lending.i18n import gettext as _
from lending.members.rules import Role, may_act_as
from lending.suggestions import rules
from lending.suggestions import services as suggestions
from lending.suggestions.schemas import DecisionIn, SuggestionIn, SuggestionList, SuggestionOut, suggestion_out
from lending.web import flash
from lending.web.auth import current_user, requires, signed_in
from lending.web.forms import form_data


def _status_labels() -> dict[str, object]:
    return {status.value: label for status, label in rules.STATUS_LABELS.items()}


# --- members: /suggestions -----------------------------------------------------------------------


async def _index_context(request: Request, values: dict, problems: dict, error: str | None) -> dict:
    user = current_user(request)
    return {
        "open": await suggestions.list_open(viewer_id=user.id),
        "mine": await suggestions.my_suggestions(member_id=user.id),
        "status_labels": _status_labels(),
        "can_decide": may_act_as(user.role, Role.coordinator),
        "values": values,
        "errors": problems,
        "error": error,
    }


@get("/", name="suggestions:index", include_in_schema=False)
async def index_page(request: Request) -> Template:
    return Template(template_name="suggestions/index.html", context=await _index_context(request, {}, {}, None))


@post("/", name="suggestions:create", include_in_schema=False)
async def create(request: Request) -> Response:
    data = await form_data(request)
    try:
        suggestion = await suggestions.suggest(
            title=data.get("title", ""), details=data.get("details", ""), member_id=current_user(request).id
        )
    except errors.InvalidInput as exc:
        return Template(
            template_name="suggestions/index.html",
            context=await _index_context(request, data, exc.errors, str(exc.detail)),
            status_code=exc.status,
        )
    flash.add(request.scope, _("Thank you: “%(title)s” is suggested, with your support.", title=suggestion.title))
    return Redirect(path="/suggestions#yours", status_code=303)


async def _change_support(request: Request, suggestion_id: int, add: bool) -> Response:
    user = current_user(request)
    try:
        if add:
            await suggestions.support(suggestion_id=suggestion_id, member_id=user.id)
            flash.add(request.scope, _("Your support is counted."))
        else:
            await suggestions.withdraw_support(suggestion_id=suggestion_id, member_id=user.id)
            flash.add(request.scope, _("You no longer support that suggestion."))
    except errors.Conflict as exc:
        flash.add(request.scope, str(exc.detail), "error")
    return Redirect(path=f"/suggestions#suggestion-{suggestion_id}", status_code=303)


@post("/{suggestion_id:int}/support", name="suggestions:support", include_in_schema=False)
async def support(request: Request, suggestion_id: FromPath[int]) -> Response:
    return await _change_support(request, suggestion_id, add=True)


@post("/{suggestion_id:int}/withdraw", name="suggestions:withdraw", include_in_schema=False)
async def withdraw(request: Request, suggestion_id: FromPath[int]) -> Response:
    return await _change_support(request, suggestion_id, add=False)


# --- coordinators: /manage/suggestions -----------------------------------------------------------


async def _manage_context(failed: dict | None = None) -> dict:
    """``failed``: the one decision form that was refused, to show again with its problems:
    ``{"id", "form" ("acquire" or "decline"), "typed", "problems", "error"}``."""
    return {
        "open": await suggestions.list_open(),
        "decided": await suggestions.list_decided(),
        "status_labels": _status_labels(),
        "failed": failed,
    }


@get("/", name="suggestions:manage", include_in_schema=False)
async def manage_page(request: Request) -> Template:
    return Template(template_name="suggestions/manage.html", context=await _manage_context())


async def _decide(request: Request, suggestion_id: int, form: str) -> Response:
    data = await form_data(request)
    outcome = rules.Status.acquired.value if form == "acquire" else rules.Status.declined.value
    try:
        decided = await suggestions.decide(
            suggestion_id=suggestion_id,
            outcome=outcome,
            reason=data.get("reason", ""),
            item_code=data.get("item_code") or None,
            actor_id=current_user(request).id,
        )
    except errors.InvalidInput as exc:
        # The summary repeats the general message only when no field message already says it.
        said = {str(text) for text in exc.errors.values()}
        failed = {
            "id": suggestion_id,
            "form": form,
            "typed": data,
            "problems": exc.errors,
            "error": None if str(exc.detail) in said else str(exc.detail),
        }
        return Template(
            template_name="suggestions/manage.html", context=await _manage_context(failed), status_code=exc.status
        )
    except errors.Conflict as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(path="/manage/suggestions", status_code=303)
    if decided.status == rules.Status.acquired.value:
        flash.add(request.scope, _("“%(title)s” is marked as acquired.", title=decided.title))
    else:
        flash.add(request.scope, _("“%(title)s” is declined; the member will see your reason.", title=decided.title))
    return Redirect(path="/manage/suggestions", status_code=303)


@post("/{suggestion_id:int}/acquire", name="suggestions:acquire", include_in_schema=False)
async def acquire(request: Request, suggestion_id: FromPath[int]) -> Response:
    return await _decide(request, suggestion_id, "acquire")


@post("/{suggestion_id:int}/decline", name="suggestions:decline", include_in_schema=False)
async def decline(request: Request, suggestion_id: FromPath[int]) -> Response:
    return await _decide(request, suggestion_id, "decline")


# --- JSON API ----------------------------------------------------------------------------------


@get(
    "/suggestions",
    name="api:suggestions",
    guards=[signed_in],
    tags=["suggestions"],
    summary="Open suggestions, most supported first",
)
async def api_list(request: Request) -> SuggestionList:
    user = current_user(request)
    found = await suggestions.list_open(viewer_id=user.id)
    return SuggestionList(suggestions=[suggestion_out(s, user.id) for s in found])


@get(
    "/suggestions/mine",
    name="api:suggestions_mine",
    guards=[signed_in],
    tags=["suggestions"],
    summary="Your own suggestions and their outcomes",
)
async def api_mine(request: Request) -> SuggestionList:
    user = current_user(request)
    found = await suggestions.my_suggestions(member_id=user.id)
    return SuggestionList(suggestions=[suggestion_out(s, user.id) for s in found])


@post(
    "/suggestions",
    name="api:suggestions_create",
    guards=[signed_in],
    tags=["suggestions"],
    summary="Suggest a thing the library should get (you support it from the start)",
)
async def api_create(request: Request, data: JSONBody[SuggestionIn]) -> Response[SuggestionOut]:
    user = current_user(request)
    created = await suggestions.suggest(title=data.title, details=data.details, member_id=user.id)
    return Response(content=suggestion_out(created, user.id), status_code=201)


@put(
    "/suggestions/{suggestion_id:int}/support",
    name="api:suggestions_support",
    guards=[signed_in],
    tags=["suggestions"],
    summary="Support a suggestion (supporting twice counts once)",
)
async def api_support(request: Request, suggestion_id: FromPath[int]) -> SuggestionOut:
    user = current_user(request)
    await suggestions.support(suggestion_id=suggestion_id, member_id=user.id)
    return suggestion_out(await suggestions.get_suggestion(suggestion_id=suggestion_id, viewer_id=user.id), user.id)


@delete(
    "/suggestions/{suggestion_id:int}/support",
    name="api:suggestions_withdraw",
    guards=[signed_in],
    tags=["suggestions"],
    summary="Withdraw your support",
    status_code=200,
)
async def api_withdraw(request: Request, suggestion_id: FromPath[int]) -> SuggestionOut:
    user = current_user(request)
    await suggestions.withdraw_support(suggestion_id=suggestion_id, member_id=user.id)
    return suggestion_out(await suggestions.get_suggestion(suggestion_id=suggestion_id, viewer_id=user.id), user.id)


@post(
    "/suggestions/{suggestion_id:int}/decision",
    name="api:suggestions_decide",
    guards=[requires(Role.coordinator)],
    tags=["suggestions"],
    status_code=200,
    summary="Mark a suggestion acquired (with an item code) or declined (with a reason)",
)
async def api_decide(request: Request, suggestion_id: FromPath[int], data: JSONBody[DecisionIn]) -> SuggestionOut:
    user = current_user(request)
    decided = await suggestions.decide(
        suggestion_id=suggestion_id,
        outcome=data.outcome,
        reason=data.reason,
        item_code=data.item_code,
        actor_id=user.id,
    )
    return suggestion_out(decided, user.id)


API_ROUTES = [api_list, api_mine, api_create, api_support, api_withdraw, api_decide]
ROUTES = [
    Router(path="/suggestions", guards=[signed_in], route_handlers=[index_page, create, support, withdraw]),
    Router(
        path="/manage/suggestions", guards=[requires(Role.coordinator)], route_handlers=[manage_page, acquire, decline]
    ),
]
