"""CSRF protection for forms and cookie-authenticated API calls.

Litestar's double-submit cookie, under our own cookie name (piccolo_admin's is ``csrftoken``),
with two rules added: a request carrying a bearer token is not exposed to CSRF, because a
browser never attaches that header by itself, so it needs no CSRF token; and an API call from
nobody signed in carries no authority a forged request could borrow (every unsafe API route
needs someone signed in), so it goes on to the guard, which answers 401 ``not_signed_in`` as
the contract says rather than a CSRF failure.
"""

from __future__ import annotations

from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Headers
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import Receive, Scope, Send

COOKIE = "lending_csrf"
FORM_FIELD = "_csrf_token"
HEADER = "x-csrftoken"


class BearerAwareCSRFMiddleware(CSRFMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            Headers.from_scope(scope).get("authorization")
            or (scope.get("user") is None and scope["path"].startswith("/api/"))
        ):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def middleware(*, secret: str, secure: bool) -> DefineMiddleware:
    config = CSRFConfig(
        secret=secret,
        cookie_name=COOKIE,
        header_name=HEADER,
        cookie_secure=secure,
        cookie_samesite="lax",
        exclude=["^/webhooks/", "^/health$", "^/static/"],
    )
    return DefineMiddleware(BearerAwareCSRFMiddleware, config=config)
