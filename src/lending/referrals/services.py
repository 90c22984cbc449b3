"""The referrals link workers issue: codes, redemption into a free membership, states, who may
read what (logged), and erasure. The organisations they come from are ``members.organisations``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from lending import clock, codes, db, errors, i18n
from lending.audit import services as audit
from lending.catalog.tables import Category
from lending.i18n import lazy_gettext as _l
from lending.loans.tables import Loan
from lending.members import services as members
from lending.members.rules import Role, may_act_as
from lending.members.tables import Account, LoginAttempt, Organisation
from lending.memberships import free_months
from lending.memberships.tables import Tier
from lending.referrals import rules
from lending.referrals.tables import Referral, ReferralSettings
from lending.venues import services as venues

# --- referrals ----------------------------------------------------------------------------------
# Who may read what: a link worker sees only their own organisation's referrals; a coordinator
# sees all; volunteers and members never see a referral's details (at the desk a referred member
# is a member with a free membership, nothing more). Every read of a person's details is logged.


@dataclass(frozen=True)
class Settings:
    tier_id: int | None
    months_options: tuple[int, ...]
    redeem_days: int
    erase_after_days: int


async def settings() -> Settings:
    row = await ReferralSettings.select().order_by(ReferralSettings.id).first().run()
    if row is None:
        return Settings(
            tier_id=None,
            months_options=rules.DEFAULT_MONTHS,
            redeem_days=rules.DEFAULT_REDEEM_DAYS,
            erase_after_days=rules.DEFAULT_ERASE_AFTER_DAYS,
        )
    try:
        months = rules.parse_months_options(row["months_options"])
    except ValueError:
        months = rules.DEFAULT_MONTHS
    return Settings(
        tier_id=row["tier"],
        months_options=months,
        redeem_days=row["redeem_days"],
        erase_after_days=row["erase_after_days"],
    )


async def save_settings(
    *,
    tier_id: int | None,
    months_options: str,
    redeem_days: object,
    erase_after_days: object,
    actor_id: int | None = None,
) -> Settings:
    """The referral tier (a free, counter-only membership), the lengths link workers may give,
    how long a code stays valid by default and when ended referrals' details are erased."""

    problems: dict[str, str] = {}
    try:
        months = rules.parse_months_options(months_options)
    except ValueError:
        problems["months_options"] = _l("List the lengths in months from 1 to 24, like 3, 6, 12.")
        months = ()
    numbers = {}
    for name, value, low, high in (
        ("redeem_days", redeem_days, 1, rules.MAX_REDEEM_DAYS),
        ("erase_after_days", erase_after_days, 30, 3650),
    ):
        try:
            numbers[name] = int(str(value).strip())
            if not low <= numbers[name] <= high:
                raise ValueError
        except ValueError:
            problems[name] = _l("Enter a whole number from %(low)d to %(high)d.", low=low, high=high)
    if tier_id is None or not await Tier.exists().where(Tier.id == tier_id).run():
        problems["tier"] = _l("Choose the membership a referral gives.")
    if problems:
        raise errors.InvalidInput(
            _l("Some referral settings need correcting."), code="invalid_settings", errors=problems
        )
    async with db.transaction(write=True):
        current = await ReferralSettings.select(ReferralSettings.id).first().run()
        values = {
            ReferralSettings.tier: tier_id,
            ReferralSettings.months_options: ",".join(map(str, months)),
            ReferralSettings.redeem_days: numbers["redeem_days"],
            ReferralSettings.erase_after_days: numbers["erase_after_days"],
            ReferralSettings.updated_at: clock.now(),
        }
        if current is None:
            await ReferralSettings.insert(
                ReferralSettings(**{column._meta.name: value for column, value in values.items()})
            ).run()
        else:
            await ReferralSettings.update(values).where(ReferralSettings.id == current["id"]).run()
        await audit.record(action="referral.settings", actor_id=actor_id, subject="referral_settings")
    return await settings()


@dataclass(frozen=True)
class ReferralView:
    id: int
    code: str
    organisation_id: int
    organisation_name: str
    status: str
    months: int
    redeem_by: date
    issued_at: datetime
    redeemed_at: datetime | None
    ends_at: datetime | None
    consent_share: bool
    need_category: str
    # Personal details: empty once erased.
    name: str
    contact_route: str
    contact: str
    language: str
    access_needs: str
    member_id: int | None


