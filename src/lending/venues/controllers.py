"""The coordinator's home: who is here and what happened lately."""

from __future__ import annotations

from litestar import Request, Router, get
from litestar.response import Template

from lending.audit import services as audit
from lending.members import services as members
from lending.members.rules import Role
from lending.web.auth import requires


@get("/", name="venues:manage", include_in_schema=False)
async def manage(request: Request) -> Template:
    counts = await members.count_by_role()
    return Template(template_name="venues/manage.html",
                    context={"counts": [(role, counts.get(role.value, 0)) for role in Role],
                             "events": await audit.recent(limit=20)})


ROUTES = [Router(path="/manage", guards=[requires(Role.coordinator)], route_handlers=[manage])]
