"""What the catalogue shows of lending: when each thing on loan is due back. The catalogue
sits below lending and knows nothing of loans, so the pages and the API that show items ask
here."""

from __future__ import annotations

import dataclasses

from lending.catalog import services as catalog
from lending.catalog.rules import Status
from lending.catalog.services import ItemView
from lending.loans.tables import Loan


async def with_due_back(views: list[ItemView]) -> list[ItemView]:
    """The same items, each one on loan with the date it is due back."""
    on_loan = [view.code for view in views if view.status == Status.on_loan.value]
    if not on_loan:
        return views
    due = {
        row["code"]: row["due_at"]
        for row in await Loan.select(Loan.item.code.as_alias("code"), Loan.due_at)
        .where(Loan.item.code.is_in(on_loan), Loan.returned_at.is_null())
        .run()
    }
    return [dataclasses.replace(view, due_back=due[view.code]) if view.code in due else view for view in views]


async def get_item(*, code: str) -> ItemView:
    """One item as its page shows it (``catalog.get_item`` with its due date)."""
    return (await with_due_back([await catalog.get_item(code=code)]))[0]
