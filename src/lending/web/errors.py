"""Every error becomes a response here: JSON ``{"code", "detail"}`` under /api/v1 (and for
other machine clients), an accessible page for people, a sign-in redirect for pages that
need one. Nothing a client sends may end as a 500."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Litestar, Request, Response
from litestar.constants import RESERVED_KWARGS
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from lending import db, errors, i18n
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
    400: "bad_request",
    401: "not_signed_in",
    403: "not_allowed",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_attempts",
    503: "unavailable",
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
    return i18n.negotiate(
        chosen=request.cookies.get(auth.LANGUAGE_COOKIE),
        account_language=None,
        accept_language=request.headers.get("accept-language"),
    )


def _page(request: Request, status: int, message: str, headers: dict[str, str] | None) -> Response:
    # Rendered here, not lazily, so the page is in the reader's language even when the error
    # arose outside the middleware that sets it.
    title = str(_TITLES.get(status, _TITLES[400] if status < 500 else _TITLES[500]))
    html = request.app.template_engine.get_template("errors/error.html").render(
        request=request, status=status, title=title, message=message
    )
    return Response(content=html, status_code=status, headers=headers, media_type=MediaType.HTML)


def _respond(
    request: Request,
    status: int,
    code: str,
    detail: object,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
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
        return _respond(
            request,
            403,
            "csrf_failed",
            _l("This form has expired or was not sent from this site. Go back, reload the page and try again."),
        )
    if status == 400 and "malformed" in str(exc.detail).lower():
        return _respond(request, 400, "malformed_json", _l("The request body is not valid JSON."))
    if isinstance(exc, ValidationException):
        problems = [
            {"field": item.get("key"), "message": item.get("message")}
            for item in (exc.extra or [])
            if isinstance(item, dict)
        ]
        return _respond(
            request,
            400,
            "invalid_input",
            _l("Some of the values sent are missing or not valid."),
            {"errors": problems} if problems else None,
        )
    if status >= 500:
        return server_error(request, exc)
    # Litestar fills in the English reason phrase ("Method Not Allowed"); say it in our words.
    generic = not exc.detail or exc.detail == HTTPStatus(status).phrase
    detail = _TITLES.get(status, _TITLES[400]) if generic else exc.detail
    return _respond(request, status, _HTTP_CODES.get(status, "bad_request"), detail, headers=exc.headers)


def refused_input(exc: Exception) -> errors.InvalidInput | None:
    """The error to answer with when the database refused a value the request carried (a number
    too large, a NUL character): bad input, never a 500."""
    if not db.refuses_value(exc):
        return None
    log.info("the database refused a value: %s", exc)
    return errors.InvalidInput(
        _l("A value sent is too large, too long or has a character that cannot be stored."), code="invalid_value"
    )


def server_error(request: Request, exc: Exception) -> Response:
    if (refused := refused_input(exc)) is not None:
        return domain_error(request, refused)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        _l("Sorry, something went wrong on our side. The problem has been logged; please try again."),
    )


HANDLERS = {errors.DomainError: domain_error, HTTPException: http_error, Exception: server_error}


# --- the API's errors in the OpenAPI document -----------------------------------------------------


class FieldError(msgspec.Struct):
    field: str | None
    message: str


class ErrorReason(msgspec.Struct):
    code: str
    detail: str


class ErrorOut(msgspec.Struct):
    """Every error of the JSON API: a stable snake_case ``code`` and a sentence for a person. A
    refused loan adds its ``reasons``; bad input may add the ``errors`` by field."""

    code: str
    detail: str
    reasons: list[ErrorReason | str] | msgspec.UnsetType = msgspec.UNSET
    errors: dict[str, str] | list[FieldError] | msgspec.UnsetType = msgspec.UNSET


_ERROR_DESCRIPTIONS = {
    400: "Not understood: invalid_input (a value of the wrong type or shape, with errors by field) or malformed_json",
    401: "not_signed_in, or invalid_token for a bearer token that is malformed, unknown or revoked",
    403: "not_allowed or wrong_role; csrf_failed for a request that relies on the session cookie without the token",
    404: "Something the request names does not exist",
    409: "Conflicts with the current state",
    422: "Read but not valid: invalid_input or a rule's own code, with errors by field or reasons",
    429: "too_many_attempts: wait for the seconds in Retry-After",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for these error statuses, each a ``{"code", "detail"}`` body."""
    return {
        status: ResponseSpec(
            data_container=ErrorOut,
            generate_examples=False,
            description=_ERROR_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        )
        for status in statuses
    }


_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def document_api_errors(app: Litestar, prefix: str = "/api/") -> None:
    """Add to each API operation's OpenAPI description the errors it can answer with, from
    what it takes: any request may carry a bad token (401); anything sent may be malformed
    (400) or invalid (422); a path or a body names things that may not exist (404); a guard
    or a change (CSRF) may refuse (403); a change may conflict (409). A handler's own
    ``responses`` win (the FHIR routes answer with an OperationOutcome)."""
    for route in app.routes:
        if not route.path.startswith(prefix):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.include_in_schema:
                continue
            parameters = set(handler.parsed_fn_signature.parameters)
            has_body = "data" in parameters
            has_input = has_body or bool(parameters - RESERVED_KWARGS - set(handler.resolve_dependencies()))
            changes = bool(set(handler.http_methods) & _UNSAFE_METHODS)
            statuses = {401}
            if has_input:
                statuses |= {400, 422}
            if has_body or route.path_parameters:
                statuses.add(404)
            if changes or handler.resolve_guards():
                statuses.add(403)
            if changes:
                statuses.add(409)
            handler.responses = {**error_responses(*sorted(statuses)), **(handler.responses or {})}