_COLUMNS = (
    Referral.id,
    Referral.code,
    Referral.organisation,
    Referral.organisation.name.as_alias("organisation_name"),
    Referral.status,
    Referral.months,
    Referral.redeem_by,
    Referral.issued_at,
    Referral.redeemed_at,
    Referral.ends_at,
    Referral.consent_share,
    Referral.need_category,
    Referral.name,
    Referral.contact_route,
    Referral.contact,
    Referral.language,
    Referral.access_needs,
    Referral.member,
)


async def _today(now: datetime) -> date:
    """The venue's date: a code valid "until 31 January" works all of that day there."""

    return venues.today(await venues.calendar(), now)


def _referral_view(row: dict, now: datetime, today: date) -> ReferralView:
    return ReferralView(
        id=row["id"],
        code=row["code"],
        organisation_id=row["organisation"],
        organisation_name=row["organisation_name"],
        status=rules.effective_status(
            status=row["status"], redeem_by=row["redeem_by"], today=today, ends_at=row["ends_at"], now=now
        ),
        months=row["months"],
        redeem_by=row["redeem_by"],
        issued_at=row["issued_at"],
        redeemed_at=row["redeemed_at"],
        ends_at=row["ends_at"],
        consent_share=bool(row["consent_share"]),
        need_category=row["need_category"],
        name=row["name"],
        contact_route=row["contact_route"],
        contact=row["contact"],
        language=row["language"],
        access_needs=row["access_needs"],
        member_id=row["member"],
    )


def _scope(viewer) -> int | None:
    """The organisation whose referrals this person may read; None for a coordinator (all).
    Anyone else may read none."""

    if may_act_as(viewer.role, Role.coordinator):
        return None
    if viewer.role == Role.link_worker.value and viewer.organisation_id is not None:
        return viewer.organisation_id
    raise errors.NotAllowed(_l("Only link workers and coordinators can see referrals."), code="not_allowed")


async def list_referrals(*, viewer, limit: int = 500) -> list[ReferralView]:
    """The viewer's organisation's referrals (all of them for a coordinator), newest first.
    Listing shows names, so it is logged like a view."""
    organisation_id = _scope(viewer)
    query = Referral.select(*_COLUMNS).order_by(Referral.id, ascending=False).limit(limit)
    if organisation_id is not None:
        query = query.where(Referral.organisation == organisation_id)
    rows = await query.run()
    if rows:
        await audit.record(
            action="referral.list",
            actor_id=viewer.id,
            subject=f"organisation:{organisation_id or 'all'}",
            detail=f"{len(rows)} referral(s)",
        )
    now = clock.now()
    today = await _today(now)
    return [_referral_view(row, now, today) for row in rows]


async def get_referral(*, viewer, code: str) -> ReferralView:
    """One referral, for its organisation's link workers and coordinators; others get 404, so a
    code's existence is not revealed. The read is written to the audit log."""
    organisation_id = _scope(viewer)
    query = Referral.select(*_COLUMNS).where(Referral.code == codes.normalise(code))
    if organisation_id is not None:
        query = query.where(Referral.organisation == organisation_id)
    row = await query.first().run()
    if row is None:
        raise errors.NotFound(_l("There is no such referral."), code="referral_not_found")
    await audit.record(action="referral.view", actor_id=viewer.id, subject=f"referral:{row['id']}")
    now = clock.now()
    return _referral_view(row, now, await _today(now))


async def _new_code() -> str:
    for _ in range(5):
        code = codes.new_code(rules.CODE_LENGTH)
        if not await Referral.exists().where(Referral.code == code).run():
            return code
    raise errors.Conflict(_l("Could not make a code; try again."), code="try_again")


