"""Pure rules about people: roles, what each role may reach, and valid account details."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from lending.i18n import lazy_gettext as _l


class Role(str, Enum):
    member = "member"
    volunteer = "volunteer"
    link_worker = "link_worker"
    coordinator = "coordinator"


ROLE_LABELS = {
    Role.member: _l("Member"),
    Role.volunteer: _l("Volunteer"),
    Role.link_worker: _l("Link worker"),
    Role.coordinator: _l("Coordinator"),
}

# Where each role lands after signing in.
ROLE_HOME = {
    Role.member: "/account",
    Role.volunteer: "/desk",
    Role.link_worker: "/referrals",
    Role.coordinator: "/manage",
}

# Who may act in each capacity. A coordinator runs the venue and may do everything; a
# volunteer works the desk; a link worker sees only referrals; members only their own account.
CAPACITIES: dict[Role, frozenset[Role]] = {
    Role.member: frozenset(Role),
    Role.volunteer: frozenset({Role.volunteer, Role.coordinator}),
    Role.link_worker: frozenset({Role.link_worker, Role.coordinator}),
    Role.coordinator: frozenset({Role.coordinator}),
}

LANGUAGES = ("en", "cy")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128
MAX_NAME_LENGTH = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{6,20}$")


def may_act_as(role: str, capacity: Role) -> bool:
    try:
        return Role(role) in CAPACITIES[capacity]
    except ValueError:
        return False


def parse_role(value: str) -> Role | None:
    try:
        return Role(value.strip().lower())
    except ValueError:
        return None


def normalise_email(value: str | None) -> str:
    return (value or "").strip().lower()


def email_problem(email: str) -> str | None:
    if len(email) > 255 or not _EMAIL.match(email):
        return _l("Enter an email address like name@example.org.")
    return None


def name_problem(name: str) -> str | None:
    if not name.strip():
        return _l("Enter a name.")
    if len(name) > MAX_NAME_LENGTH:
        return _l("Names can be at most 200 characters long.")
    return None


def phone_problem(phone: str) -> str | None:
    if phone and not _PHONE.match(phone):
        return _l("Enter a phone number using digits, spaces and an optional +.")
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return _l("Passwords must be at least 10 characters long.")
    if len(password) > MAX_PASSWORD_LENGTH:
        return _l("Passwords can be at most 128 characters long.")
    return None


def account_problems(*, role: Role | None, name: str, email: str, has_organisation: bool) -> dict[str, str]:
    """The rules every way of making or changing an account shares (the people page, the CLI,
    the desk, the admin): a known role, a name, a well-formed email if any, and a referring
    organisation for link workers and only for them."""
    problems: dict[str, str] = {}
    if role is None:
        problems["role"] = _l("Choose a role: member, volunteer, link worker or coordinator.")
    if problem := name_problem(name):
        problems["name"] = problem
    if email and (problem := email_problem(email)):
        problems["email"] = problem
    if role == Role.link_worker and not has_organisation:
        problems["organisation"] = _l("Link workers belong to a referring organisation: choose one.")
    if role not in (None, Role.link_worker) and has_organisation:
        problems["organisation"] = _l("Only link workers belong to a referring organisation.")
    return problems


@dataclass(frozen=True)
class SignInLimit:
    """Failed sign-ins allowed per window, per email address and per network address."""

    window: timedelta = timedelta(minutes=15)
    per_email: int = 5
    per_address: int = 50


def sign_in_blocked(*, failures_for_email: int, failures_for_address: int, limit: SignInLimit) -> bool:
    return failures_for_email >= limit.per_email or failures_for_address >= limit.per_address


def retry_after_seconds(*, oldest_failure: datetime | None, now: datetime, limit: SignInLimit) -> int:
    if oldest_failure is None:
        return int(limit.window.total_seconds())
    remaining = oldest_failure + limit.window - now
    return max(1, int(remaining.total_seconds()) + 1)
