"""Who is asking: an optional-user middleware (session cookie or bearer token), the
request's language and flash messages, and guards that routers use per role.

The public site stays public: anonymous requests pass through with ``user = None`` and only
guarded routers refuse them.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, Headers, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from lending import config_cache, errors, i18n
from lending.i18n import lazy_gettext as _l
from lending.members import rules
from lending.members import services as members
from lending.members.services import AccountView
from lending.venues import services as venues
from lending.web import flash

# piccolo_admin reads the same session cookie, so one sign-in serves the app and /admin/.
SESSION_COOKIE = "id"
LANGUAGE_COOKIE = "lang"


def _cookies(scope: Scope) -> dict[str, str]:
    raw = Headers.from_scope(scope).get("cookie", "")
    jar: dict[str, str] = {}
    for part in raw.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key not in jar:
            jar[key] = value.strip().strip('"')
    return jar


class RequestContextMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    @staticmethod
    def should_bypass_for_scope(scope: Scope) -> bool:
        return scope["path"].startswith("/static/")  # static files need no user

    def __init__(self, *, secret: str, secure: bool) -> None:
        self.secret = secret
        self.secure = secure

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["path"] != "/health":
            await config_cache.refresh()  # what this process keeps of the configuration is current
        headers = Headers.from_scope(scope)
        jar = _cookies(scope)
        user: AccountView | None = None
        stale_session = False
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise errors.NotSignedIn(
                    _l("Send an API token as 'Authorization: Bearer <token>'."), code="invalid_token"
                )
            user = await members.account_for_api_token(token=token.strip())
            if user is None:
                raise errors.NotSignedIn(_l("This API token is not valid or has been revoked."), code="invalid_token")
        elif session_token := jar.get(SESSION_COOKIE):
            user = await members.account_for_session(token=session_token)
            stale_session = user is None
        scope["user"] = user

        # /health answers without reading the venue, so it says whether the database does.
        venue = await venues.settings() if scope["path"] != "/health" else None
        language = i18n.negotiate(
            chosen=jar.get(LANGUAGE_COOKIE),
            account_language=user.language if user else None,
            accept_language=headers.get("accept-language"),
            offered=venue.languages if venue else None,
        )
        state = scope.setdefault("state", {})
        state["language"] = language
        state["venue"] = venue
        state["flash_in"] = flash.decode(jar.get(flash.COOKIE), self.secret)
        token = i18n.set_language(language)
        zone_token = currency_token = None
        if venue is not None:
            # Dates and money on every page are the venue's, whatever zone the server runs in.
            zone_token = i18n.set_time_zone(venue.timezone)
            currency_token = i18n.set_currency(venue.currency)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableScopeHeaders.from_message(message)
                out = state.get("flash_out") or []
                shown = message["status"] == 200 and response_headers.get("content-type", "").startswith("text/html")
                if out:
                    kept = [] if shown else state["flash_in"]
                    self._cookie(response_headers, flash.COOKIE, flash.encode(kept + out, self.secret))
                elif state["flash_in"] and shown:
                    self._cookie(response_headers, flash.COOKIE, "", max_age=0)
                if stale_session:
                    self._cookie(response_headers, SESSION_COOKIE, "", max_age=0)
            await send(message)

        try:
            await next_app(scope, receive, send_wrapper)
        finally:
            i18n.reset_language(token)
            if zone_token is not None:
                i18n.reset_time_zone(zone_token)
            if currency_token is not None:
                i18n.reset_currency(currency_token)

    def _cookie(self, headers: MutableScopeHeaders, key: str, value: str, max_age: int | None = None) -> None:
        cookie = Cookie(
            key=key, value=value, path="/", httponly=True, samesite="lax", secure=self.secure, max_age=max_age
        )
        headers.add("set-cookie", cookie.to_header(header=""))


def session_cookie(token: str, *, secure: bool) -> Cookie:
    """The cookie that keeps a person signed in (after signing in, or joining)."""
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=int(members.SESSION_MAX.total_seconds()),
    )


def language_cookie(code: str, *, secure: bool) -> Cookie:
    """The browser's language for pages when nobody is signed in: set by the switch, and on
    signing in to the account's language, so it carries on after signing out."""
    return Cookie(
        key=LANGUAGE_COOKIE, value=code, path="/", max_age=365 * 24 * 3600, samesite="lax", httponly=True, secure=secure
    )


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> AccountView | None:
    return connection.scope.get("user")


def requires(capacity: rules.Role):
    """A guard: the signed-in person must be able to act as ``capacity``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        user = current_user(connection)
        if user is None:
            raise errors.NotSignedIn(_l("Sign in to see this page."), code="not_signed_in")
        if not rules.may_act_as(user.role, capacity):
            raise errors.NotAllowed(_l("Your account cannot see this page."), code="wrong_role")

    guard.__name__ = f"requires_{capacity.value}"
    return guard


signed_in = requires(rules.Role.member)
