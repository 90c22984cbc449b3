"""The one place that reads the time. Rules take ``now`` as an argument."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def local_naive_now() -> datetime:
    """Local time without a zone, as Piccolo's session table (shared with the admin) keeps it."""
    return datetime.now()
