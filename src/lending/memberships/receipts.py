"""Receipts: each payment's receipt number, and the receipt emailed to the member in their language."""

from __future__ import annotations

from lending import codes, errors, i18n
from lending.i18n import lazy_gettext as _l
from lending.mail import services as mail
from lending.members.tables import Account
from lending.memberships import rules
from lending.memberships.records import get_payment
from lending.memberships.rules import Method
from lending.memberships.tables import Payment
from lending.venues import services as venues


async def new_receipt_code() -> str:
    for _ in range(5):
        code = codes.new_code(10)
        if not await Payment.exists().where(Payment.receipt_code == code).run():
            return code
    raise errors.Conflict(_l("Could not record the payment; try again."), code="try_again")


async def queue_receipt(payment_id: int) -> None:
    """Inside the transaction that recorded the payment: the member's receipt, in their
    language, once."""
    payment = await get_payment(payment_id=payment_id)
    account = (
        await Account.select(Account.email, Account.language, Account.name)
        .where(Account.id == payment.member_id)
        .first()
        .run()
    )
    if not account or not account["email"]:
        return
    with i18n.in_language(account["language"]):
        amount = i18n.format_money(payment.amount_pence, currency=payment.currency)
        lines = [
            i18n.gettext("Thank you, %(name)s. This is your receipt.", name=account["name"]),
            "",
            i18n.gettext("Receipt number: %(code)s", code=codes.display(payment.receipt_code)),
            i18n.gettext("Membership: %(tier)s", tier=payment.tier_name),
            i18n.gettext("Amount paid: %(amount)s", amount=amount),
        ]
        if payment.forward_pence:
            lines.append(
                i18n.gettext(
                    "Of which to fund free places: %(amount)s",
                    amount=i18n.format_money(payment.forward_pence, currency=payment.currency),
                )
            )
        lines.append(
            i18n.gettext(
                "Paid on %(date)s (%(method)s)",
                date=i18n.format_date(payment.paid_at),
                method=str(rules.METHOD_LABELS[Method(payment.method)]),
            )
        )
        if payment.covers_until:
            lines.append(
                i18n.gettext("Your membership runs until %(date)s.", date=i18n.format_date(payment.covers_until))
            )
        if payment.gift_aid:
            lines.append(i18n.gettext("You made a Gift Aid declaration with this payment."))
        lines += ["", i18n.gettext("Sign in to your account to see your membership and payments.")]
        subject = i18n.gettext("Your receipt %(code)s", code=codes.display(payment.receipt_code))
    await mail.queue(
        library=(await venues.settings()).name,
        key=f"receipt:{payment_id}",
        to_address=account["email"],
        subject=subject,
        body="\n".join(lines),
        account_id=payment.member_id,
        kind="payment_receipt",
        language=account["language"],
        values={
            "name": account["name"],
            "receipt": codes.display(payment.receipt_code),
            "tier": payment.tier_name,
            "amount": amount,
            "details": "\n".join(lines[5:]),
        },
    )
