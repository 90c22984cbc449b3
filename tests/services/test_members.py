"""People and access, through the services, on every database engine."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from lending import clock, errors
from lending.audit.tables import AuditEvent
from lending.members import services as members
from lending.members.tables import Account, ApiToken, LoginAttempt, Session
from tests.conftest import PASSWORD


async def test_create_account_for_each_role(people):
    for role in ("member", "volunteer", "link_worker", "coordinator"):
        account = people[role]
        assert account.role == role
        assert len(account.card_code) == 8
        assert (
            account.home
            == {"member": "/account", "volunteer": "/desk", "link_worker": "/referrals", "coordinator": "/manage"}[role]
        )
    assert people["link_worker"].organisation_name == "Riverside Surgery"
    row = (
        await Account.select(Account.admin, Account.superuser, Account.password)
        .where(Account.id == people["coordinator"].id)
        .first()
        .run()
    )
    assert row["admin"] and row["superuser"]
    assert row["password"].startswith("pbkdf2_sha256$") and PASSWORD not in row["password"]
    volunteer = await Account.select(Account.admin).where(Account.id == people["volunteer"].id).first().run()
    assert volunteer["admin"] is False or volunteer["admin"] == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"role": "wizard"}, "role"),
        ({"email": "not-an-email"}, "email"),
        ({"name": "   "}, "name"),
        ({"password": "short"}, "password"),
        ({"password": None}, "password"),
        ({"email": None}, "email"),
        ({"language": "fr"}, "language"),
        ({"role": "link_worker"}, "organisation"),
        ({"organisation": "Nowhere"}, "organisation"),
    ],
)
async def test_bad_account_details_are_refused_and_nothing_is_written(database, changes, field):
    details = {"name": "Pat", "email": "pat@example.org", "role": "volunteer", "password": PASSWORD}
    details.update(changes)
    with pytest.raises(errors.InvalidInput) as raised:
        await members.create_account(**details)
    assert field in raised.value.errors
    assert await Account.count().run() == 0
    assert await AuditEvent.count().run() == 0


async def test_duplicate_email_is_a_conflict_whatever_its_case(people):
    with pytest.raises(errors.Conflict) as raised:
        await members.create_account(name="Other", email=" Volunteer@Example.ORG ", role="volunteer", password=PASSWORD)
    assert raised.value.code == "email_taken"
    assert await Account.count().where(Account.email == "volunteer@example.org").run() == 1


async def test_concurrent_creation_with_one_email_makes_one_account(database):
    async def attempt(n: int):
        return await members.create_account(
            name=f"Racer {n}", email="race@example.org", role="volunteer", password=PASSWORD
        )

    results = await asyncio.gather(*(attempt(n) for n in range(8)), return_exceptions=True)
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, errors.Conflict)]
    assert len(created) == 1, results
    assert len(refused) == 7, results
    assert await Account.count().run() == 1
    assert await AuditEvent.count().where(AuditEvent.action == "account.create").run() == 1


async def test_register_member_needs_a_way_to_reach_them(database):
    with pytest.raises(errors.InvalidInput) as raised:
        await members.register_member(name="No Contact")
    assert raised.value.code == "contact_required"
    member = await members.register_member(name="Phone Only", phone="+44 29 2000 0000", language="cy")
    assert member.role == "member" and member.email is None and member.language == "cy"
    # Two members without email can coexist (the unique email allows many NULLs).
    await members.register_member(name="Phone Two", phone="029 2000 0001")
    assert await Account.count().run() == 2


async def test_find_members_by_name_email_or_card(people):
    member = people["member"]
    by_name = await members.find_members(query="test MEM")
    assert [m.id for m in by_name] == [member.id]
    by_email = await members.find_members(query="member@example")
    assert [m.id for m in by_email] == [member.id]
    spaced = f"{member.card_code[:4]}-{member.card_code[4:].lower()}"
    assert [m.id for m in await members.find_members(query=spaced)] == [member.id]
    # Staff are not members: the desk search does not list them.
    assert await members.find_members(query="volunteer") == []
    assert await members.find_members(query="%") == []


async def test_sign_in_opens_a_session_and_sign_out_ends_it(people):
    account, token = await members.sign_in(email="VOLUNTEER@example.org", password=PASSWORD, address="1.2.3.4")
    assert account.id == people["volunteer"].id
    assert (await members.account_for_session(token=token)).id == account.id
    await members.sign_out(token=token)
    assert await members.account_for_session(token=token) is None
    assert await members.account_for_session(token="forged") is None


async def test_wrong_password_and_unknown_email_are_the_same_error(people):
    for email in ("volunteer@example.org", "nobody@example.org"):
        with pytest.raises(errors.NotSignedIn) as raised:
            await members.sign_in(email=email, password="wrong password!", address="1.2.3.4")
        assert raised.value.code == "wrong_credentials"


async def test_member_without_password_cannot_sign_in(database):
    await members.register_member(name="Counter Member", email="counter@example.org")
    with pytest.raises(errors.NotSignedIn):
        await members.sign_in(email="counter@example.org", password="pbkdf2_sha256$unusable$!$!", address="x")


async def test_expired_session_is_refused(people):
    _, token = await members.sign_in(email="member@example.org", password=PASSWORD, address="1.2.3.4")
    from datetime import datetime

    await (
        Session.update({Session.expiry_date: datetime.now() - timedelta(minutes=1)}).where(Session.token == token).run()
    )
    assert await members.account_for_session(token=token) is None


async def test_sign_in_is_rate_limited_per_email(people):
    for _ in range(members.SIGN_IN_LIMIT.per_email):
        with pytest.raises(errors.NotSignedIn):
            await members.sign_in(email="member@example.org", password="wrong password!", address="5.6.7.8")
    with pytest.raises(errors.TooManyAttempts) as raised:
        await members.sign_in(email="member@example.org", password=PASSWORD, address="5.6.7.8")
    assert 0 < raised.value.retry_after <= 15 * 60
    # Another account is not locked out by someone else's failures.
    account, _ = await members.sign_in(email="volunteer@example.org", password=PASSWORD, address="9.9.9.9")
    assert account.role == "volunteer"
    # Once the window has passed, the member can sign in again.
    later = clock.now() + members.SIGN_IN_LIMIT.window + timedelta(seconds=1)
    account, _ = await members.sign_in(email="member@example.org", password=PASSWORD, address="5.6.7.8", now=later)
    assert account.role == "member"
    assert await LoginAttempt.count().where(LoginAttempt.key == "email:member@example.org").run() == 0


async def test_people_sharing_a_network_address_can_all_sign_in(people):
    """A venue's Wi-Fi or a shared computer: many good sign-ins from one address never reach
    the address's limit; its failures still count."""
    for _ in range(members.SIGN_IN_LIMIT.per_address + 10):
        await members.sign_in(email="member@example.org", password=PASSWORD, address="10.0.0.1")
    assert await LoginAttempt.count().where(LoginAttempt.key == "addr:10.0.0.1").run() == 0
    for _ in range(3):
        with pytest.raises(errors.NotSignedIn):
            await members.sign_in(email="volunteer@example.org", password="wrong password!", address="10.0.0.1")
    await members.sign_in(email="member@example.org", password=PASSWORD, address="10.0.0.1")
    assert await LoginAttempt.count().where(LoginAttempt.key == "addr:10.0.0.1").run() == 3


