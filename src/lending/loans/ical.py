"""iCalendar (RFC 5545) text for a member's feed: plain values in, the file's text out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


@dataclass(frozen=True)
class Event:
    uid: str
    summary: str
    description: str
    starts: datetime | date  # an aware instant, or a whole day
    ends: datetime | date
    url: str = ""


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\\n").replace("\n", "\\n")
    )


def _fold(line: str) -> list[str]:
    """Lines longer than 75 octets continue on the next line after a space, never inside a
    character."""
    out, current = [], ""
    for char in line:
        limit = 75 if not out else 74
        if len((current + char).encode()) > limit:
            out.append(current)
            current = char
        else:
            current += char
    out.append(current)
    return [out[0], *(" " + part for part in out[1:])]


def _stamp(moment: datetime | date, name: str) -> str:
    if isinstance(moment, datetime):
        return f"{name}:{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{name};VALUE=DATE:{moment:%Y%m%d}"


def calendar(*, name: str, events: list[Event], now: datetime) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//lending//library of things//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_escape(name)}",
        "REFRESH-INTERVAL;VALUE=DURATION:PT6H",
    ]
    for event in events:
        ends = event.ends
        if not isinstance(ends, datetime):
            ends = ends + timedelta(days=1)  # DTEND of a whole-day event is the day after
        lines += [
            "BEGIN:VEVENT",
            f"UID:{event.uid}",
            _stamp(now, "DTSTAMP"),
            _stamp(event.starts, "DTSTART"),
            _stamp(ends, "DTEND"),
            f"SUMMARY:{_escape(event.summary)}",
            f"DESCRIPTION:{_escape(event.description)}",
        ]
        if event.url:
            lines.append(f"URL:{event.url}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(part + "\r\n" for line in lines for part in _fold(line))
