"""JSON shapes of the venue API."""

from __future__ import annotations

import msgspec

from lending.venues.services import VenueSettings


class VenueIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    timezone: str = "Europe/London"
    currency: str = "gbp"
    email: str = ""
    phone: str = ""
    address: str = ""
    website: str = ""
    colour: str = "#00594f"
    languages: list[str] = msgspec.field(default_factory=lambda: ["en", "cy"])  # the first is the default
    label_template: str = "L7160"


class VenueOut(msgspec.Struct):
    name: str
    timezone: str
    currency: str
    email: str
    phone: str
    address: str
    website: str
    colour: str
    languages: list[str]
    label_template: str
    logo_url: str | None


def venue_out(venue: VenueSettings) -> VenueOut:
    return VenueOut(
        name=venue.name,
        timezone=venue.timezone,
        currency=venue.currency,
        email=venue.email,
        phone=venue.phone,
        address=venue.address,
        website=venue.website,
        colour=venue.colour,
        languages=list(venue.languages),
        label_template=venue.label_template,
        logo_url=f"/venue/logo.png?v={venue.version}" if venue.has_logo else None,
    )


class SetupImported(msgspec.Struct):
    venue: str
    counts: dict[str, int]