async def issue_referral(*, issuer, details: rules.Details) -> ReferralView:
    """A link worker refers someone: within the venue's bounds, with the person's consent, for
    their own organisation (which must still exist)."""

    if issuer.role != Role.link_worker.value or issuer.organisation_id is None:
        raise errors.NotAllowed(_l("Only link workers issue referrals."), code="not_allowed")
    config = await settings()
    now = clock.now()
    today = await _today(now)
    problems = rules.details_problems(
        details, months_allowed=config.months_options, today=today, max_redeem_days=config.redeem_days
    )
    if config.tier_id is None:
        raise errors.Conflict(
            _l("The venue has not chosen the membership referrals give yet; ask its coordinator."),
            code="referrals_not_set_up",
        )
    if problems:
        raise errors.InvalidInput(_l("Some details need correcting."), code="invalid_referral", errors=problems)
    async with db.transaction(write=True):
        if not await Organisation.exists().where(Organisation.id == issuer.organisation_id).run():
            raise errors.Conflict(
                _l("Your organisation is no longer registered with the library."), code="organisation_removed"
            )
        code = await _new_code()
        rows = (
            await Referral.insert(
                Referral(
                    code=code,
                    organisation=issuer.organisation_id,
                    issued_by=issuer.id,
                    name=" ".join(details.name.split()),
                    contact_route=details.contact_route,
                    contact="" if details.contact_route == "through_me" else details.contact.strip(),
                    language=details.language,
                    access_needs=details.access_needs.strip(),
                    need_category=details.need_category,
                    months=details.months,
                    redeem_by=details.redeem_by,
                    consent_share=details.consent_share,
                    status=rules.Status.issued,
                    issued_at=now,
                )
            )
            .returning(Referral.id)
            .run()
        )
        await audit.record(action="referral.issue", actor_id=issuer.id, subject=f"referral:{rows[0]['id']}", at=now)
        row = await Referral.select(*_COLUMNS).where(Referral.id == rows[0]["id"]).first().run()
    return _referral_view(row, now, today)


async def _lock(code: str) -> dict | None:
    query = Referral.select().where(Referral.code == codes.normalise(code))
    if db.is_postgres():
        query = query.lock_rows("UPDATE")
    return await query.first().run()


async def check_redeem_attempts(*, address: str, now: datetime | None = None) -> None:
    """Codes cannot be found by trying: wrong codes from one address pause redemption there."""

    now = now or clock.now()
    since = now - timedelta(minutes=rules.REDEEM_WINDOW_MINUTES)
    tries = (
        await LoginAttempt.count()
        .where(LoginAttempt.key == f"redeem:{address}", LoginAttempt.attempted_at > since)
        .run()
    )
    if tries >= rules.REDEEM_ATTEMPTS:
        raise errors.TooManyAttempts(
            _l("Too many codes tried. Wait 15 minutes, or ask at the counter."),
            retry_after=rules.REDEEM_WINDOW_MINUTES * 60,
            code="too_many_attempts",
        )


async def _wrong_code(address: str) -> errors.NotFound:
    await LoginAttempt.insert(LoginAttempt(key=f"redeem:{address}", attempted_at=clock.now())).run()
    return errors.NotFound(
        _l("There is no referral with that code. Check it, or ask the person who referred you."),
        code="referral_not_found",
        field="code",
    )


async def redeem(*, code: str, member_id: int, address: str, actor_id: int | None = None):
    """The referred person (or a volunteer with them) uses the code once: the member gets an
    active free membership of the referral tier for the referral's months."""

    await check_redeem_attempts(address=address)
    config = await settings()
    account = await Account.select(Account.role).where(Account.id == member_id).first().run()
    if account is None:
        raise errors.NotFound(_l("There is no member with that card."), code="member_not_found", field="member_id")
    if account["role"] != "member":
        raise errors.RuleViolation(_l("Referral codes are for members' accounts."), code="not_a_member")
    if not codes.normalise(code) or not await Referral.exists().where(Referral.code == codes.normalise(code)).run():
        raise await _wrong_code(address)  # counted outside any transaction, so the count survives the error
    async with db.transaction(write=True):
        row = await _lock(code)
        now = clock.now()
        status = rules.effective_status(
            status=row["status"], redeem_by=row["redeem_by"], today=await _today(now), ends_at=row["ends_at"], now=now
        )
        if problem := rules.redeem_problem(status):
            error_code, message = problem
            raise (errors.Conflict if error_code == "referral_used" else errors.RuleViolation)(message, code=error_code)
        if config.tier_id is None:
            raise errors.Conflict(_l("The venue has not set up referral memberships yet."), code="referrals_not_set_up")
        membership = await free_months.grant_free_months(
            member_id=member_id, tier_id=config.tier_id, months=row["months"], actor_id=actor_id or member_id, now=now
        )
        await (
            Referral.update(
                {
                    Referral.status: rules.Status.redeemed,
                    Referral.redeemed_at: now,
                    Referral.member: member_id,
                    Referral.ends_at: membership.ends_at,
                }
            )
            .where(Referral.id == row["id"], Referral.status == rules.Status.issued)
            .run()
        )
        await audit.record(
            action="referral.redeem",
            actor_id=actor_id or member_id,
            subject=f"referral:{row['id']}",
            detail=f"member:{member_id}",
            at=now,
        )
    return membership


