from piccolo.apps.user.tables import BaseUser
from piccolo.columns import Boolean, ForeignKey, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table
from piccolo_api.session_auth.tables import SessionsBase

from lending.members.rules import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH


class Organisation(Table, tablename="organisation"):
    """An organisation that link workers belong to and that their referrals come from: a GP
    practice, primary care network, charity or council team."""

    name = Varchar(length=200, unique=True)
    kind = Varchar(length=30, default="other")
    created_at = Timestamptz()


class Account(BaseUser, tablename="account"):
    """A person who uses the library. Extends Piccolo's user so that piccolo_admin signs
    coordinators in with the same credentials and session as the rest of the app.

    ``username`` is the lower-cased email, or the card code for a member registered at the
    counter without one; ``admin``/``superuser`` mirror the coordinator role.
    """

    email = Varchar(length=255, unique=True, null=True, default=None)
    name = Varchar(length=200)
    role = Varchar(length=20, index=True)
    phone = Varchar(length=40, null=True, default=None)
    language = Varchar(length=8, default="en")
    organisation = ForeignKey(references=Organisation, null=True, on_delete=OnDelete.restrict)
    card_code = Varchar(length=16, unique=True)
    created_at = Timestamptz()

    # The admin's change-password form checks these; keep them the same as the app's rule.
    _min_password_length = MIN_PASSWORD_LENGTH
    _max_password_length = MAX_PASSWORD_LENGTH


class Session(SessionsBase, tablename="session"):
    """Signed-in browser sessions, in the database so every app process shares them."""


class ApiToken(Table, tablename="api_token"):
    """A bearer token; only its SHA-256 is stored, so a leaked database leaks no tokens."""

    account = ForeignKey(references=Account, on_delete=OnDelete.cascade, index=True)
    token_hash = Varchar(length=64, unique=True)
    label = Varchar(length=100, default="")
    created_at = Timestamptz()
    last_used_at = Timestamptz(null=True, default=None)
    revoked = Boolean(default=False)


class LoginAttempt(Table, tablename="login_attempt"):
    """Failed sign-ins, counted per email and per address to rate-limit across processes."""

    key = Varchar(length=255, index=True)
    attempted_at = Timestamptz(index=True)
