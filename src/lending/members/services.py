"""People and their access: accounts, sign-in sessions, API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from lending import clock, codes, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.i18n import lazy_ngettext
from lending.members import organisations, passwords, rules
from lending.members.rules import Role
from lending.members.tables import Account, ApiToken, LoginAttempt, Session

SESSION_IDLE = timedelta(hours=8)
SESSION_MAX = timedelta(days=7)
SESSION_EXTEND = timedelta(hours=1)
TOKEN_PREFIX = "lnd_"
SIGN_IN_LIMIT = rules.SignInLimit()


@dataclass(frozen=True)
class AccountView:
    id: int
    name: str
    email: str | None
    role: str
    phone: str | None
    language: str
    card_code: str
    organisation_id: int | None
    organisation_name: str | None
    active: bool

    @property
    def home(self) -> str:
        return rules.ROLE_HOME[Role(self.role)]


_COLUMNS = (
    Account.id,
    Account.name,
    Account.email,
    Account.role,
    Account.phone,
    Account.language,
    Account.card_code,
    Account.organisation,
    Account.organisation.name.as_alias("organisation_name"),
    Account.active,
)


# Every request that carries a session cookie or a token resolves its account, so that lookup
# is one hand-written query (Piccolo spends longer building a joined select than running it).
_ACCOUNT_FIELDS = (
    "a.id, a.name, a.email, a.role, a.phone, a.language, a.card_code, a.organisation, "
    "o.name AS organisation_name, a.active"
)


def _account_join(on: str) -> str:
    return f"JOIN account a ON a.id = {on} LEFT JOIN organisation o ON o.id = a.organisation"


def _view(row: dict) -> AccountView:
    return AccountView(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        role=row["role"],
        phone=row["phone"],
        language=row["language"],
        card_code=row["card_code"],
        organisation_id=row["organisation"],
        organisation_name=row["organisation_name"],
        active=bool(row["active"]),
    )


async def _select_one(*where) -> AccountView | None:
    row = await Account.select(*_COLUMNS).where(*where).first().run()
    return _view(row) if row else None


async def get_account(*, account_id: int) -> AccountView:
    found = await _select_one(Account.id == account_id)
    if not found:
        raise errors.NotFound(_l("There is no such account."), code="account_not_found")
    return found


async def list_accounts(*, role: str | None = None, limit: int = 500) -> list[AccountView]:
    query = Account.select(*_COLUMNS).order_by(Account.name).limit(limit)
    if role:
        query = query.where(Account.role == role)
    return [_view(row) for row in await query.run()]


# --- creating accounts ---------------------------------------------------------------------


def _account_problems(
    *, name: str, email: str, role: str, phone: str, language: str, password: str | None, has_organisation: bool
) -> dict[str, str]:
    parsed_role = rules.parse_role(role or "")
    problems = rules.account_problems(role=parsed_role, name=name, email=email, has_organisation=has_organisation)
    if problem := rules.phone_problem(phone):
        problems["phone"] = problem
    if language not in rules.LANGUAGES:
        problems["language"] = _l("Choose English or Welsh.")
    staff = parsed_role is not None and parsed_role != Role.member
    if staff and not email:
        problems["email"] = _l("Staff sign in with their email address: enter one.")
    if password is not None and password != "":
        if problem := rules.password_problem(password):
            problems["password"] = problem
    elif staff:
        problems["password"] = _l("Enter a password of at least 10 characters.")
    return problems


def check_account_details(
    *,
    name: str,
    email: str | None,
    role: str,
    phone: str | None = None,
    language: str = "en",
    password: str | None = None,
) -> None:
    """The account rules of ``create_account`` that need no database, so a form that makes an
    account along with something else (joining) can report every problem at once."""
    problems = _account_problems(
        name=" ".join((name or "").split()),
        email=rules.normalise_email(email),
        role=role,
        phone=(phone or "").strip(),
        language=language,
        password=password,
        has_organisation=False,
    )
    if problems:
        raise errors.InvalidInput(_l("Check the account's details."), errors=problems)


async def create_account(
    *,
    name: str,
    email: str | None,
    role: str,
    password: str | None = None,
    phone: str | None = None,
    language: str = "en",
    organisation: str | int | None = None,
    actor_id: int | None = None,
) -> AccountView:
    """Every account has a role and a card code. Link workers belong to one referring
    organisation and only they do; staff sign in with an email and a password; an email
    belongs to one account only. All problems are reported together and nothing is written
    unless the whole account is valid."""
    name = " ".join((name or "").split())
    email = rules.normalise_email(email)
    phone = (phone or "").strip()
    parsed_role = rules.parse_role(role or "")
    has_organisation = organisation not in (None, "")
    problems = _account_problems(
        name=name,
        email=email,
        role=role,
        phone=phone,
        language=language,
        password=password,
        has_organisation=has_organisation,
    )
    organisation_id = None
    if parsed_role == Role.link_worker and has_organisation:
        organisation_id = await _organisation_id(organisation)
        if organisation_id is None:
            problems["organisation"] = _l("There is no such organisation.")
    if problems:
        raise errors.InvalidInput(_l("Check the account's details."), errors=problems)

    hashed = await passwords.hash_password(password) if password else passwords.unusable_password()
    coordinator = parsed_role == Role.coordinator
    for _attempt in range(3):
        card_code = codes.new_code()
        try:
            async with db.transaction(write=True):
                if email and await Account.exists().where(Account.email == email).run():
                    raise _email_taken(email)
                row = (
                    await Account.insert(
                        Account(
                            username=card_code,
                            password=hashed,
                            email=email or None,
                            name=name,
                            role=parsed_role.value,
                            phone=phone or None,
                            language=language,
                            organisation=organisation_id,
                            card_code=card_code,
                            active=True,
                            admin=coordinator,
                            superuser=coordinator,
                            created_at=clock.now(),
                        )
                    )
                    .returning(Account.id)
                    .run()
                )
                account_id = row[0]["id"]
                await audit.record(
                    action="account.create",
                    actor_id=actor_id,
                    subject=f"account:{account_id}",
                    detail=f"role={parsed_role.value}",
                )
        except Exception as exc:
            if not db.is_unique_violation(exc):
                raise
            if db.in_transaction():
                # Part of a larger change (joining): the failed insert spoiled the transaction,
                # so say what most likely clashed instead of retrying inside it.
                raise (
                    _email_taken(email)
                    if email
                    else errors.Conflict(_l("Could not create the account; try again."), code="try_again")
                ) from exc
            if email and await Account.exists().where(Account.email == email).run():
                raise _email_taken(email) from exc
            continue  # a card code collided: draw another
        return await get_account(account_id=account_id)
    raise errors.Conflict(_l("Could not create the account; try again."), code="try_again")


def _email_taken(email: str) -> errors.Conflict:
    return errors.Conflict(
        _l("An account with the email %(email)s already exists.", email=email), code="email_taken", field="email"
    )


async def _organisation_id(organisation: str | int) -> int | None:
    if isinstance(organisation, int) or str(organisation).isdigit():
        found = await organisations.get_organisation(organisation_id=int(organisation))
    else:
        found = await organisations.find_organisation(name=str(organisation))
    return found.id if found else None


async def register_member(
    *, name: str, email: str | None = None, phone: str | None = None, language: str = "en", actor_id: int | None = None
) -> AccountView:
    """A volunteer registers a member at the counter: a name and a way to reach them; the
    member gets a card code straight away and no password until they set one."""
    if not (email or "").strip() and not (phone or "").strip():
        raise errors.InvalidInput(
            _l("Enter an email address or a phone number so the library can reach the member."),
            code="contact_required",
            errors={"email": _l("Enter an email address or a phone number.")},
        )
    return await create_account(
        name=name, email=email, phone=phone, language=language, role=Role.member.value, actor_id=actor_id
    )


async def find_members(*, query: str, limit: int = 50) -> list[AccountView]:
    """Members whose name, email or phone number contains the query, or whose card code it is."""
    text = " ".join((query or "").replace("%", "").replace("_", " ").split())
    if not text:
        return []
    condition = db.contains(Account.name, text) | db.contains(Account.email, text) | db.contains(Account.phone, text)
    code = codes.normalise(text)
    if code:
        condition = condition | (Account.card_code == code)
    rows = await (
        Account.select(*_COLUMNS)
        .where(Account.role == Role.member.value)
        .where(condition)
        .order_by(Account.name)
        .limit(limit)
        .run()
    )
    return [_view(row) for row in rows]


async def member_by_card(*, card_code: str) -> AccountView:
    """The member whose card this is, as typed or scanned."""
    code = codes.normalise(card_code)
    found = await _select_one(Account.card_code == code, Account.role == Role.member.value) if code else None
    if found is None:
        raise errors.NotFound(_l("There is no member with that card."), code="member_not_found")
    return found


async def set_language(*, account_id: int, language: str) -> None:
    if language not in rules.LANGUAGES:
        raise errors.InvalidInput(_l("Choose English or Welsh."), code="invalid_language", field="language")
    await Account.update({Account.language: language}).where(Account.id == account_id).run()


# --- signing in ----------------------------------------------------------------------------


async def sign_in(*, email: str, password: str, address: str, now: datetime | None = None) -> tuple[AccountView, str]:
    """Check an email and password and open a session. Failures are counted per email and per
    network address in the database, so the limit holds across every app process; each
    attempt takes its place in the count before the password is checked, and a successful
    one leaves it again."""
    now = now or clock.now()
    email = rules.normalise_email(email)
    if not email or not password:
        raise errors.InvalidInput(_l("Enter your email address and password."), code="credentials_required")
    email_key, address_key = f"email:{email}", f"addr:{address}"
    since = now - SIGN_IN_LIMIT.window
    async with db.transaction(write=True):
        if db.is_postgres():
            await LoginAttempt.raw("SELECT pg_advisory_xact_lock(hashtext({}))", email_key).run()
        recent = await (
            LoginAttempt.select(LoginAttempt.key, LoginAttempt.attempted_at)
            .where(LoginAttempt.key.is_in([email_key, address_key]), LoginAttempt.attempted_at > since)
            .run()
        )
        by_email = sorted(r["attempted_at"] for r in recent if r["key"] == email_key)
        by_address = sorted(r["attempted_at"] for r in recent if r["key"] == address_key)
        if rules.sign_in_blocked(
            failures_for_email=len(by_email), failures_for_address=len(by_address), limit=SIGN_IN_LIMIT
        ):
            oldest = by_email[0] if len(by_email) >= SIGN_IN_LIMIT.per_email else by_address[0]
            wait = rules.retry_after_seconds(oldest_failure=oldest, now=now, limit=SIGN_IN_LIMIT)
            raise errors.TooManyAttempts(
                lazy_ngettext(
                    "Too many failed sign-in attempts. Wait %(num)d minute, then try again.",
                    "Too many failed sign-in attempts. Wait %(num)d minutes, then try again.",
                    max(1, (wait + 59) // 60),
                ),
                retry_after=wait,
            )
        counted = (
            await LoginAttempt.insert(
                LoginAttempt(key=email_key, attempted_at=now), LoginAttempt(key=address_key, attempted_at=now)
            )
            .returning(LoginAttempt.id)
            .run()
        )

    row = await Account.select(Account.id, Account.password, Account.active).where(Account.email == email).first().run()
    ok = await passwords.verify_password(password, row["password"] if row else None)
    if not (ok and row and row["active"]):
        raise errors.NotSignedIn(_l("The email address or password is not right."), code="wrong_credentials")

    async with db.transaction(write=True):
        # Success: the email's failures are forgiven; the address keeps its earlier failures
        # but not this attempt, so people sharing a venue's network can all sign in.
        await (
            LoginAttempt.delete()
            .where((LoginAttempt.key == email_key) | LoginAttempt.id.is_in([r["id"] for r in counted]))
            .run()
        )
        token = await start_session(account_id=row["id"], now=now)
    return await get_account(account_id=row["id"]), token


async def start_session(*, account_id: int, now: datetime | None = None) -> str:
    """Open a browser session for an account that has just proved who it is (by its password,
    or by creating itself at /join); returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    async with db.transaction(write=True):
        local_now = clock.local_naive_now()
        await Session.insert(
            Session(
                token=token,
                user_id=account_id,
                expiry_date=local_now + SESSION_IDLE,
                max_expiry_date=local_now + SESSION_MAX,
            )
        ).run()
        await Account.update({Account.last_login: local_now}).where(Account.id == account_id).run()
        await audit.record(
            action="account.sign_in", actor_id=account_id, subject=f"account:{account_id}", at=now or clock.now()
        )
    return token


