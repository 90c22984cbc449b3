"""Password hashing: PBKDF2-SHA256 with OWASP's iteration count, in Piccolo's format so the
admin reads the same hashes. Hashing runs in a worker thread so it never stalls the server."""

from __future__ import annotations

import asyncio
import hmac

from lending.members.tables import Account

# Compared against when no account matches, so a wrong email costs as much time as a wrong
# password and response times do not reveal who has an account.
# In Piccolo's format so loading the row never triggers a re-hash, but never a valid hash.
_UNUSABLE = "pbkdf2_sha256$unusable$!$!"


def _hash(password: str) -> str:
    return Account.hash_password(password)


def _verify(password: str, stored: str) -> bool:
    try:
        _, iterations_text, salt, _ = Account.split_stored_password(stored)
        iterations = int(iterations_text)
    except ValueError:
        # No usable hash (a member registered at the counter without a password):
        # spend the same effort, then refuse.
        Account.hash_password(password)
        return False
    candidate = Account.hash_password(password, salt, iterations)
    return hmac.compare_digest(candidate, stored)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hash, password)


async def verify_password(password: str, stored: str | None) -> bool:
    return await asyncio.to_thread(_verify, password, stored or _UNUSABLE)


def unusable_password() -> str:
    return _UNUSABLE
