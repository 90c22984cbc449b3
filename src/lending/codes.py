"""Opaque public identifiers in Crockford base32 (item codes, member cards, referrals).

The alphabet leaves out I, L, O and U; when reading a code typed by a person, the
look-alikes are folded back (O->0, I/L->1) and hyphens and spaces ignored.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FOLD = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code(length: int = 8) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalise(text: str) -> str:
    """The canonical form of a code a person typed or a scanner read; '' if it cannot be one."""
    cleaned = text.strip().upper().replace("-", "").replace(" ", "").translate(_FOLD)
    if not cleaned or any(ch not in ALPHABET for ch in cleaned):
        return ""
    return cleaned


def display(code: str) -> str:
    """Codes are easier to read aloud in groups of four."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
