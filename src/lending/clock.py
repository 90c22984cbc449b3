"""The one place that reads the time. Rules take ``now`` as an argument."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)
