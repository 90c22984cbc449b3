"""`lending reminders send`: expiry reminders and receipts go out once, in the member's
language, to a real SMTP server on loopback, even when two copies of the command run at the
same moment on one database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest
from aiosmtpd.controller import Controller

from lending import clock
from lending.mail.tables import Email
from lending.members import services as members
from lending.memberships import counter_payments, tiers
from lending.memberships.tables import Membership
from lending.memberships.tiers import TierInput
from tests.conftest import SECRET
from tests.servers import free_port, lending_command, server_env


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{controller.port}?from=hello@library.example"
    finally:
        controller.stop()


def subject(message) -> str:
    return str(make_header(decode_header(message["Subject"])))


async def run_reminders(env: dict, *extra: str, copies: int = 1) -> list[subprocess.CompletedProcess]:
    async def one():
        process = await asyncio.create_subprocess_exec(
            lending_command(), "reminders", "send", *extra, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await process.communicate()
        return subprocess.CompletedProcess([], process.returncode, out.decode(), err.decode())

    return await asyncio.gather(*(one() for _ in range(copies)))


async def ending_soon(language: str = "cy"):
    tier = await tiers.save_tier(
        values=TierInput(name="Pay what you can", min_pence=100, max_pence=5000, allow_free=True)
    )
    member = await members.create_account(name="Gwen", email="gwen@example.org", role="member", language=language)
    year_ago = clock.now() - timedelta(days=360)
    await counter_payments.record_counter_payment(
        member_id=member.id, tier=tier.id, amount=500, method="cash", actor_id=None, now=year_ago
    )
    return member


async def test_two_copies_at_once_send_each_message_once_in_the_members_language(database, smtp, tmp_path):
    inbox, url = smtp
    await ending_soon("cy")
    env = server_env(DATABASE_URL=database, SECRET_KEY=SECRET, SMTP_URL=url)
    results = await run_reminders(env, copies=2)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    subjects = sorted(subject(m) for m in inbox.messages)
    assert len(subjects) == 2, subjects  # the receipt and the expiry reminder, once each
    assert [m["Content-Language"] for m in inbox.messages] == ["cy", "cy"], [subject(m) for m in inbox.messages]
    assert all(m["To"] == "gwen@example.org" for m in inbox.messages)
    assert await Email.count().where(Email.sent_at.is_null()).run() == 0
    again = await run_reminders(env)
    assert again[0].returncode == 0 and len(inbox.messages) == 2


async def test_a_dry_run_sends_and_writes_nothing(database, smtp):
    inbox, url = smtp
    await ending_soon("en")
    env = server_env(DATABASE_URL=database, SECRET_KEY=SECRET, SMTP_URL=url)
    [result] = await run_reminders(env, "--dry-run")
    assert result.returncode == 0 and "Would queue 1 membership expiry reminder" in result.stdout
    assert inbox.messages == [] and await Email.count().run() == 1  # only the receipt, queued when paid


async def test_without_a_mail_server_messages_wait_and_lapsed_memberships_expire(database):
    member = await ending_soon("en")
    await (
        Membership.update({Membership.ends_at: clock.now() - timedelta(days=1)})
        .where(Membership.member == member.id)
        .run()
    )
    env = server_env(DATABASE_URL=database, SECRET_KEY=SECRET)
    [result] = await run_reminders(env)
    assert result.returncode == 0, result.stderr
    assert "Marked 1 lapsed membership expired" in result.stdout and "SMTP_URL is not set" in result.stderr
    assert (await Membership.select(Membership.status).first().run())["status"] == "expired"


async def test_a_bad_smtp_url_is_one_clear_line(database):
    env = server_env(DATABASE_URL=database, SECRET_KEY=SECRET, SMTP_URL="http://nope")
    [result] = await run_reminders(env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "SMTP_URL" in result.stderr


async def test_loan_reminders_and_hold_notices_go_once_even_from_two_runs_at_once(database, smtp):
    from lending.catalog import services as catalog
    from lending.catalog.services import ItemDetails
    from lending.loans import checkin, checkout, holds
    from lending.loans.tables import Loan

    inbox, url = smtp
    tier = await tiers.save_tier(values=TierInput(name="Free", min_pence=0, max_pence=5000, allow_free=True))
    gwen = await members.create_account(name="Gwen", email="gwen@example.org", role="member", language="cy")
    tom = await members.create_account(name="Tom", email="tom@example.org", role="member", language="en")
    for person in (gwen, tom):
        await counter_payments.record_counter_payment(
            member_id=person.id, tier=tier.id, amount=0, method="cash", actor_id=None
        )
    tent = await catalog.add_item(details=ItemDetails(name="Tent"))
    drill = await catalog.add_item(details=ItemDetails(name="Drill"))
    [soon] = await checkout.check_out(member_id=gwen.id, item_codes=[tent.code], actor_id=None)
    [late] = await checkout.check_out(member_id=tom.id, item_codes=[drill.code], actor_id=None)
    await Loan.update({Loan.due_at: clock.now() + timedelta(hours=30)}).where(Loan.id == soon.id).run()
    await Loan.update({Loan.due_at: clock.now() - timedelta(days=2)}).where(Loan.id == late.id).run()
    await holds.place_hold(member_id=gwen.id, item_code=drill.code)
    await checkin.check_in(loan_id=late.id, actor_id=None)  # the drill is now ready for Gwen
    env = server_env(DATABASE_URL=database, SECRET_KEY=SECRET, SMTP_URL=url)
    results = await run_reminders(env, copies=2)
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    by_person = sorted((m["To"], m["Content-Language"]) for m in inbox.messages)
    # Gwen: her receipt, one due-soon reminder and one hold notice, each once and in Welsh; Tom:
    # his receipt. Tom's overdue reminder never went: the drill came back before the run.
    assert by_person == [("gwen@example.org", "cy")] * 3 + [("tom@example.org", "en")], by_person
    keys = sorted(row["key"].split(":")[0] for row in await Email.select(Email.key).run())
    assert keys == ["hold-ready", "loan-due-soon", "loan-receipt", "loan-receipt"]
    again = await run_reminders(env)
    assert again[0].returncode == 0 and len(inbox.messages) == 4


async def test_an_overdue_reminder_goes_once_per_due_date(database, smtp):
    from lending.catalog import services as catalog
    from lending.catalog.services import ItemDetails
    from lending.loans import checkout
    from lending.loans.tables import Loan

    inbox, url = smtp
    tier = await tiers.save_tier(values=TierInput(name="Free", min_pence=0, max_pence=5000, allow_free=True))
    tom = await members.create_account(name="Tom", email="tom@example.org", role="member")
    await counter_payments.record_counter_payment(
        member_id=tom.id, tier=tier.id, amount=0, method="cash", actor_id=None
    )
    drill = await catalog.add_item(details=ItemDetails(name="Drill"))
    [late] = await checkout.check_out(member_id=tom.id, item_codes=[drill.code], actor_id=None)
    await Loan.update({Loan.due_at: clock.now() - timedelta(days=2)}).where(Loan.id == late.id).run()
    env = server_env(DATABASE_URL=database, SECRET_KEY=SECRET, SMTP_URL=url)
    [first] = await run_reminders(env)
    assert first.returncode == 0 and "1 overdue reminder" in first.stdout, first.stdout
    [second] = await run_reminders(env)
    assert "0 overdue reminders" in second.stdout
    subjects = sorted(subject(m) for m in inbox.messages)
    assert len(subjects) == 2 and subjects[0] == "Overdue: Drill" and subjects[1].startswith("Your loan: due back by")
