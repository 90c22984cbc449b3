import pytest

from lending import errors
from lending.members import organisations
from lending.members.tables import Organisation


async def test_organisation_names_are_unique_ignoring_case_and_spaces(database):
    await organisations.create_organisation(name="Riverside  Surgery", kind="gp_practice")
    with pytest.raises(errors.Conflict) as raised:
        await organisations.create_organisation(name="riverside surgery")
    assert raised.value.code == "organisation_exists"
    assert [o.name for o in await organisations.list_organisations()] == ["Riverside Surgery"]


async def test_bad_organisation_is_refused(database):
    with pytest.raises(errors.InvalidInput) as raised:
        await organisations.create_organisation(name="", kind="spaceship")
    assert set(raised.value.errors) == {"name", "kind"}
    assert await Organisation.count().run() == 0
