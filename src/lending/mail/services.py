"""The outbox: services queue messages inside the transaction of what they are about, and a
sender delivers them afterwards (right away from the app, and again from
``lending reminders send``), so a message is never lost with a crash, nor sent twice."""

from __future__ import annotations

from datetime import datetime, timedelta

from lending import clock, db
from lending.mail.smtp import Mailer, MailError
from lending.mail.tables import Email

CLAIM_TIMEOUT = timedelta(minutes=10)  # a sender that died holding a claim lets go after this
MAX_ATTEMPTS = 5


async def queue(*, key: str, to_address: str | None, subject: str, body: str, account_id: int | None = None,
                now: datetime | None = None) -> bool:
    """Add a message to the outbox once per key; returns whether this call added it."""
    if not to_address:
        return False
    rows = await (Email.insert(Email(key=key[:200], account=account_id, to_address=to_address, subject=subject[:300],
                                     body=body, created_at=now or clock.now()))
                  .on_conflict(action="DO NOTHING").returning(Email.id).run())
    return bool(rows)


async def _claim(limit: int, now: datetime) -> list[dict]:
    """Take up to ``limit`` unsent messages for this sender. The claim re-checks each row as it
    updates it, so two senders at the same moment (two cron runs, two app processes) never
    take the same message."""
    stale = now - CLAIM_TIMEOUT
    async with db.transaction(write=True):
        return await Email.raw(
            "UPDATE email SET claimed_at = {}, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM email WHERE sent_at IS NULL AND attempts < {} "
            "AND (claimed_at IS NULL OR claimed_at < {}) ORDER BY id LIMIT {}) "
            "AND sent_at IS NULL AND (claimed_at IS NULL OR claimed_at < {}) "
            "RETURNING id, to_address, subject, body, account",
            now, MAX_ATTEMPTS, stale, limit, stale,
        ).run()


async def send_pending(*, mailer: Mailer | None, limit: int = 200, now: datetime | None = None) -> int:
    """Deliver what is waiting; returns how many went. Without a mail server nothing goes and
    everything waits."""
    if mailer is None:
        return 0
    from lending.members.tables import Account

    sent = 0
    for message in await _claim(limit, now or clock.now()):
        language = "en"
        if message["account"]:
            row = await Account.select(Account.language).where(Account.id == message["account"]).first().run()
            language = row["language"] if row else "en"
        try:
            await mailer.send(to=message["to_address"], subject=message["subject"], body=message["body"],
                              language=language)
        except MailError as exc:
            await Email.update({Email.claimed_at: None, Email.last_error: str(exc)[:1000]}).where(
                Email.id == message["id"]).run()
            continue
        await Email.update({Email.sent_at: clock.now(), Email.last_error: ""}).where(Email.id == message["id"]).run()
        sent += 1
    return sent


async def queued(*, key: str) -> bool:
    return await Email.exists().where(Email.key == key[:200]).run()


async def waiting() -> int:
    return await Email.count().where(Email.sent_at.is_null()).run()
