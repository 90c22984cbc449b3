"""The outbox: services queue messages inside the transaction of what they are about, and a
sender delivers them afterwards (right away from the app, and again from
``lending reminders send``), so a message is never lost with a crash, nor sent twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lending import clock, config_cache, db, errors, i18n
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.mail import rules
from lending.mail.smtp import Mailer, MailError
from lending.mail.tables import Email, EmailTemplate

CLAIM_TIMEOUT = timedelta(minutes=10)  # a sender that died holding a claim lets go after this
MAX_ATTEMPTS = 5


async def queue(
    *,
    key: str,
    to_address: str | None,
    subject: str,
    body: str,
    library: str,
    account_id: int | None = None,
    now: datetime | None = None,
    kind: str | None = None,
    language: str = "en",
    values: dict[str, str] | None = None,
) -> bool:
    """Add a message to the outbox once per key; returns whether this call added it. It goes
    under the name ``library`` (the venue's). With a ``kind``, the coordinator's own words for
    it in ``language``, filled in from ``values`` and ``{library}``, replace the built-in
    ``subject`` and ``body``."""
    if not to_address:
        return False
    if kind is not None:
        subject, body = await _own_words(
            kind, language, {"library": library, **(values or {})}, default=(subject, body)
        )
    rows = await (
        Email.insert(
            Email(
                key=key[:200],
                account=account_id,
                to_address=to_address,
                subject=subject[:300],
                body=body,
                language=language,
                sender_name=library[:200],
                created_at=now or clock.now(),
            )
        )
        .on_conflict(action="DO NOTHING")
        .returning(Email.id)
        .run()
    )
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
            "RETURNING id, to_address, subject, body, language, sender_name",
            now,
            MAX_ATTEMPTS,
            stale,
            limit,
            stale,
        ).run()


async def send_pending(*, mailer: Mailer | None, limit: int = 200, now: datetime | None = None) -> int:
    """Deliver what is waiting; returns how many went. Without a mail server nothing goes and
    everything waits."""
    if mailer is None:
        return 0
    sent = 0
    for message in await _claim(limit, now or clock.now()):
        language = message["language"] or "en"
        try:
            with i18n.in_language(language):
                sender_name = message["sender_name"] or i18n.gettext("Library of things")
            await mailer.send(
                to=message["to_address"],
                subject=message["subject"],
                body=message["body"],
                language=language,
                sender_name=sender_name,
            )
        except MailError as exc:
            await (
                Email.update({Email.claimed_at: None, Email.last_error: str(exc)[:1000]})
                .where(Email.id == message["id"])
                .run()
            )
            continue
        await Email.update({Email.sent_at: clock.now(), Email.last_error: ""}).where(Email.id == message["id"]).run()
        sent += 1
    return sent


async def queued(*, key: str) -> bool:
    return await Email.exists().where(Email.key == key[:200]).run()


async def waiting() -> int:
    return await Email.count().where(Email.sent_at.is_null()).run()


# --- the coordinator's own words ------------------------------------------------------------------


async def _load_words() -> dict[tuple[str, str], tuple[str, str]]:
    rows = await EmailTemplate.select(
        EmailTemplate.kind, EmailTemplate.language, EmailTemplate.subject, EmailTemplate.body
    ).run()
    return {(row["kind"], row["language"]): (row["subject"], row["body"]) for row in rows}


# Every message queued looks here, so each process keeps the words until the configuration changes.
_kept_words: config_cache.Kept[dict[tuple[str, str], tuple[str, str]]] = config_cache.Kept(_load_words)


async def _own_words(kind: str, language: str, values: dict[str, str], *, default: tuple[str, str]) -> tuple[str, str]:
    words = (await _kept_words.get()).get((kind, language))
    if words is None:
        return default
    subject, body = words
    return rules.fill(subject, values).replace("\n", " ")[:300], rules.fill(body, values)


@dataclass(frozen=True)
class TemplateView:
    kind: str
    language: str
    subject: str
    body: str


async def list_templates() -> list[TemplateView]:
    rows = await EmailTemplate.select().order_by(EmailTemplate.kind).order_by(EmailTemplate.language).run()
    return [TemplateView(kind=r["kind"], language=r["language"], subject=r["subject"], body=r["body"]) for r in rows]


def _check_language(language: str) -> None:
    if language not in i18n.LANGUAGES:
        raise errors.NotFound(_l("That language is not available."), code="unknown_language")


async def save_template(
    *, kind: str, language: str, subject: str, body: str, actor_id: int | None = None
) -> TemplateView:
    """Use these words for ``kind`` in ``language`` from now on (replacing any before)."""
    _check_language(language)
    subject, body = subject.strip(), body.strip().replace("\r\n", "\n")
    if problems := rules.problems(kind, subject, body):
        if "kind" in problems:
            raise errors.NotFound(problems["kind"], code="unknown_message_kind")
        raise errors.InvalidInput(_l("The message needs correcting."), code="invalid_email_template", errors=problems)
    async with db.transaction(write=True):
        await EmailTemplate.delete().where(EmailTemplate.kind == kind, EmailTemplate.language == language).run()
        await EmailTemplate.insert(
            EmailTemplate(kind=kind, language=language, subject=subject, body=body, updated_at=clock.now())
        ).run()
        await audit.record(action="email_template.save", actor_id=actor_id, subject=f"email:{kind}:{language}")
        await config_cache.changed()
    return TemplateView(kind=kind, language=language, subject=subject, body=body)


async def reset_template(*, kind: str, language: str, actor_id: int | None = None) -> None:
    """Back to the built-in words."""
    _check_language(language)
    async with db.transaction(write=True):
        deleted = (
            await EmailTemplate.delete()
            .where(EmailTemplate.kind == kind, EmailTemplate.language == language)
            .returning(EmailTemplate.id)
            .run()
        )
        if deleted:
            await audit.record(action="email_template.reset", actor_id=actor_id, subject=f"email:{kind}:{language}")
            await config_cache.changed()
