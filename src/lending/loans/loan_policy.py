"""The venue's lending rules (renewals, buffers, holds, bookings, fees): read, and changed all
or nothing within their bounds."""

from __future__ import annotations

from lending import clock, config_cache, db, errors
from lending.audit import services as audit
from lending.i18n import lazy_gettext as _l
from lending.loans import rules
from lending.loans.tables import LoanPolicy

_POLICY_FIELDS = (
    "renewal_limit",
    "buffer_hours",
    "hold_days",
    "due_soon_days",
    "reserve_ahead_days",
    "max_reservation_days",
    "fee_per_day_pence",
    "fee_cap_pence",
    "block_over_pence",
)


async def policy(*, fresh: bool = False) -> rules.Policy:
    """The venue's lending rules; each process keeps them until the configuration changes
    anywhere (``config_cache``)."""
    return await _kept.get(fresh=fresh)


async def _load() -> rules.Policy:
    row = await LoanPolicy.select().order_by(LoanPolicy.id).first().run()
    if row is None:
        return rules.Policy()
    return rules.Policy(**{name: row[name] for name in _POLICY_FIELDS}, fees_enabled=bool(row["fees_enabled"]))


_kept: config_cache.Kept[rules.Policy] = config_cache.Kept(_load)


async def save_policy(*, values: dict[str, object], actor_id: int | None = None) -> rules.Policy:
    """Replace the lending rules, all or nothing, within their bounds."""
    numbers: dict[str, int] = {}
    problems: dict[str, str] = {}
    for name in _POLICY_FIELDS:
        raw = values.get(name)
        try:
            numbers[name] = raw if isinstance(raw, int) and not isinstance(raw, bool) else int(str(raw).strip())
        except (TypeError, ValueError):
            numbers[name] = -1
    problems.update(rules.policy_problems(numbers))
    if problems:
        raise errors.InvalidInput(_l("Some lending rules need correcting."), code="invalid_policy", errors=problems)
    fees_enabled = values.get("fees_enabled") in (True, "yes", "on", "true", "1", 1)
    async with db.transaction(write=True):
        current = await LoanPolicy.select(LoanPolicy.id).order_by(LoanPolicy.id).first().run()
        fields = {**numbers, "fees_enabled": fees_enabled, "updated_at": clock.now()}
        if current is None:
            await LoanPolicy.insert(LoanPolicy(**fields)).run()
        else:
            await (
                LoanPolicy.update({getattr(LoanPolicy, k): v for k, v in fields.items()})
                .where(LoanPolicy.id == current["id"])
                .run()
            )
        await audit.record(
            action="loan.policy",
            actor_id=actor_id,
            subject="loan_policy",
            detail=", ".join(f"{k}={v}" for k, v in sorted({**numbers, "fees": fees_enabled}.items())),
        )
        await config_cache.changed()
    return await policy(fresh=True)
