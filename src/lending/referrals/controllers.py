"""Link workers' pages and the coordinator's list of referring organisations."""

from __future__ import annotations

from litestar import Request, Response, Router, get, post
from litestar.response import Redirect, Template

from lending import errors
from lending.i18n import gettext as _
from lending.members import services as members
from lending.members.rules import Role
from lending.referrals import services as referrals
from lending.web import flash
from lending.web.auth import current_user, requires
from lending.web.forms import form_data


@get("/", name="referrals:index", include_in_schema=False)
async def index(request: Request) -> Template:
    return Template(template_name="referrals/index.html", context={"account": current_user(request)})


async def _organisations_context(values: dict, problems: dict, error: str | None) -> dict:
    organisations = await referrals.list_organisations()
    link_workers = await members.list_accounts(role=Role.link_worker.value)
    counts = {o.id: sum(1 for a in link_workers if a.organisation_id == o.id) for o in organisations}
    return {"organisations": organisations, "counts": counts, "kind_options": list(referrals.KIND_LABELS.items()),
            "values": values,
            "errors": problems, "error": error}


@get("/", name="referrals:organisations", include_in_schema=False)
async def organisations_page(request: Request) -> Template:
    return Template(template_name="referrals/organisations.html", context=await _organisations_context({}, {}, None))


@post("/", name="referrals:organisations_create", include_in_schema=False)
async def organisations_create(request: Request) -> Response:
    data = await form_data(request)
    try:
        organisation = await referrals.create_organisation(name=data.get("name", ""), kind=data.get("kind", "other"),
                                                           actor_id=current_user(request).id)
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(template_name="referrals/organisations.html",
                        context=await _organisations_context(data, exc.errors, str(exc.detail)),
                        status_code=exc.status)
    flash.add(request.scope, _("%(name)s is added.", name=organisation.name))
    return Redirect(path="/manage/organisations", status_code=303)


ROUTES = [
    Router(path="/referrals", guards=[requires(Role.link_worker)], route_handlers=[index]),
    Router(path="/manage/organisations", guards=[requires(Role.coordinator)],
           route_handlers=[organisations_page, organisations_create]),
]
