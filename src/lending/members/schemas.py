"""JSON shapes of the people API (described at /schema/openapi.json)."""

from __future__ import annotations

import msgspec

from lending.members.services import AccountView


class MemberIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    email: str | None = None
    phone: str | None = None
    language: str = "en"


class MemberOut(msgspec.Struct):
    id: int
    card_code: str
    name: str
    email: str | None
    phone: str | None
    language: str
    role: str


class MemberList(msgspec.Struct):
    members: list[MemberOut]


class MeOut(msgspec.Struct):
    id: int
    name: str
    email: str | None
    role: str
    language: str
    card_code: str
    organisation: str | None


def member_out(account: AccountView) -> MemberOut:
    return MemberOut(
        id=account.id,
        card_code=account.card_code,
        name=account.name,
        email=account.email,
        phone=account.phone,
        language=account.language,
        role=account.role,
    )
