"""One-time messages shown on the next page, kept in a signed cookie so any app process
can show them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

COOKIE = "lending_flash"
KINDS = ("success", "info", "warning", "error")


def encode(messages: list[dict[str, str]], secret: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(messages, ensure_ascii=False).encode()).decode().rstrip("=")
    signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{signature}"


def decode(value: str | None, secret: str) -> list[dict[str, str]]:
    if not value or "." not in value or len(value) > 4000:
        return []
    payload, signature = value.rsplit(".", 1)
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(signature, expected):
        return []
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(data, list):
        return []
    return [m for m in data if isinstance(m, dict) and m.get("kind") in KINDS and isinstance(m.get("text"), str)]


def add(scope: dict[str, Any], text: str, kind: str = "success") -> None:
    """Queue a message for the next page this browser shows."""
    scope.setdefault("state", {}).setdefault("flash_out", []).append({"kind": kind, "text": str(text)})