async def sign_out(*, token: str) -> None:
    await Session.remove_session(token)


async def account_for_session(*, token: str) -> AccountView | None:
    """The account behind a session cookie, if the session is still valid. Sessions slide:
    one used within an hour of its expiry is extended, never past its hard limit."""
    if not token or len(token) > 100:
        return None
    rows = await Session.raw(
        f"SELECT s.id AS session_id, s.expiry_date, s.max_expiry_date, {_ACCOUNT_FIELDS} "  # nosec B608: constant columns; the token is bound
        f"FROM session s {_account_join('s.user_id')} WHERE s.token = {{}} AND a.active",
        token,
    ).run()
    if not rows:
        return None
    row = rows[0]
    local_now = clock.local_naive_now()
    if row["expiry_date"] <= local_now or row["max_expiry_date"] <= local_now:
        return None
    if row["expiry_date"] - local_now < SESSION_EXTEND:
        await (
            Session.update({Session.expiry_date: row["expiry_date"] + SESSION_EXTEND})
            .where(Session.id == row["session_id"])
            .run()
        )
    return _view(row)


# --- API tokens ----------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_api_token(*, account_id: int, label: str = "", actor_id: int | None = None) -> str:
    """A new bearer token for an account; the token is shown once and only its hash is kept."""
    account = await get_account(account_id=account_id)
    if not account.active:
        raise errors.RuleViolation(_l("This account is switched off."), code="account_inactive")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with db.transaction(write=True):
        row = (
            await ApiToken.insert(
                ApiToken(account=account_id, token_hash=_token_hash(token), label=label[:100], created_at=clock.now())
            )
            .returning(ApiToken.id)
            .run()
        )
        await audit.record(
            action="api_token.create",
            actor_id=actor_id or account_id,
            subject=f"api_token:{row[0]['id']}",
            detail=f"account={account_id}",
        )
    return token


