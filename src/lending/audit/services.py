"""The audit log: who did what to whom. Called inside the transaction of the change it records."""

from __future__ import annotations

from datetime import datetime

from lending import clock
from lending.audit.tables import AuditEvent


async def record(*, action: str, actor_id: int | None, subject: str = "", detail: str = "",
                 at: datetime | None = None) -> None:
    await AuditEvent.insert(
        AuditEvent(at=at or clock.now(), actor=actor_id, action=action, subject=subject, detail=detail)
    ).run()


async def recent(*, limit: int = 100) -> list[dict]:
    return await (
        AuditEvent.select(
            AuditEvent.at, AuditEvent.action, AuditEvent.subject, AuditEvent.detail,
            AuditEvent.actor.name.as_alias("actor_name"),
        )
        .order_by(AuditEvent.id, ascending=False)
        .limit(limit)
        .run()
    )
