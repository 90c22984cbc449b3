"""The first run: on an installation with no coordinator yet, the first person to arrive
creates the venue (by hand, or from another venue's setup file) and its first coordinator
account, in one transaction, so a failure leaves the installation as it was."""

from __future__ import annotations

from lending import db, errors, i18n
from lending.adapters.labels import TEMPLATES
from lending.i18n import lazy_gettext as _l
from lending.members import services as members
from lending.members.rules import Role
from lending.members.tables import Account
from lending.venues import rules
from lending.workflows import setup_file, venue_details

_started = False  # once a coordinator exists, it always will: no need to ask again


async def needed() -> bool:
    """Whether nobody can manage this installation yet."""
    global _started
    if _started:
        return False
    _started = await Account.exists().where(Account.role == Role.coordinator.value).run()
    return not _started


def forget() -> None:
    global _started
    _started = False


async def start(
    *,
    name: str,
    email: str,
    password: str,
    venue_name: str = "",
    timezone: str = rules.DEFAULT_TIMEZONE,
    languages: tuple[str, ...] = ("en", "cy"),
    setup_text: bytes | None = None,
    language: str = "en",
) -> tuple[members.AccountView, str]:
    """Create the first coordinator and the venue; returns the account and a session token.
    With ``setup_text`` (a setup file) the venue comes from it (its own name and settings); else from
    ``venue_name``, ``timezone`` and ``languages``."""
    checked = setup_file.check_text(setup_text) if setup_text else None
    details = rules.VenueDetails(name=venue_name.strip(), timezone=timezone.strip(), languages=languages)
    if checked is None and (problems := rules.details_problems(details, label_templates=tuple(TEMPLATES))):
        raise errors.InvalidInput(
            _l("Some of the venue's details need correcting."), code="invalid_venue", errors=problems
        )
    async with db.transaction(write=True):
        if db.is_postgres():  # two first visitors at the same moment: one of them waits, then finds a coordinator
            await Account.raw("SELECT pg_advisory_xact_lock(7270001)").run()
        if await Account.exists().where(Account.role == Role.coordinator.value).run():
            raise errors.Conflict(_l("This library has been set up already. Sign in instead."), code="already_set_up")
        account = await members.create_account(
            name=name,
            email=email,
            role=Role.coordinator.value,
            password=password,
            language=language if language in i18n.LANGUAGES else "en",
        )
        if setup_text:
            await setup_file.import_text(setup_text, actor_id=account.id)
        else:
            await venue_details.save_venue_details(details=details, actor_id=account.id)
    token = await members.start_session(account_id=account.id)
    return account, token
