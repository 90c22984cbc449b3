import pytest

from lending import errors
from lending.referrals import services as referrals
from lending.referrals.tables import Organisation


async def test_organisation_names_are_unique_ignoring_case_and_spaces(database):
    await referrals.create_organisation(name="Riverside  Surgery", kind="gp_practice")
    with pytest.raises(errors.Conflict) as raised:
        await referrals.create_organisation(name="riverside surgery")
    assert raised.value.code == "organisation_exists"
    assert [o.name for o in await referrals.list_organisations()] == ["Riverside Surgery"]


async def test_bad_organisation_is_refused(database):
    with pytest.raises(errors.InvalidInput) as raised:
        await referrals.create_organisation(name="", kind="spaceship")
    assert set(raised.value.errors) == {"name", "kind"}
    assert await Organisation.count().run() == 0
