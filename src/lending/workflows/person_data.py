"""A person's data on request (UK GDPR articles 15 and 17): everything the library holds about
them as one JSON document, and erasure that removes who they are while keeping the anonymous
counts (loans, payments, referrals) that reports and the accounts need."""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime

from lending import clock, codes, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.loans.tables import CalendarFeed, Fee, Hold, Loan, Reservation
from lending.mail.tables import Email
from lending.members.tables import Account, ApiToken, Session
from lending.memberships.tables import AgreementAcceptance, GiftAidDeclaration, Membership, Payment
from lending.referrals.tables import Referral


def _plain(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _rows(rows: list[dict], drop: tuple[str, ...] = ()) -> list[dict]:
    return [{key: _plain(value) for key, value in row.items() if key not in drop} for row in rows]


async def export_person(*, account_id: int, actor_id: int | None) -> str:
    """Everything held about one person, as JSON; the export itself is logged."""

    account = (
        await Account.select(
            Account.id,
            Account.name,
            Account.email,
            Account.phone,
            Account.role,
            Account.language,
            Account.card_code,
            Account.created_at,
            Account.active,
        )
        .where(Account.id == account_id)
        .first()
        .run()
    )
    if account is None:
        raise errors.NotFound(_l("There is no such person."), code="person_not_found")
    document = {
        "exported_at": clock.now().isoformat(),
        "account": {key: _plain(value) for key, value in account.items()},
        "memberships": _rows(await Membership.select().where(Membership.member == account_id).run()),
        "payments": _rows(await Payment.select().where(Payment.member == account_id).run()),
        "gift_aid_declarations": _rows(
            await GiftAidDeclaration.select().where(GiftAidDeclaration.member == account_id).run()
        ),
        "agreements_accepted": _rows(
            await AgreementAcceptance.select().where(AgreementAcceptance.account == account_id).run()
        ),
        "loans": _rows(
            await Loan.select(
                Loan.id,
                Loan.item.code.as_alias("item_code"),
                Loan.item.item_group.name.as_alias("item"),
                Loan.lent_at,
                Loan.due_at,
                Loan.returned_at,
                Loan.return_condition,
                Loan.return_notes,
            )
            .where(Loan.member == account_id)
            .run()
        ),
        "holds": _rows(await Hold.select().where(Hold.member == account_id).run()),
        "bookings": _rows(await Reservation.select().where(Reservation.member == account_id).run()),
        "fees": _rows(await Fee.select().where(Fee.member == account_id).run()),
        "referrals": _rows(
            await Referral.select(
                Referral.code,
                Referral.status,
                Referral.name,
                Referral.contact_route,
                Referral.contact,
                Referral.language,
                Referral.access_needs,
                Referral.need_category,
                Referral.months,
                Referral.issued_at,
                Referral.redeemed_at,
                Referral.ends_at,
                Referral.consent_share,
                Referral.organisation.name.as_alias("organisation"),
            )
            .where(Referral.member == account_id)
            .run()
        ),
        "emails": _rows(
            await Email.select(Email.subject, Email.created_at, Email.sent_at).where(Email.account == account_id).run()
        ),
    }
    await audit.record(action="person.export", actor_id=actor_id, subject=f"account:{account_id}")
    return json.dumps(document, indent=2, ensure_ascii=False, default=str)


async def erase_person(*, account_id: int, actor_id: int | None) -> None:
    """Remove who someone is: their name, contact details, sign-in, card, notes and referral
    details. What stays is anonymous (loans of items, payment amounts the accounts need,
    referral counts), except Gift Aid declarations, which HMRC requires a charity to keep for
    six years (a legal obligation that erasure does not override). Refused while they have
    something on loan."""

    async with db.transaction(write=True):
        account = await Account.select(Account.id, Account.role).where(Account.id == account_id).first().run()
        if account is None:
            raise errors.NotFound(_l("There is no such person."), code="person_not_found")
        if account["role"] == "coordinator":
            raise errors.RuleViolation(
                _l(
                    "A coordinator's account is erased by another coordinator after they "
                    "hand over; change their role first."
                ),
                code="erase_coordinator",
            )
        if await Loan.exists().where(Loan.member == account_id, Loan.returned_at.is_null()).run():
            raise errors.Conflict(
                _l("They still have something on loan; check it in (or mark it missing) first."), code="open_loans"
            )
        now = clock.now()
        placeholder = f"erased-{secrets.token_hex(8)}"
        await (
            Account.update(
                {
                    Account.name: str(_l("Erased person")),
                    Account.email: None,
                    Account.phone: None,
                    Account.username: placeholder,
                    Account.password: secrets.token_hex(32),
                    Account.active: False,
                    Account.card_code: codes.new_code(12),
                    Account.organisation: None,
                }
            )
            .where(Account.id == account_id)
            .run()
        )
        await Session.delete().where(Session.user_id == account_id).run()
        await ApiToken.delete().where(ApiToken.account == account_id).run()
        await CalendarFeed.delete().where(CalendarFeed.member == account_id).run()
        await (
            Hold.update({Hold.status: "cancelled", Hold.closed_at: now})
            .where(Hold.member == account_id, Hold.status.is_in(["waiting", "ready"]))
            .run()
        )
        await (
            Reservation.update({Reservation.status: "cancelled", Reservation.closed_at: now})
            .where(Reservation.member == account_id, Reservation.status == "booked")
            .run()
        )
        await Loan.update({Loan.return_notes: ""}).where(Loan.member == account_id).run()
        await (
            Referral.update(
                {
                    Referral.name: "",
                    Referral.contact: "",
                    Referral.access_needs: "",
                    Referral.contact_route: "",
                    Referral.erased_at: now,
                }
            )
            .where(Referral.member == account_id)
            .run()
        )
        await Email.delete().where(Email.account == account_id).run()
        await audit.record(action="person.erase", actor_id=actor_id, subject=f"account:{account_id}", at=now)