async def account_by_email(*, email: str) -> AccountView:
    found = await _select_one(Account.email == rules.normalise_email(email))
    if not found:
        raise errors.NotFound(
            _l("There is no account with the email %(email)s.", email=rules.normalise_email(email)),
            code="account_not_found",
        )
    return found


async def revoke_api_tokens(*, account_id: int, actor_id: int | None = None) -> int:
    async with db.transaction(write=True):
        rows = await (
            ApiToken.update({ApiToken.revoked: True})
            .where(ApiToken.account == account_id, ApiToken.revoked == False)  # noqa: E712
            .returning(ApiToken.id)
            .run()
        )
        await audit.record(
            action="api_token.revoke", actor_id=actor_id, subject=f"account:{account_id}", detail=f"count={len(rows)}"
        )
    return len(rows)


async def account_for_api_token(*, token: str, now: datetime | None = None) -> AccountView | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    now = now or clock.now()
    rows = await ApiToken.raw(
        f"SELECT t.id AS token_id, t.last_used_at, {_ACCOUNT_FIELDS} "  # nosec B608: constant columns; the hash is bound
        f"FROM api_token t {_account_join('t.account')} "
        "WHERE t.token_hash = {} AND NOT t.revoked AND a.active",
        _token_hash(token),
    ).run()
    if not rows:
        return None
    row = rows[0]
    # Note the last use at most hourly, so API reads do not each cost a write.
    if row["last_used_at"] is None or now - row["last_used_at"] > timedelta(hours=1):
        await ApiToken.update({ApiToken.last_used_at: now}).where(ApiToken.id == row["token_id"]).run()
    return _view(row)


