"""The coordinator's venue details, checked against the money already taken: the currency
stays once payments were made in it. The venue sits below memberships, so the payments are
read here and handed down."""

from __future__ import annotations

from lending.memberships import reports
from lending.venues import rules
from lending.venues import services as venues


async def save_venue_details(*, details: rules.VenueDetails, actor_id: int | None = None) -> venues.VenueSettings:
    """``venues.save_details`` with the currencies payments were taken in."""
    return await venues.save_details(
        details=details, currencies_taken=await reports.currencies_taken(), actor_id=actor_id
    )