async def withdraw(*, viewer, code: str) -> None:
    """A link worker withdraws an unused referral of their organisation."""
    organisation_id = _scope(viewer)
    async with db.transaction(write=True):
        row = await _lock(code)
        if row is None or (organisation_id is not None and row["organisation"] != organisation_id):
            raise errors.NotFound(_l("There is no such referral."), code="referral_not_found")
        now = clock.now()
        status = rules.effective_status(
            status=row["status"], redeem_by=row["redeem_by"], today=await _today(now), ends_at=row["ends_at"], now=now
        )
        if status != rules.Status.issued:
            raise errors.Conflict(_l("Only a referral not yet used can be withdrawn."), code="referral_not_issued")
        await (
            Referral.update({Referral.status: rules.Status.withdrawn, Referral.closed_at: clock.now()})
            .where(Referral.id == row["id"])
            .run()
        )
        await audit.record(action="referral.withdraw", actor_id=viewer.id, subject=f"referral:{row['id']}")


async def extend(*, viewer, code: str, months: int | None = None, redeem_by: date | None = None) -> ReferralView:
    """More time: a later use-by date for an unused code, or more free months for one in use
    (within the venue's lengths)."""

    organisation_id = _scope(viewer)
    config = await settings()
    async with db.transaction(write=True):
        row = await _lock(code)
        if row is None or (organisation_id is not None and row["organisation"] != organisation_id):
            raise errors.NotFound(_l("There is no such referral."), code="referral_not_found")
        now = clock.now()
        today = await _today(now)
        status = rules.effective_status(
            status=row["status"], redeem_by=row["redeem_by"], today=today, ends_at=row["ends_at"], now=now
        )
        if status in (rules.Status.issued, rules.Status.expired) and redeem_by is not None:
            if redeem_by < today or (redeem_by - today).days > config.redeem_days:
                raise errors.InvalidInput(
                    _l("Choose a use-by date within the venue's limits."), code="invalid_date", field="redeem_by"
                )
            await (
                Referral.update(
                    {Referral.redeem_by: redeem_by, Referral.status: rules.Status.issued, Referral.closed_at: None}
                )
                .where(Referral.id == row["id"])
                .run()
            )
        elif status == rules.Status.redeemed and months is not None:
            if problem := rules.months_problem(months, config.months_options):
                raise errors.InvalidInput(problem, code="invalid_months", field="months")
            membership = await free_months.grant_free_months(
                member_id=row["member"], tier_id=config.tier_id, months=months, actor_id=viewer.id, now=now
            )
            await (
                Referral.update({Referral.months: row["months"] + months, Referral.ends_at: membership.ends_at})
                .where(Referral.id == row["id"])
                .run()
            )
        else:
            raise errors.Conflict(_l("This referral cannot be extended now."), code="referral_not_extendable")
        await audit.record(action="referral.extend", actor_id=viewer.id, subject=f"referral:{row['id']}", at=now)
        result = await Referral.select(*_COLUMNS).where(Referral.id == row["id"]).first().run()
    return _referral_view(result, now, today)


async def sweep(*, now: datetime | None = None) -> tuple[int, int, int]:
    """Write down what time has done: unused codes past their date expire, free periods that
    have ended complete, and the personal details of referrals ended longer ago than the
    venue keeps them are erased (the anonymous counts stay). Returns the three counts."""
    now = now or clock.now()
    config = await settings()
    today = await _today(now)
    async with db.transaction(write=True):
        expired = (
            await Referral.update({Referral.status: rules.Status.expired, Referral.closed_at: now})
            .where(Referral.status == rules.Status.issued, Referral.redeem_by < today)
            .returning(Referral.id)
            .run()
        )
        completed = (
            await Referral.update({Referral.status: rules.Status.completed, Referral.closed_at: now})
            .where(Referral.status == rules.Status.redeemed, Referral.ends_at <= now)
            .returning(Referral.id)
            .run()
        )
        erased = (
            await Referral.update(
                {
                    Referral.name: "",
                    Referral.contact: "",
                    Referral.access_needs: "",
                    Referral.contact_route: "",
                    Referral.erased_at: now,
                }
            )
            .where(
                Referral.closed_at.is_not_null(),
                Referral.erased_at.is_null(),
                Referral.closed_at < now - timedelta(days=config.erase_after_days),
            )
            .returning(Referral.id)
            .run()
        )
        if erased:
            await audit.record(
                action="referral.erase", actor_id=None, subject="referrals", detail=f"{len(erased)} referral(s)", at=now
            )
    return len(expired), len(completed), len(erased)


