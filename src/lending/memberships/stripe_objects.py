"""Reading the objects Stripe's events carry: its timestamps, our ids in their metadata, and an
invoice's subscription, payment intent and period."""

from __future__ import annotations

from datetime import UTC, datetime


def stamp(seconds: object) -> datetime | None:
    """A Stripe timestamp (seconds since the epoch) as a time in UTC; None for anything else."""
    return datetime.fromtimestamp(int(seconds), tz=UTC) if isinstance(seconds, int | float) else None


def metadata_id(metadata: object, key: str) -> int | None:
    """One of our ids, as we put it in an object's metadata; None if it is not there."""
    value = metadata.get(key) if isinstance(metadata, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


def invoice_subscription(invoice: dict) -> tuple[str | None, dict]:
    """The invoice's subscription and its metadata; the current API keeps them under
    ``parent.subscription_details`` (older ones had ``invoice.subscription``)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or invoice.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return subscription, details.get("metadata") or {}


def invoice_payment_intent(invoice: dict) -> str | None:
    """The payment intent that paid the invoice: under ``payments`` in the current API
    (older ones had ``invoice.payment_intent``)."""
    for entry in (invoice.get("payments") or {}).get("data") or []:
        intent = (entry.get("payment") or {}).get("payment_intent")
        if intent:
            return intent if isinstance(intent, str) else intent.get("id")
    intent = invoice.get("payment_intent")
    return intent if isinstance(intent, str) else None


def invoice_period_end(invoice: dict) -> datetime | None:
    """The end of the latest period the invoice's lines pay for."""
    ends = [line.get("period", {}).get("end") for line in ((invoice.get("lines") or {}).get("data") or [])]
    ends = [end for end in ends if isinstance(end, int)]
    return stamp(max(ends)) if ends else None
