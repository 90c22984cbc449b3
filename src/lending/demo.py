"""A demo venue to try the app with: one account per role, a referring organisation.
Later issues add items, loans and referrals. Running it twice changes nothing."""

from __future__ import annotations

from collections.abc import Callable

from lending import errors
from lending.members import services as members
from lending.members.tables import Account
from lending.referrals import services as referrals

ORGANISATION = "Riverside Surgery"

# email, name, role, password: printed for people trying the demo, never for real use.
ACCOUNTS = [
    ("coordinator@demo.example", "Carys Coordinator", "coordinator", "demo-coordinator"),
    ("volunteer@demo.example", "Vic Volunteer", "volunteer", "demo-volunteer"),
    ("linkworker@demo.example", "Lowri Link Worker", "link_worker", "demo-link-worker"),
    ("member@demo.example", "Alex Member", "member", "demo-member"),
    ("member2@demo.example", "Sam Rivers", "member", "demo-member2"),
]


async def load(*, progress: Callable[[str], None] = print, force: bool = False) -> None:
    emails = [email for email, *_ in ACCOUNTS]
    others = await Account.count().where(Account.email.not_in(emails) | Account.email.is_null()).run()
    if others and not force:
        raise errors.RuleViolation(
            "This database holds real accounts; demo accounts have published passwords. "
            "Use 'lending demo --force' (or LENDING_DEMO=1) only if you mean it.",
            code="demo_refused",
        )
    if not await referrals.find_organisation(name=ORGANISATION):
        await referrals.create_organisation(name=ORGANISATION, kind="gp_practice")
        progress(f"Added the referring organisation {ORGANISATION}.")
    for email, name, role, password in ACCOUNTS:
        if await Account.exists().where(Account.email == email).run():
            continue
        await members.create_account(name=name, email=email, role=role, password=password,
                                     organisation=ORGANISATION if role == "link_worker" else None)
        progress(f"Added {role.replace('_', ' ')} {name}.")
    progress("\nDemo sign-ins (email / password):")
    for email, name, role, password in ACCOUNTS:
        progress(f"  {role.replace('_', ' '):<12} {email:<28} {password}")
