"""Domain errors with stable codes. Controllers turn them into responses in one place."""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        reasons: Sequence[str] | None = None,
        field: str | None = None,
        errors: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.reasons = list(reasons or [])
        # Problems by form field, so a page can show each one beside its control.
        self.errors = dict(errors or {})
        if field and field not in self.errors:
            self.errors[field] = detail


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"


class NotSignedIn(DomainError):
    status = 401
    code = "not_signed_in"


class NotAllowed(DomainError):
    status = 403
    code = "not_allowed"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class RuleViolation(DomainError):
    status = 422
    code = "rule_violation"


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, detail: str, *, retry_after: int, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A service we depend on (the payment provider, the mail server) did not answer."""

    status = 503
    code = "unavailable"
