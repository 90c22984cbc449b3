"""The borrowing agreement: its versions, published by coordinators, and each member's acceptance
of the version they were shown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lending import clock, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.memberships import rules
from lending.memberships.tables import Agreement, AgreementAcceptance


@dataclass(frozen=True)
class AgreementView:
    id: int
    version: int
    body: str
    body_cy: str
    published_at: datetime

    def text_for(self, language: str) -> str:
        return self.body_cy if language == "cy" and self.body_cy.strip() else self.body


def _agreement_view(row: dict) -> AgreementView:
    return AgreementView(
        id=row["id"], version=row["version"], body=row["body"], body_cy=row["body_cy"], published_at=row["published_at"]
    )


async def current_agreement() -> AgreementView | None:
    row = await Agreement.select().order_by(Agreement.version, ascending=False).first().run()
    return _agreement_view(row) if row else None


async def publish_agreement(*, body: str, body_cy: str = "", actor_id: int | None = None) -> AgreementView:
    """A new version of the agreement; members accept it when they next join or renew."""
    body, body_cy = body.replace("\r\n", "\n").strip(), body_cy.replace("\r\n", "\n").strip()
    if problems := rules.agreement_problems(body=body, body_cy=body_cy):
        raise errors.InvalidInput(_l("Check the agreement."), code="invalid_agreement", errors=problems)
    busy = errors.Conflict(_l("Someone published a version at the same moment; try again."), code="try_again")
    with db.unique_violation_as(lambda: busy):
        async with db.transaction(write=True):
            latest = await current_agreement()
            version = (latest.version if latest else 0) + 1
            await Agreement.insert(
                Agreement(version=version, body=body, body_cy=body_cy, published_at=clock.now(), published_by=actor_id)
            ).run()
            await audit.record(action="agreement.publish", actor_id=actor_id, subject=f"agreement:{version}")
    found = await current_agreement()
    assert found is not None
    return found


async def accept_agreement(*, account_id: int, version: int | str | None, now: datetime) -> None:
    """Inside a write transaction: the member accepts the version they were shown, which
    must still be the current one."""
    current = await current_agreement()
    if current is None:
        return  # the venue has not written one yet
    if str(version or "").strip() != str(current.version):
        raise errors.InvalidInput(
            _l("Read and accept the borrowing agreement (version %(version)d).", version=current.version),
            code="agreement_not_accepted",
            field="agreement",
        )
    await AgreementAcceptance.insert(
        AgreementAcceptance(account=account_id, agreement=current.id, accepted_at=now)
    ).run()
    await audit.record(
        action="agreement.accept",
        actor_id=account_id,
        subject=f"account:{account_id}",
        detail=f"version={current.version}",
        at=now,
    )


async def accepted_version(*, account_id: int) -> int | None:
    row = await (
        AgreementAcceptance.select(AgreementAcceptance.agreement.version.as_alias("version"))
        .where(AgreementAcceptance.account == account_id)
        .order_by(AgreementAcceptance.agreement.version, ascending=False)
        .first()
        .run()
    )
    return row["version"] if row else None
