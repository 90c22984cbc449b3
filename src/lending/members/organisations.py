"""Referring organisations: the GP practices, networks, charities and council teams that link
workers belong to. They sit with accounts, because a link worker's account names its
organisation; referrals, above, read them."""

from __future__ import annotations

from dataclasses import dataclass

from piccolo.query.functions.string import Lower

from lending import clock, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.members.tables import Organisation

KIND_LABELS = {
    "gp_practice": _l("GP practice"),
    "primary_care_network": _l("Primary care network"),
    "charity": _l("Charity"),
    "council": _l("Council team"),
    "other": _l("Other"),
}


@dataclass(frozen=True)
class OrganisationView:
    id: int
    name: str
    kind: str


def _view(row: dict) -> OrganisationView:
    return OrganisationView(id=row["id"], name=row["name"], kind=row["kind"])


async def list_organisations() -> list[OrganisationView]:
    rows = await Organisation.select().order_by(Organisation.name).run()
    return [_view(row) for row in rows]


async def get_organisation(*, organisation_id: int) -> OrganisationView | None:
    row = await Organisation.select().where(Organisation.id == organisation_id).first().run()
    return _view(row) if row else None


async def find_organisation(*, name: str) -> OrganisationView | None:
    row = await Organisation.select().where(Lower(Organisation.name) == " ".join(name.split()).lower()).first().run()
    return _view(row) if row else None


async def create_organisation(*, name: str, kind: str = "other", actor_id: int | None = None) -> OrganisationView:
    """Organisation names are unique (ignoring case) so link workers are never split across two."""
    name = " ".join(name.split())
    problems = {}
    if not name or len(name) > 200:
        problems["name"] = _l("Enter the organisation's name (at most 200 characters).")
    if kind not in KIND_LABELS:
        problems["kind"] = _l("Choose what kind of organisation this is.")
    if problems:
        raise errors.InvalidInput(_l("Check the organisation's details."), errors=problems)
    exists = errors.Conflict(
        _l("There is already an organisation called %(name)s.", name=name), code="organisation_exists", field="name"
    )
    with db.unique_violation_as(lambda: exists):
        async with db.transaction(write=True):
            if await find_organisation(name=name):
                raise exists
            row = (
                await Organisation.insert(Organisation(name=name, kind=kind, created_at=clock.now()))
                .returning(*Organisation.all_columns())
                .run()
            )[0]
            await audit.record(action="organisation.create", actor_id=actor_id, subject=f"organisation:{row['id']}")
    return _view(row)
