"""Referrals sent by another system as a FHIR R4 ``ServiceRequest``: reading one into the
referral's details (pure: no database, no clock), the resource sent back, and the FHIR
``OperationOutcome`` that explains every problem. docs/fhir.md is the contract.

What is kept is the referral's minimum, as for a link worker's form: the name the person wants
to be called (never their family name), one email address or phone number, their language,
the free months and the date the code must be used by. A request that carries health
information (``reasonCode``, ``reasonReference``) is refused, so that none is ever stored; any
other element is ignored and not stored.

Consent to the referral is implied by an active request from the referrer. Consent to share
how it went with the referrer is given only by the extension ``CONSENT_SHARE_URL`` with
``valueBoolean: true``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime

from lending.i18n import lazy_gettext as _l
from lending.referrals import rules

SNOMED = "http://snomed.info/sct"
SOCIAL_PRESCRIBING = "871731000000106"  # Referral to social prescribing service
SOCIAL_PRESCRIBING_DISPLAY = "Referral to social prescribing service"
BCP47 = "urn:ietf:bcp:47"
UCUM = "http://unitsofmeasure.org"
CONSENT_SHARE_URL = "https://lending.example/fhir/StructureDefinition/consent-share"
CODE_SYSTEM = "https://lending.example/referral-code"
INTENTS = ("order", "plan", "proposal")
MONTH_UNITS = ("mo", "month", "months")
MEDIA_TYPES = ("application/fhir+json", "application/json")
MAX_BODY_BYTES = 64 * 1024
HEALTH_ELEMENTS = ("reasonCode", "reasonReference")

_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?$")

# The referral's fields (as the rules name their problems) and where they come from.
FIELD_EXPRESSIONS = {
    "name": "Patient.name",
    "contact_route": "Patient.telecom",
    "contact": "Patient.telecom",
    "language": "Patient.communication",
    "access_needs": "ServiceRequest",
    "need_category": "ServiceRequest",
    "months": "ServiceRequest.quantityQuantity",
    "redeem_by": "ServiceRequest.occurrencePeriod.end",
    "consent_referral": "ServiceRequest.status",
}

# A referral's state as a ServiceRequest's status: in use is still active (the free membership
# is the service); not used in time and withdrawn both end the request early.
STATUSES = {
    rules.Status.issued: "active",
    rules.Status.redeemed: "active",
    rules.Status.completed: "completed",
    rules.Status.expired: "revoked",
    rules.Status.withdrawn: "revoked",
}


@dataclass(frozen=True)
class Issue:
    """One entry of an OperationOutcome. ``code`` is a FHIR IssueType (invalid, structure,
    required, value, business-rule, login, forbidden, not-supported, too-long, not-found, ...)."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"


class Problem(Exception):
    """The request cannot be accepted: the HTTP status and every issue found."""

    def __init__(self, status: int, issues: list[Issue]) -> None:
        super().__init__(status)
        self.status = status
        self.issues = list(issues)

    def __str__(self) -> str:
        return "; ".join(str(issue.diagnostics) for issue in self.issues)


def operation_outcome(issues: list[Issue]) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": issue.severity,
                "code": issue.code,
                "diagnostics": str(issue.diagnostics),
                **({"expression": list(issue.expression)} if issue.expression else {}),
            }
            for issue in issues
        ],
    }


def problem(status: int, code: str, diagnostics: str, *expression: str) -> Problem:
    return Problem(status=status, issues=[Issue(code=code, diagnostics=diagnostics, expression=expression)])


def media_type_problem(content_type: str) -> Problem | None:
    if content_type.split(";", 1)[0].strip().lower() in MEDIA_TYPES:
        return None
    return problem(415, "not-supported", _l("Send the resource as JSON, with Content-Type: application/fhir+json."))


