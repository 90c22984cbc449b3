"""Every error becomes a response here: JSON ``{"code", "detail"}`` under /api/v1 (and for
other machine clients), an accessible page for people, a sign-in redirect for pages that
need one. Nothing a client sends may end as a 500."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException, ValidationException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from lending import errors
from lending.i18n import gettext as _
from lending.i18n import lazy_gettext as _l

log = logging.getLogger("lending")

_MACHINE_PREFIXES = ("/api/", "/webhooks/", "/health", "/schema")

_TITLES = {
    400: _l("This request could not be understood"),
    401: _l("Sign in to continue"),
    403: _l("You cannot see this page"),
    404: _l("Page not found"),
    405: _l("This address does not accept that request"),
    409: _l("That has changed in the meantime"),
    413: _l("That upload is too large"),
    422: _l("Check what you entered"),
    429: _l("Too many attempts"),
    500: _l("Sorry, something went wrong on our side"),
    503: _l("The library is unavailable for a moment"),
}

_HTTP_CODES = {
    400: "bad_request", 401: "not_signed_in", 403: "not_allowed", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_input",
    429: "too_many_attempts", 503: "unavailable",
}


def wants_json(request: Request) -> bool:
    if request.url.path.startswith(_MACHINE_PREFIXES):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    title = str(_TITLES.get(status, _TITLES[400] if status < 500 else _TITLES[500]))
    return Template(
        template_name="errors/error.html",
        context={"status": status, "title": title, "message": message},
        status_code=status,
        headers=headers,
        media_type="text/html",
    )


def _respond(request: Request, status: int, code: str, detail: str, extra: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    if wants_json(request):
        body: dict[str, Any] = {"code": code, "detail": detail}
        if extra:
            body.update(extra)
        return Response(content=body, status_code=status, headers=headers, media_type="application/json")
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(path=f"/login?next={quote(target, safe='')}", status_code=303)
    return _page(request, status, detail, headers)


def domain_error(request: Request, exc: errors.DomainError) -> Response:
    extra: dict[str, Any] = {}
    if exc.reasons:
        extra["reasons"] = [str(r) for r in exc.reasons]
    if exc.errors:
        extra["errors"] = {field: str(text) for field, text in exc.errors.items()}
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.TooManyAttempts) else None
    return _respond(request, exc.status, exc.code, str(exc.detail), extra, headers)


def http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if isinstance(exc, NotFoundException):
        return _respond(request, 404, "not_found", _("There is nothing at this address."))
    if isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail):
        return _respond(request, 403, "csrf_failed",
                        _("This form has expired or was not sent from this site. Go back, reload the page and try again."))
    if status == 400 and "malformed" in str(exc.detail).lower():
        return _respond(request, 400, "malformed_json", _("The request body is not valid JSON."))
    if isinstance(exc, ValidationException):
        problems = [
            {"field": item.get("key"), "message": item.get("message")}
            for item in (exc.extra or []) if isinstance(item, dict)
        ]
        return _respond(request, 400, "invalid_input", _("Some of the values sent are missing or not valid."),
                        {"errors": problems} if problems else None)
    if status >= 500:
        return server_error(request, exc)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else str(_TITLES.get(status, _TITLES[400]))
    return _respond(request, status, _HTTP_CODES.get(status, "bad_request"), detail, headers=exc.headers)


def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(request, HTTP_500_INTERNAL_SERVER_ERROR, "internal_error",
                    _("Sorry, something went wrong on our side. The problem has been logged; please try again."))


HANDLERS = {
    errors.DomainError: domain_error,
    HTTPException: http_error,
    Exception: server_error,
}