async def join_with_code(*, code: str, name: str, email: str, password: str, language: str, address: str):
    """Someone referred signs up with their code: the account and the free membership are made
    together, or neither is. Returns (account, membership, session token)."""

    await check_redeem_attempts(address=address)
    canonical = codes.normalise(code)
    row = (
        await Referral.select(Referral.status, Referral.redeem_by, Referral.ends_at)
        .where(Referral.code == canonical)
        .first()
        .run()
        if canonical
        else None
    )
    if row is None:
        raise await _wrong_code(address)
    now = clock.now()
    status = rules.effective_status(
        status=row["status"], redeem_by=row["redeem_by"], today=await _today(now), ends_at=row["ends_at"], now=now
    )
    if problem := rules.redeem_problem(status):
        error_code, message = problem
        raise (errors.Conflict if error_code == "referral_used" else errors.RuleViolation)(
            message, code=error_code, field="code"
        )
    async with db.transaction(write=True):
        account = await members.create_account(
            name=name, email=email, role="member", password=password, language=language
        )
        membership = await redeem(code=canonical, member_id=account.id, address=address)
    token = await members.start_session(account_id=account.id)
    return account, membership, token


@dataclass(frozen=True)
class Outcome:
    """What the referrer may learn: with the person's consent to share, their first visit, how
    many loans and what kinds of things; without it, only whether the code was used."""

    code: str
    redeemed: bool
    shared: bool
    redeemed_at: datetime | None = None
    first_loan_at: datetime | None = None
    loans: int = 0
    kinds: tuple[tuple[str, int], ...] = ()


async def outcome(*, viewer, code: str) -> Outcome:
    return await outcome_of(referral=await get_referral(viewer=viewer, code=code))  # scoped and logged


async def outcome_of(*, referral: ReferralView) -> Outcome:
    """How a referral the caller has already read (and so logged) went."""

    redeemed = referral.redeemed_at is not None
    if not redeemed or not referral.consent_share or referral.member_id is None:
        return Outcome(code=referral.code, redeemed=redeemed, shared=False)
    rows = (
        await Loan.select(Loan.lent_at, Loan.item.item_group.category.as_alias("category"))
        .where(Loan.member == referral.member_id, Loan.lent_at >= referral.redeemed_at)
        .order_by(Loan.lent_at)
        .run()
    )
    categories = {row["id"]: row for row in await Category.select(Category.id, Category.name, Category.parent).run()}

    def top(category_id: int | None) -> str:
        seen = set()
        while category_id in categories and categories[category_id]["parent"] and category_id not in seen:
            seen.add(category_id)
            category_id = categories[category_id]["parent"]
        return categories[category_id]["name"] if category_id in categories else str(_l("Other things"))

    kinds: dict[str, int] = {}
    for row in rows:
        kinds[top(row["category"])] = kinds.get(top(row["category"]), 0) + 1
    return Outcome(
        code=referral.code,
        redeemed=True,
        shared=True,
        redeemed_at=referral.redeemed_at,
        first_loan_at=rows[0]["lent_at"] if rows else None,
        loans=len(rows),
        kinds=tuple(sorted(kinds.items(), key=lambda kind: (-kind[1], kind[0]))),
    )


def outcome_message(result: Outcome) -> str:
    """A short message back to the referrer, in the reader's language."""

    lines = [i18n.gettext("Referral %(code)s", code=codes.display(result.code))]
    if not result.redeemed:
        lines.append(i18n.gettext("The code has not been used."))
    elif not result.shared:
        lines.append(i18n.gettext("The code has been used. The person did not agree to share more."))
    else:
        lines.append(i18n.gettext("The code was used on %(date)s.", date=i18n.format_date(result.redeemed_at)))
        if result.first_loan_at:
            lines.append(i18n.gettext("First visit to borrow: %(date)s.", date=i18n.format_date(result.first_loan_at)))
            lines.append(i18n.ngettext("%(num)d loan so far.", "%(num)d loans so far.", result.loans))
            lines.append(
                i18n.gettext(
                    "Kinds of things: %(kinds)s.", kinds=", ".join(f"{name} ({count})" for name, count in result.kinds)
                )
            )
        else:
            lines.append(i18n.gettext("They have not borrowed anything yet."))
    return "\n".join(lines) + "\n"
