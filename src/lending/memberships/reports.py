"""Coordinators' figures: income by month and method, every payment as a CSV (with Gift Aid
declarations), and the currencies payments were taken in."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC
from zoneinfo import ZoneInfo

from lending.memberships import rules
from lending.memberships.records import PAYMENT_COLUMNS, payment_view
from lending.memberships.tables import Payment
from lending.spreadsheets import safe_cell

VENUE_TIME_ZONE = ZoneInfo("Europe/London")  # the venue's own setting arrives with venue settings


async def currencies_taken() -> set[str]:
    """The currencies payments have been taken in (the venue's currency stays once there is one)."""
    return {row["currency"] for row in await Payment.select(Payment.currency).distinct().run()}


@dataclass(frozen=True)
class IncomeRow:
    month: str
    method: str
    payments: int
    received_pence: int
    refunded_pence: int
    forward_pence: int

    @property
    def net_pence(self) -> int:
        return self.received_pence - self.refunded_pence


async def income_by_month(*, months: int = 24) -> list[IncomeRow]:
    """Money received by month (in the venue's time) and method, newest month first, with
    refunds and the part that funds free places."""
    rows = await Payment.select(
        Payment.paid_at, Payment.method, Payment.amount_pence, Payment.refunded_pence, Payment.forward_pence
    ).run()
    totals: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        key = (rules.month_key(row["paid_at"].astimezone(VENUE_TIME_ZONE)), row["method"])
        entry = totals.setdefault(key, [0, 0, 0, 0])
        entry[0] += 1
        entry[1] += row["amount_pence"]
        entry[2] += row["refunded_pence"]
        entry[3] += row["forward_pence"]
    ordered = sorted(totals.items(), key=lambda item: (item[0][0], item[0][1]), reverse=True)
    kept_months = sorted({month for month, _ in totals}, reverse=True)[:months]
    return [
        IncomeRow(
            month=month, method=method, payments=v[0], received_pence=v[1], refunded_pence=v[2], forward_pence=v[3]
        )
        for (month, method), v in ordered
        if month in kept_months
    ]


CSV_COLUMNS = (
    "receipt",
    "paid_at",
    "member_id",
    "member_name",
    "member_email",
    "membership",
    "method",
    "amount",
    "pay_it_forward",
    "refunded",
    "currency",
    "covers_until",
    "recorded_by",
    "gift_aid",
    "gift_aid_full_name",
    "gift_aid_house",
    "gift_aid_postcode",
    "gift_aid_declared_at",
)


async def export_payments_csv() -> str:
    """Every payment, oldest first, in pounds, with the Gift Aid declaration where there is one."""
    rows = (
        await Payment.select(
            *PAYMENT_COLUMNS,
            Payment.gift_aid_declaration.full_name.as_alias("ga_name"),
            Payment.gift_aid_declaration.house.as_alias("ga_house"),
            Payment.gift_aid_declaration.postcode.as_alias("ga_postcode"),
            Payment.gift_aid_declaration.declared_at.as_alias("ga_at"),
        )
        .order_by(Payment.paid_at)
        .run()
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        view = payment_view(row)

        def pounds(pence: int) -> str:
            return f"{pence / 100:.2f}"

        writer.writerow(
            [
                safe_cell(v)
                for v in (
                    view.receipt_code,
                    view.paid_at.astimezone(UTC).isoformat(),
                    view.member_id,
                    view.member_name,
                    view.member_email or "",
                    view.tier_name,
                    view.method,
                    pounds(view.amount_pence),
                    pounds(view.forward_pence),
                    pounds(view.refunded_pence),
                    view.currency.upper(),
                    view.covers_until.date().isoformat() if view.covers_until else "",
                    view.recorded_by_name or "",
                    "yes" if view.gift_aid else "no",
                    row["ga_name"] or "",
                    row["ga_house"] or "",
                    row["ga_postcode"] or "",
                    row["ga_at"].date().isoformat() if row["ga_at"] else "",
                )
            ]
        )
    return out.getvalue()
