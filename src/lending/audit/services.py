"""The audit log: who did what to whom. Called inside the transaction of the change it records."""

from __future__ import annotations

from datetime import datetime

from lending import clock
from lending.audit.tables import AuditEvent
from lending.i18n import lazy_gettext as _l

# What each recorded action means, for people reading the log.
ACTION_LABELS = {
    "account.create": _l("Created an account"),
    "account.sign_in": _l("Signed in"),
    "api_token.create": _l("Created an API token"),
    "api_token.revoke": _l("Revoked API tokens"),
    "organisation.create": _l("Added a referring organisation"),
}


async def record(*, action: str, actor_id: int | None, subject: str = "", detail: str = "",
                 at: datetime | None = None) -> None:
    await AuditEvent.insert(
        AuditEvent(at=at or clock.now(), actor=actor_id, action=action, subject=subject, detail=detail)
    ).run()


async def recent(*, limit: int = 100) -> list[dict]:
    rows = await (
        AuditEvent.select(
            AuditEvent.at, AuditEvent.action, AuditEvent.subject, AuditEvent.detail,
            AuditEvent.actor.name.as_alias("actor_name"),
        )
        .order_by(AuditEvent.id, ascending=False)
        .limit(limit)
        .run()
    )
    return [{**row, "label": ACTION_LABELS.get(row["action"], row["action"])} for row in rows]
