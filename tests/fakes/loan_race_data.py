"""Set up a database for the loan race tests (tests/http/test_loan_races.py), in its own process.

    DATABASE_URL=... python -m tests.fakes.loan_race_data --members 50 --items 2 [--drop-guard-index]

Migrates, then adds a free tier (a loan limit of 100), the members (each with an active free
membership), a volunteer with an API token and the items (a tent each, one per race); prints
them as one line of JSON.
``--drop-guard-index`` then drops the partial unique index ``loan_one_open``, for the negative
control only.

It runs as a separate process (like ``lending`` commands) so that the test process's
``lending.db`` engine, which the other tests' fixtures own, is never rebound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

# Hashing with OWASP's iteration count takes ~0.3 s per password; only the volunteer has one.
from lending.members.tables import Account

Account._pbkdf2_iteration_count = 1_000

GUARD_INDEX = "loan_one_open"


async def build(*, members_wanted: int, items_wanted: int, drop_guard_index: bool) -> dict:
    from lending import db, schema
    from lending.catalog import services as catalog
    from lending.catalog.services import ItemDetails
    from lending.members import services as members
    from lending.memberships import counter_payments, tiers
    from lending.memberships.tiers import TierInput

    schema.configure(os.environ["DATABASE_URL"])
    await db.start()
    try:
        await db.migrate()
        tier = await tiers.save_tier(
            values=TierInput(name="Race free", min_pence=0, max_pence=0, allow_free=True, loan_limit=100, loan_days=7)
        )
        volunteer = await members.create_account(
            name="Race Volunteer",
            email="race-volunteer@example.org",
            role="volunteer",
            password="a long enough password",
        )
        token = await members.create_api_token(account_id=volunteer.id, label="loan races")
        member_ids = []
        for n in range(members_wanted):
            member = await members.create_account(
                name=f"Racer {n:02d}", email=f"racer{n:02d}@example.org", role="member"
            )
            await counter_payments.record_counter_payment(
                member_id=member.id, tier=tier.id, amount=0, method="cash", actor_id=None
            )
            member_ids.append(member.id)
        items = [await catalog.add_item(details=ItemDetails(name="Tent")) for _ in range(items_wanted)]
        if drop_guard_index:
            await db.engine().run_ddl(f"DROP INDEX {GUARD_INDEX}")
        return {
            "token": token,
            "item_codes": [item.code for item in items],
            "member_ids": member_ids,
            "tier_id": tier.id,
        }
    finally:
        await db.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loan_race_data")
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--items", type=int, default=1)
    parser.add_argument("--drop-guard-index", action="store_true")
    args = parser.parse_args(argv)
    found = asyncio.run(
        build(members_wanted=args.members, items_wanted=args.items, drop_guard_index=args.drop_guard_index)
    )
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
