"""A member's calendar feed: their due dates, copies waiting for them and bookings, at a secret address."""

from __future__ import annotations

import secrets
from datetime import timedelta

from lending import clock, codes, db, errors, i18n
from lending.i18n import lazy_gettext as _l
from lending.loans import ical
from lending.loans.records import member_holds, member_loans, member_reservations
from lending.loans.rules import HoldStatus
from lending.loans.tables import CalendarFeed


async def calendar_token(*, member_id: int, renew: bool = False) -> str:
    """The member's secret feed address; ``renew`` replaces it (the old one stops working)."""
    async with db.transaction(write=True):
        row = await CalendarFeed.select(CalendarFeed.token).where(CalendarFeed.member == member_id).first().run()
        if row and not renew:
            return row["token"]
        token = secrets.token_urlsafe(24)
        if row:
            await (
                CalendarFeed.update({CalendarFeed.token: token, CalendarFeed.created_at: clock.now()})
                .where(CalendarFeed.member == member_id)
                .run()
            )
        else:
            await CalendarFeed.insert(CalendarFeed(member=member_id, token=token, created_at=clock.now())).run()
    return token


async def member_for_calendar(*, token: str) -> int:
    row = await CalendarFeed.select(CalendarFeed.member).where(CalendarFeed.token == token[:64]).first().run()
    if row is None:
        raise errors.NotFound(
            _l("This calendar address is not valid; copy the new one from your account page."),
            code="calendar_not_found",
        )
    return row["member"]


async def calendar_feed(*, member_id: int, base_url: str) -> str:
    """The member's due dates (each at closing time), copies waiting for them and bookings, in
    the language set by the caller."""
    from urllib.parse import urlsplit

    host = urlsplit(base_url).hostname or "lending"
    events = []
    for loan in await member_loans(member_id=member_id):
        events.append(
            ical.Event(
                uid=f"loan-{loan.id}@{host}",
                summary=i18n.gettext("Due back: %(item)s", item=loan.item_name),
                description=i18n.gettext(
                    "Bring %(item)s (%(code)s) back to the counter by %(when)s, or renew it.",
                    item=loan.item_name,
                    code=codes.display(loan.item_code),
                    when=i18n.format_when(loan.due_at),
                ),
                starts=loan.due_at - timedelta(minutes=30),
                ends=loan.due_at,
                url=f"{base_url}/account/loans",
            )
        )
    for hold in await member_holds(member_id=member_id):
        if hold.status == HoldStatus.ready and hold.expires_at:
            events.append(
                ical.Event(
                    uid=f"hold-{hold.id}@{host}",
                    summary=i18n.gettext("Collect: %(item)s", item=hold.item_name),
                    description=i18n.gettext(
                        "%(item)s is put aside for you until %(when)s.",
                        item=hold.item_name,
                        when=i18n.format_when(hold.expires_at),
                    ),
                    starts=hold.expires_at - timedelta(minutes=30),
                    ends=hold.expires_at,
                    url=f"{base_url}/account/loans",
                )
            )
    for booking in await member_reservations(member_id=member_id):
        events.append(
            ical.Event(
                uid=f"reservation-{booking.id}@{host}",
                summary=i18n.gettext("Booked: %(item)s", item=booking.item_name),
                description=i18n.gettext(
                    "Collect %(item)s on the first day and bring it back by the last.", item=booking.item_name
                ),
                starts=booking.starts_on,
                ends=booking.ends_on,
                url=f"{base_url}/account/loans",
            )
        )
    return ical.calendar(name=i18n.gettext("Library loans"), events=events, now=clock.now())
