"""Every error becomes a response here: JSON ``{"code", "detail"}`` under /api/v1 (and for
other machine clients), an accessible page for people, a sign-in redirect for pages that
need one. Nothing a client sends may end as a 500."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from lending import errors, i18n
from lending.i18n import lazy_gettext as _l
from lending.web import auth

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


def _language(request: Request) -> str:
    """The reader's language. Requests that matched no route (a 404, a 405) never passed
    through the request middleware, so it is worked out here the same way."""
    chosen = request.scope.get("state", {}).get("language")
    if chosen:
        return chosen
    return i18n.negotiate(chosen=request.cookies.get(auth.LANGUAGE_COOKIE), account_language=None,
                          accept_language=request.headers.get("accept-language"))


def _page(request: Request, status: int, message: str, headers: dict[str, str] | None) -> Response:
    # Rendered here, not lazily, so the page is in the reader's language even when the error
    # arose outside the middleware that sets it.
    title = str(_TITLES.get(status, _TITLES[400] if status < 500 else _TITLES[500]))
    html = request.app.template_engine.get_template("errors/error.html").render(
        request=request, status=status, title=title, message=message)
    return Response(content=html, status_code=status, headers=headers, media_type=MediaType.HTML)


def _respond(request: Request, status: int, code: str, detail: object, extra: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    token = i18n.set_language(_language(request))
    try:
        text = str(detail)
        if wants_json(request):
            body: dict[str, Any] = {"code": code, "detail": text}
            body.update({key: _text(value) for key, value in (extra or {}).items()})
            return Response(content=body, status_code=status, headers=headers, media_type=MediaType.JSON)
        if status == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return Redirect(path=f"/login?next={quote(target, safe='')}", status_code=303)
        return _page(request, status, text, headers)
    finally:
        i18n.reset_language(token)


def _text(value: Any) -> Any:
    """Lazy messages inside an error body, turned into text in the reader's language."""
    if isinstance(value, dict):
        return {key: _text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_text(item) for item in value]
    return str(value) if isinstance(value, i18n.LazyText) else value


def domain_error(request: Request, exc: errors.DomainError) -> Response:
    extra: dict[str, Any] = {}
    if exc.reasons:
        extra["reasons"] = list(exc.reasons)
    if exc.errors:
        extra["errors"] = dict(exc.errors)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.TooManyAttempts) else None
    return _respond(request, exc.status, exc.code, exc.detail, extra, headers)


def http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if isinstance(exc, NotFoundException):
        return _respond(request, 404, "not_found", _l("There is nothing at this address."))
    if isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail):
        return _respond(request, 403, "csrf_failed",
                        _l("This form has expired or was not sent from this site. Go back, reload the page and try again."))
    if status == 400 and "malformed" in str(exc.detail).lower():
        return _respond(request, 400, "malformed_json", _l("The request body is not valid JSON."))
    if isinstance(exc, ValidationException):
        problems = [
            {"field": item.get("key"), "message": item.get("message")}
            for item in (exc.extra or []) if isinstance(item, dict)
        ]
        return _respond(request, 400, "invalid_input", _l("Some of the values sent are missing or not valid."),
                        {"errors": problems} if problems else None)
    if status >= 500:
        return server_error(request, exc)
    # Litestar fills in the English reason phrase ("Method Not Allowed"); say it in our words.
    generic = not exc.detail or exc.detail == HTTPStatus(status).phrase
    detail = _TITLES.get(status, _TITLES[400]) if generic else exc.detail
    return _respond(request, status, _HTTP_CODES.get(status, "bad_request"), detail, headers=exc.headers)


def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(request, HTTP_500_INTERNAL_SERVER_ERROR, "internal_error",
                    _l("Sorry, something went wrong on our side. The problem has been logged; please try again."))


HANDLERS = {
    errors.DomainError: domain_error,
    HTTPException: http_error,
    Exception: server_error,
}