async def test_concurrent_wrong_passwords_cannot_exceed_the_limit(people):
    async def attempt():
        try:
            await members.sign_in(email="member@example.org", password="wrong password!", address="5.6.7.8")
        except errors.DomainError as exc:
            return exc.code

    codes = await asyncio.gather(*(attempt() for _ in range(20)))
    assert codes.count("wrong_credentials") == members.SIGN_IN_LIMIT.per_email, codes
    assert codes.count("too_many_attempts") == 20 - members.SIGN_IN_LIMIT.per_email


async def test_api_tokens_are_hashed_and_can_be_revoked(people):
    volunteer = people["volunteer"]
    token = await members.create_api_token(account_id=volunteer.id, label="scanner")
    assert token.startswith("lnd_")
    stored = await ApiToken.select(ApiToken.token_hash).first().run()
    assert token not in stored["token_hash"] and len(stored["token_hash"]) == 64
    assert (await members.account_for_api_token(token=token)).id == volunteer.id
    assert await members.account_for_api_token(token=token + "x") is None
    assert await members.account_for_api_token(token="lnd_forged") is None
    assert await members.revoke_api_tokens(account_id=volunteer.id) == 1
    assert await members.account_for_api_token(token=token) is None


async def test_deactivated_account_loses_sessions_and_tokens(people):
    member = people["member"]
    _, session = await members.sign_in(email="member@example.org", password=PASSWORD, address="1.1.1.1")
    token = await members.create_api_token(account_id=member.id)
    await Account.update({Account.active: False}).where(Account.id == member.id).run()
    assert await members.account_for_session(token=session) is None
    assert await members.account_for_api_token(token=token) is None
    with pytest.raises(errors.NotSignedIn):
        await members.sign_in(email="member@example.org", password=PASSWORD, address="1.1.1.1")


async def test_admin_rules_match_the_app(people):
    derived = await members.admin_account_fields(role="coordinator", email="A@B.org", organisation_id=None, name="A")
    assert derived == {"role": "coordinator", "admin": True, "superuser": True, "email": "a@b.org"}
    with pytest.raises(errors.InvalidInput):
        await members.admin_account_fields(role="link_worker", email=None, organisation_id=None, name="A")
    with pytest.raises(errors.InvalidInput):
        await members.admin_account_fields(
            role="volunteer", email=None, organisation_id=people["organisation"].id, name="A"
        )


async def test_a_session_used_near_its_expiry_is_extended_but_not_past_its_limit(people):
    from datetime import datetime

    _, token = await members.sign_in(email="member@example.org", password=PASSWORD, address="1.2.3.4")
    soon = datetime.now() + timedelta(minutes=10)
    await Session.update({Session.expiry_date: soon}).where(Session.token == token).run()
    assert await members.account_for_session(token=token) is not None
    extended = (await Session.select(Session.expiry_date).where(Session.token == token).first().run())["expiry_date"]
    assert extended - soon == members.SESSION_EXTEND
    await (
        Session.update({Session.max_expiry_date: datetime.now() - timedelta(seconds=1)})
        .where(Session.token == token)
        .run()
    )
    assert await members.account_for_session(token=token) is None
