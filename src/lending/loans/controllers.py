"""The volunteers' desk. Check-out and check-in arrive with the desk issue; today the desk
finds and registers members, adds items, prints labels and shows reported problems."""

from __future__ import annotations

from litestar import Request, Router, get
from litestar.params import FromQuery
from litestar.response import Template

from lending.catalog import services as catalog
from lending.members import services as members
from lending.members.rules import Role
from lending.web.auth import requires


@get("/", name="loans:desk", include_in_schema=False)
async def desk(request: Request, q: FromQuery[str] = "") -> Template:
    results = await members.find_members(query=q) if q.strip() else []
    return Template(template_name="loans/desk.html",
                    context={"q": q, "results": results, "problems": await catalog.open_problems()})


ROUTES = [Router(path="/desk", guards=[requires(Role.volunteer)], route_handlers=[desk])]
