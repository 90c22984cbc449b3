"""``create_app(settings)``: the only place everything is wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router, asgi
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import Receive, Scope, Send

from admin import build_admin
from lending import __version__, db, errors, schema
from lending.catalog import controllers as catalog
from lending.i18n import lazy_gettext as _l
from lending.loans import controllers as loans
from lending.mail.smtp import Mailer
from lending.members import controllers as members
from lending.members.rules import Role, may_act_as
from lending.memberships import controllers as memberships
from lending.memberships.gateway import StripeGateway
from lending.paths import static_dir
from lending.referrals import controllers as referrals
from lending.settings import Settings
from lending.suggestions import controllers as suggestions
from lending.venues import controllers as venues
from lending.web import auth, csrf, security
from lending.web import controllers as web
from lending.web.errors import HANDLERS, document_api_errors
from lending.web.templating import template_config


def _admin_handler(settings: Settings):
    admin_app = build_admin(production=settings.secure_cookies)

    @asgi(
        "/admin/",
        is_mount=True,
        copy_scope=True,
        include_in_schema=False,
        name="admin",
        opt={"exclude_from_csrf": True},
    )
    async def admin(scope: Scope, receive: Receive, send: Send) -> None:
        """Coordinators only; everyone signs in through /login, never the admin's own form."""
        user = scope.get("user")
        if user is None and scope["method"] == "GET" and not scope["path"].startswith(("/api/", "/public/")):
            # A person opening the admin: send them through the app's sign-in, then back here.
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", b"/login?next=%2Fadmin%2F"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if user is None:
            raise errors.NotSignedIn(_l("Sign in to see this page."), code="not_signed_in")
        if not may_act_as(user.role, Role.coordinator):
            raise errors.NotAllowed(_l("Only coordinators can use the admin."), code="wrong_role")
        await admin_app(scope, receive, send)

    return admin


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    schema.configure(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.start()
        try:
            yield
        finally:
            await app.state.payments.close()
            await db.stop()

    api = Router(
        path="/api/v1",
        route_handlers=[
            *members.API_ROUTES,
            *catalog.API_ROUTES,
            *suggestions.API_ROUTES,
            *memberships.API_ROUTES,
            *loans.API_ROUTES,
            *referrals.API_ROUTES,
            *venues.API_ROUTES,
        ],
    )
    app = Litestar(
        route_handlers=[
            *web.ROUTES,
            *members.ROUTES,
            *catalog.ROUTES,
            *loans.ROUTES,
            *referrals.ROUTES,
            *venues.ROUTES,
            *suggestions.ROUTES,
            *memberships.ROUTES,
            api,
            _admin_handler(settings),
            create_static_files_router(
                path="/static", directories=[static_dir()], name="static", include_in_schema=False
            ),
        ],
        middleware=[
            auth.RequestContextMiddleware(secret=settings.secret_key, secure=settings.secure_cookies),
            csrf.middleware(secret=settings.secret_key, secure=settings.secure_cookies),
        ],
        exception_handlers=HANDLERS,
        template_config=template_config(reload=settings.debug),
        openapi_config=OpenAPIConfig(
            title="lending",
            version=__version__,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            description="A library of things. Authenticate with the browser session (send the CSRF token in "
            "X-CSRFToken) or with 'Authorization: Bearer <token>' from `lending token create`. "
            'Errors are {"code", "detail"}.',
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"bearer": []}],
        ),
        lifespan=[lifespan],
        debug=False,
    )
    document_api_errors(app)
    # Around the whole app, not in ``middleware=[...]``: route middleware never sees a request
    # that matched no route (404, 405) nor an error raised by the middleware above (web/security.py).
    app.asgi_handler = security.SecurityHeadersMiddleware(
        app.asgi_handler,
        base_url=settings.base_url,
        form_targets=security.checkout_origins(
            stripe_secret_key=settings.stripe_secret_key, stripe_api_base=settings.stripe_api_base
        ),
    )
    app.state.settings = settings
    app.state.payments = payments_gateway(settings)
    app.state.mailer = Mailer.from_settings(settings)
    return app


def payments_gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(
        secret_key=settings.stripe_secret_key,
        webhook_secret=settings.stripe_webhook_secret,
        api_base=settings.stripe_api_base,
    )


def create_app_from_env() -> Litestar:
    """The factory the server calls in each worker process."""
    return create_app(Settings.from_env())