def parse_json(body: bytes) -> object:
    """The request body as JSON; Problem 400 (``structure``) when it is not JSON, 413 when too large."""
    if len(body) > MAX_BODY_BYTES:
        raise problem(
            413, "too-long", _l("A ServiceRequest can be at most %(size)d kilobytes.", size=MAX_BODY_BYTES // 1024)
        )
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise problem(400, "structure", _l("The request body is not valid JSON.")) from None


def _present(value: object) -> bool:
    """Whether an element carries anything: FHIR never sends empty elements, but a sender might."""
    if isinstance(value, dict):
        return any(_present(item) for item in value.values())
    if isinstance(value, list):
        return any(_present(item) for item in value)
    return value is not None and value != ""


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _name(patient: dict) -> str | None:
    """The name the person wants to be called: a HumanName's text, else its given names (a
    'usual' name first). The family name is never kept."""
    names = (
        [item for item in patient.get("name") or [] if isinstance(item, dict)]
        if isinstance(patient.get("name"), list)
        else []
    )
    names.sort(key=lambda item: 0 if item.get("use") == "usual" else 1)
    for item in names:
        if text := _text(item.get("text")):
            return text
        given = item.get("given")
        if isinstance(given, list) and (joined := " ".join(_text(part) for part in given if _text(part))):
            return joined
    return None


def _contact(patient: dict) -> tuple[str, str]:
    """The first email address or phone number, in the order given: (route, value)."""
    telecom = patient.get("telecom")
    for item in telecom if isinstance(telecom, list) else []:
        if not isinstance(item, dict) or not _text(item.get("value")):
            continue
        system = item.get("system")
        if system == "email":
            return "email", _text(item["value"])
        if system in ("phone", "sms"):
            return "phone", _text(item["value"])
    return "through_me", ""


def _language(patient: dict) -> str:
    """English or Welsh from Patient.communication (a preferred one first); English otherwise,
    as the library writes in only those two."""
    found = []
    communication = patient.get("communication")
    for item in communication if isinstance(communication, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("language"), dict):
            continue
        codings = item["language"].get("coding")
        for coding in codings if isinstance(codings, list) else []:
            if not isinstance(coding, dict) or coding.get("system", BCP47) != BCP47:
                continue
            primary = _text(coding.get("code")).split("-", 1)[0].lower()
            if primary in ("en", "cy"):
                found.append((0 if item.get("preferred") is True else 1, len(found), primary))
    return min(found)[2] if found else "en"


def _day(value: object) -> date | None:
    """A FHIR date or dateTime's calendar date as written; None if it is neither."""
    match = _DATE.match(value) if isinstance(value, str) else None
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def read_service_request(resource: object, *, default_months: int, default_redeem_by: date) -> rules.Details:
    """A ServiceRequest as the referral's details; Problem 422 listing every problem found.
    Whether the months and the date are within the venue's bounds is left to the rules that
    every referral passes (``details_issues`` words their answer)."""
    if not isinstance(resource, dict):
        raise problem(422, "structure", _l("Send one ServiceRequest resource as a JSON object."))
    if resource.get("resourceType") != "ServiceRequest":
        raise problem(
            422, "invalid", _l("Only a ServiceRequest resource can be sent here."), "ServiceRequest.resourceType"
        )
    issues: list[Issue] = []

    def add(code: str, diagnostics: str, expression: str) -> None:
        issues.append(Issue(code=code, diagnostics=diagnostics, expression=(expression,)))

    for element in HEALTH_ELEMENTS:
        if _present(resource.get(element)):
            add(
                "business-rule",
                _l(
                    "Do not send health information: the library never keeps a reason or "
                    "diagnosis. Remove %(element)s and send the request again.",
                    element=element,
                ),
                f"ServiceRequest.{element}",
            )
    status = resource.get("status")
    if not _text(status):
        add(
            "required",
            _l("Send the request's status; only an active request can be accepted."),
            "ServiceRequest.status",
        )
    elif status != "active":
        add(
            "value",
            _l("Only an active request can be accepted, not one whose status is %(status)s.", status=str(status)[:40]),
            "ServiceRequest.status",
        )
    intent = resource.get("intent")
    if not _text(intent):
        add("required", _l("Send the request's intent: order, plan or proposal."), "ServiceRequest.intent")
    elif intent not in INTENTS:
        add("value", _l("The intent must be order, plan or proposal."), "ServiceRequest.intent")
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list) or not codings:
        add(
            "required",
            _l(
                "Send the code %(code)s from %(system)s (referral to social prescribing service).",
                code=SOCIAL_PRESCRIBING,
                system=SNOMED,
            ),
            "ServiceRequest.code",
        )
    elif not any(
        isinstance(c, dict) and c.get("system") == SNOMED and c.get("code") == SOCIAL_PRESCRIBING for c in codings
    ):
        add(
            "value",
            _l(
                "The library accepts only referrals to a social prescribing service: the code must be "
                "%(code)s from %(system)s.",
                code=SOCIAL_PRESCRIBING,
                system=SNOMED,
            ),
            "ServiceRequest.code",
        )

    patient = _patient(resource, add)
    name = _name(patient) if patient is not None else None
    if patient is not None and name is None:
        add(
            "required",
            _l("Send the name the person wants to be called, as the Patient's name (text or given)."),
            "Patient.name",
        )

    months = default_months
    quantity = resource.get("quantityQuantity")
    if quantity is not None:
        value, unit = (
            (quantity.get("value"), quantity.get("code") or quantity.get("unit"))
            if isinstance(quantity, dict)
            else (None, None)
        )
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value != int(value)
            or unit not in MONTH_UNITS
        ):
            add(
                "value",
                _l('Send the free membership as a whole number of months, like {"value": 6, "unit": "mo"}.'),
                "ServiceRequest.quantityQuantity",
            )
        else:
            months = int(value)

    redeem_by = default_redeem_by
    period = resource.get("occurrencePeriod")
    if period is not None:
        end = period.get("end") if isinstance(period, dict) else None
        if end is not None:
            redeem_by = _day(end)
            if redeem_by is None:
                add(
                    "value",
                    _l("Send the date the code must be used by as a date, like 2027-01-31."),
                    "ServiceRequest.occurrencePeriod.end",
                )

    consent_share = False
    extensions = resource.get("extension")
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("url") == CONSENT_SHARE_URL:
            if not isinstance(extension.get("valueBoolean"), bool):
                add(
                    "value",
                    _l("The consent-to-share extension takes valueBoolean: true or false."),
                    "ServiceRequest.extension",
                )
            else:
                consent_share = extension["valueBoolean"]

    if issues:
        raise Problem(status=422, issues=issues)
    route, contact = _contact(patient)
    return rules.Details(
        name=name,
        contact_route=route,
        contact=contact,
        language=_language(patient),
        months=months,
        redeem_by=redeem_by,
        consent_referral=True,
        consent_share=consent_share,
    )