async def count_by_role() -> dict[str, int]:
    from piccolo.query.functions.aggregate import Count

    rows = await Account.select(Account.role, Count(Account.id).as_alias("n")).group_by(Account.role).run()
    return {row["role"]: row["n"] for row in rows}


async def admin_account_fields(
    *, role: str, email: str | None, organisation_id: int | None, name: str
) -> dict[str, object]:
    """The same account rules for rows edited in piccolo_admin: returns the fields derived
    from the role (the admin flags mirror the coordinator role) or raises InvalidInput."""
    parsed = rules.parse_role(role or "")
    problems = rules.account_problems(
        role=parsed, name=name or "", email=rules.normalise_email(email), has_organisation=bool(organisation_id)
    )
    if problems:
        raise errors.InvalidInput(_l("Check the account's details."), errors=problems)
    coordinator = parsed == Role.coordinator
    return {
        "role": parsed.value,
        "admin": coordinator,
        "superuser": coordinator,
        "email": rules.normalise_email(email) or None,
    }


async def recent_activity(*, limit: int = 100) -> list[dict]:
    """The audit log's latest events, each with the name of the person who acted
    (``actor_name``, None for the system)."""
    events = await audit.recent(limit=limit)
    actor_ids = list({event["actor"] for event in events if event["actor"]})
    names = (
        {
            row["id"]: row["name"]
            for row in await Account.select(Account.id, Account.name).where(Account.id.is_in(actor_ids)).run()
        }
        if actor_ids
        else {}
    )
    return [{**event, "actor_name": names.get(event["actor"])} for event in events]