def _patient(resource: dict, add) -> dict | None:
    """The contained Patient that ``subject`` points to (``#id``)."""
    subject = resource.get("subject")
    reference = _text(subject.get("reference")) if isinstance(subject, dict) else ""
    if not reference:
        add(
            "required",
            _l('Send the person as a contained Patient, with subject.reference set to its id, like "#p1".'),
            "ServiceRequest.subject",
        )
        return None
    if not reference.startswith("#"):
        add(
            "not-supported",
            _l(
                "The library cannot look people up: send the person as a contained Patient and "
                'set subject.reference to "#" and its id.'
            ),
            "ServiceRequest.subject",
        )
        return None
    contained = resource.get("contained")
    for item in contained if isinstance(contained, list) else []:
        if isinstance(item, dict) and item.get("resourceType") == "Patient" and item.get("id") == reference[1:]:
            return item
    add(
        "invalid",
        _l("subject.reference points to no contained Patient with the id %(id)s.", id=reference[1:60]),
        "ServiceRequest.contained",
    )
    return None


def details_issues(problems: dict[str, str]) -> list[Issue]:
    """The rules' problems with a referral's details (by field), as OperationOutcome issues."""
    return [
        Issue(code="value", diagnostics=text, expression=(FIELD_EXPRESSIONS.get(name, "ServiceRequest"),))
        for name, text in problems.items()
    ]


def service_request(
    *, code: str, status: str, intent: str, months: int, redeem_by: date, issued_at: datetime, consent_share: bool
) -> dict:
    """The referral as the ServiceRequest sent back: its code is both the id and an identifier.
    The person's details are not repeated."""
    return {
        "resourceType": "ServiceRequest",
        "id": code,
        "identifier": [{"system": CODE_SYSTEM, "value": code}],
        "status": STATUSES.get(status, "unknown"),
        "intent": intent,
        "code": {"coding": [{"system": SNOMED, "code": SOCIAL_PRESCRIBING, "display": SOCIAL_PRESCRIBING_DISPLAY}]},
        "occurrencePeriod": {"end": redeem_by.isoformat()},
        "quantityQuantity": {"value": months, "unit": "mo", "system": UCUM, "code": "mo"},
        "authoredOn": issued_at.isoformat(),
        "extension": [{"url": CONSENT_SHARE_URL, "valueBoolean": consent_share}],
    }
