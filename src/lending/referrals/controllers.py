"""Link workers' pages (issue, follow, withdraw, extend, print a voucher), redeeming a code
(online or at the desk), the coordinator's organisations and referral settings, and the API."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Annotated

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect, Template

from lending import clock, codes, errors, i18n
from lending.adapters import qr
from lending.i18n import gettext as _
from lending.i18n import lazy_gettext as _l
from lending.members import organisations
from lending.members import services as members
from lending.members.rules import Role, may_act_as
from lending.memberships import tiers
from lending.referrals import fhir, reports, rules
from lending.referrals import services as referrals
from lending.venues import rules as venue_rules
from lending.web import auth, flash
from lending.web import errors as web_errors
from lending.web.auth import current_user, requires, signed_in
from lending.web.clients import client_address
from lending.web.forms import form_data


def _details(data: dict) -> rules.Details:
    """The issue form (or the API's JSON), read into Details; unreadable values become ones the
    rules refuse, so every problem is reported together."""
    try:
        months = int(str(data.get("months", "")).strip())
    except ValueError:
        months = None
    try:
        redeem_by = venue_rules.parse_date(str(data.get("redeem_by", "")))
    except ValueError:
        redeem_by = None
    yes = (True, "yes", "on", "true", "1")
    return rules.Details(
        name=str(data.get("name", "")),
        contact_route=str(data.get("contact_route", "")),
        contact=str(data.get("contact", "") or ""),
        language=str(data.get("language", "en") or "en"),
        access_needs=str(data.get("access_needs", "") or ""),
        need_category=str(data.get("need_category", "") or ""),
        months=months,
        redeem_by=redeem_by,
        consent_referral=data.get("consent_referral") in yes,
        consent_share=data.get("consent_share") in yes,
    )


async def _index_context(request: Request, values: dict, problems: dict, error: str | None) -> dict:
    from datetime import timedelta

    user = current_user(request)
    config = await referrals.settings()
    today = venue_rules.local_date(clock.now(), i18n.current_time_zone())
    return {
        "account": user,
        "referrals": await referrals.list_referrals(viewer=user),
        "config": config,
        "values": {
            "months": config.months_options[len(config.months_options) // 2],
            "redeem_by": (today + timedelta(days=config.redeem_days)).isoformat(),
            "language": "en",
            "contact_route": "email",
            **values,
        },
        "errors": problems,
        "error": error,
        "labels": rules.STATUS_LABELS,
        "needs": rules.NEED_CATEGORIES,
        "routes": rules.CONTACT_ROUTES,
    }


@get("/", name="referrals:index", include_in_schema=False)
async def index(request: Request) -> Template:
    return Template(template_name="referrals/index.html", context=await _index_context(request, {}, {}, None))


@post("/", name="referrals:issue", include_in_schema=False)
async def issue(request: Request) -> Response:
    data = await form_data(request)
    try:
        referral = await referrals.issue_referral(issuer=current_user(request), details=_details(data))
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(
            template_name="referrals/index.html",
            status_code=exc.status,
            context=await _index_context(request, data, exc.errors, str(exc.detail)),
        )
    flash.add(
        request.scope,
        _("Referral issued. Give them the code %(code)s, or print the voucher.", code=codes.display(referral.code)),
    )
    return Redirect(path=f"/referrals/{referral.code}", status_code=303)


@get("/{code:str}", name="referrals:show", include_in_schema=False)
async def show(request: Request, code: FromPath[str]) -> Template:
    referral = await referrals.get_referral(viewer=current_user(request), code=code)
    return Template(
        template_name="referrals/show.html",
        context={
            "referral": referral,
            "labels": rules.STATUS_LABELS,
            "needs": rules.NEED_CATEGORIES,
            "routes": rules.CONTACT_ROUTES,
            "config": await referrals.settings(),
            "outcome": await referrals.outcome_of(referral=referral),
        },
    )


@get("/{code:str}/outcome.txt", name="referrals:outcome", include_in_schema=False)
async def outcome_download(request: Request, code: FromPath[str]) -> Response:
    """How it went, as a short message to file with the referrer's notes."""
    result = await referrals.outcome(viewer=current_user(request), code=code)
    return Response(
        content=referrals.outcome_message(result),
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="referral-{result.code}.txt"',
            "Cache-Control": "no-store",
        },
    )


@get("/{code:str}/voucher", name="referrals:voucher", include_in_schema=False)
async def voucher(request: Request, code: FromPath[str], lang: FromQuery[str] = "") -> Template:
    referral = await referrals.get_referral(viewer=current_user(request), code=code)
    language = lang if lang in i18n.LANGUAGES else referral.language
    i18n.set_language(language)  # the voucher is in the person's language, whatever the link worker reads
    url = f"{request.app.state.settings.base_url}/r/{referral.code}"
    return Template(
        template_name="referrals/voucher.html",
        context={"referral": referral, "qr_svg": qr.qr_svg(url).decode(), "url": url, "voucher_language": language},
    )


@post("/{code:str}/withdraw", name="referrals:withdraw", include_in_schema=False)
async def withdraw(request: Request, code: FromPath[str]) -> Response:
    try:
        await referrals.withdraw(viewer=current_user(request), code=code)
        flash.add(request.scope, _("The referral is withdrawn; its code no longer works."))
    except errors.Conflict as exc:
        flash.add(request.scope, str(exc.detail), "error")
    return Redirect(path=f"/referrals/{codes.normalise(code)}", status_code=303)


@post("/{code:str}/extend", name="referrals:extend", include_in_schema=False)
async def extend(request: Request, code: FromPath[str]) -> Response:
    data = await form_data(request)
    months = int(data["months"]) if data.get("months", "").isdigit() else None
    try:
        redeem_by = venue_rules.parse_date(data["redeem_by"]) if data.get("redeem_by") else None
        await referrals.extend(viewer=current_user(request), code=code, months=months, redeem_by=redeem_by)
        flash.add(request.scope, _("The referral is extended."))
    except ValueError as exc:
        flash.add(request.scope, str(exc.args[0]) if exc.args else _("Enter a date like 2027-01-31."), "error")
    except (errors.InvalidInput, errors.Conflict) as exc:
        flash.add(request.scope, str(exc.detail), "error")
    return Redirect(path=f"/referrals/{codes.normalise(code)}", status_code=303)


# --- redeeming --------------------------------------------------------------------------------


@get("/r/{code:str}", name="referrals:voucher_target", include_in_schema=False)
async def voucher_target(request: Request, code: FromPath[str]) -> Response:
    """Where a voucher's QR leads."""
    return Redirect(path=f"/redeem?code={codes.normalise(code)}", status_code=303)


@get("/redeem", name="referrals:redeem_page", include_in_schema=False)
async def redeem_page(request: Request, code: FromQuery[str] = "") -> Template:
    return Template(
        template_name="referrals/redeem.html",
        context={
            "values": {"code": codes.normalise(code) or code.strip()[:20], "language": i18n.current_language()},
            "errors": {},
            "error": None,
            "user": current_user(request),
        },
    )


@post("/redeem", name="referrals:redeem", include_in_schema=False)
async def redeem_submit(request: Request) -> Response:
    data = await form_data(request)
    user = current_user(request)
    try:
        if user is not None:
            if user.role != Role.member.value:
                raise errors.RuleViolation(_l("Referral codes are for members' accounts."), code="not_a_member")
            membership = await referrals.redeem(
                code=data.get("code", ""), member_id=user.id, address=client_address(request)
            )
            token = ""
        else:
            _account, membership, token = await referrals.join_with_code(
                code=data.get("code", ""),
                name=data.get("name", ""),
                email=data.get("email", ""),
                password=data.get("password", ""),
                language=data.get("language") or i18n.current_language(),
                address=client_address(request),
            )
    except (errors.InvalidInput, errors.Conflict, errors.RuleViolation, errors.NotFound, errors.TooManyAttempts) as exc:
        data.pop("password", None)
        return Template(
            template_name="referrals/redeem.html",
            status_code=exc.status,
            context={"values": data, "errors": exc.errors, "error": str(exc.detail), "user": user},
        )
    flash.add(
        request.scope,
        _(
            "Welcome! Your free membership is active until %(date)s: show your card at the counter to borrow.",
            date=i18n.format_date(membership.ends_at),
        ),
    )
    response = Redirect(path="/account", status_code=303)
    if token:
        response.set_cookie(auth.session_cookie(token, secure=request.app.state.settings.secure_cookies))
    return response


@post("/members/{member_id:int}/referral", name="referrals:desk_redeem", include_in_schema=False)
async def desk_redeem(request: Request, member_id: FromPath[int]) -> Response:
    """A volunteer redeems a code with the person at the counter. The desk learns only that the
    membership is active, never that it came from a referral."""
    data = await form_data(request)
    try:
        await referrals.redeem(
            code=data.get("code", ""),
            member_id=member_id,
            address=client_address(request),
            actor_id=current_user(request).id,
        )
        flash.add(request.scope, _("The code is accepted: the membership is active."))
    except (errors.Conflict, errors.RuleViolation, errors.NotFound, errors.TooManyAttempts) as exc:
        flash.add(request.scope, str(exc.detail), "error")
    return Redirect(path=f"/desk/members/{member_id}", status_code=303)


async def _organisations_context(values: dict, problems: dict, error: str | None) -> dict:
    known = await organisations.list_organisations()
    link_workers = await members.list_accounts(role=Role.link_worker.value)
    counts = {o.id: sum(1 for a in link_workers if a.organisation_id == o.id) for o in known}
    config = await referrals.settings()
    free_tiers = [(tier.id, tier.name) for tier in await tiers.list_tiers(include_inactive=True) if tier.allow_free]
    return {
        "organisations": known,
        "counts": counts,
        "kind_options": list(organisations.KIND_LABELS.items()),
        "values": values,
        "config": config,
        "tier_options": [("", _("Choose a membership")), *free_tiers],
        "errors": problems,
        "error": error,
    }


@get("/", name="referrals:organisations", include_in_schema=False)
async def organisations_page(request: Request) -> Template:
    return Template(template_name="referrals/organisations.html", context=await _organisations_context({}, {}, None))


@post("/settings", name="referrals:settings", include_in_schema=False)
async def settings_submit(request: Request) -> Response:
    data = await form_data(request)
    try:
        await referrals.save_settings(
            tier_id=int(data["tier"]) if data.get("tier", "").isdigit() else None,
            months_options=data.get("months_options", ""),
            redeem_days=data.get("redeem_days", ""),
            erase_after_days=data.get("erase_after_days", ""),
            actor_id=current_user(request).id,
        )
    except errors.InvalidInput as exc:
        return Template(
            template_name="referrals/organisations.html",
            status_code=exc.status,
            context=await _organisations_context(data, exc.errors, str(exc.detail)),
        )
    flash.add(request.scope, _("The referral settings are saved."))
    return Redirect(path="/manage/organisations#settings", status_code=303)


@post("/", name="referrals:organisations_create", include_in_schema=False)
async def organisations_create(request: Request) -> Response:
    data = await form_data(request)
    try:
        organisation = await organisations.create_organisation(
            name=data.get("name", ""), kind=data.get("kind", "other"), actor_id=current_user(request).id
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(
            template_name="referrals/organisations.html",
            context=await _organisations_context(data, exc.errors, str(exc.detail)),
            status_code=exc.status,
        )
    flash.add(request.scope, _("%(name)s is added.", name=organisation.name))
    return Redirect(path="/manage/organisations", status_code=303)


# --- the impact report ------------------------------------------------------------------------
# Aggregates only, small numbers suppressed (see referrals.reports). Coordinators read every
# organisation's figures at /manage/impact; link workers their own at /referrals/impact.

FromDay = Annotated[str | None, QueryParameter(name="from", description="The first day, like 2026-01-01")]
ToDay = Annotated[str | None, QueryParameter(name="to", description="The last day, like 2026-12-31")]


def _month_label(month: date) -> str:
    from babel.dates import format_date

    return format_date(month, format="LLLL y", locale="cy_GB" if i18n.current_language() == "cy" else "en_GB")


async def _impact_page(request: Request, from_text: str | None, to_text: str | None, base: str) -> Template:
    values = {"from": (from_text or "").strip()[:20], "to": (to_text or "").strip()[:20]}
    context = {
        "report": None,
        "values": values,
        "errors": {},
        "error": None,
        "base": base,
        "back": "/manage" if base.startswith("/manage") else "/referrals/",
        "month_label": _month_label,
    }
    try:
        from_day, to_day = reports.parse_period(from_text, to_text)
        report = await reports.impact(viewer=current_user(request), from_day=from_day, to_day=to_day)
    except errors.InvalidInput as exc:
        return Template(
            template_name="referrals/impact.html",
            status_code=exc.status,
            context={**context, "errors": exc.errors, "error": str(exc.detail)},
        )
    values = {"from": report.from_day.isoformat(), "to": report.to_day.isoformat()}
    return Template(template_name="referrals/impact.html", context={**context, "report": report, "values": values})


async def _impact_csv(request: Request, from_text: str | None, to_text: str | None) -> Response:
    from_day, to_day = reports.parse_period(from_text, to_text)
    report = await reports.impact(viewer=current_user(request), from_day=from_day, to_day=to_day)
    filename = f"referral-impact-{report.from_day.isoformat()}-to-{report.to_day.isoformat()}.csv"
    return Response(
        content=reports.impact_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@get("/impact", name="referrals:impact", include_in_schema=False)
async def impact_page(request: Request, from_text: FromDay = None, to_text: ToDay = None) -> Template:
    return await _impact_page(request, from_text, to_text, "/referrals/impact")


@get("/impact.csv", name="referrals:impact_csv", include_in_schema=False)
async def impact_csv(request: Request, from_text: FromDay = None, to_text: ToDay = None) -> Response:
    return await _impact_csv(request, from_text, to_text)


@get("/impact", name="referrals:manage_impact", include_in_schema=False)
async def manage_impact_page(request: Request, from_text: FromDay = None, to_text: ToDay = None) -> Template:
    return await _impact_page(request, from_text, to_text, "/manage/impact")


@get("/impact.csv", name="referrals:manage_impact_csv", include_in_schema=False)
async def manage_impact_csv(request: Request, from_text: FromDay = None, to_text: ToDay = None) -> Response:
    return await _impact_csv(request, from_text, to_text)


# --- JSON API ---------------------------------------------------------------------------------


class ReferralIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    contact_route: str
    months: int
    redeem_by: str
    consent_referral: bool
    contact: str = ""
    language: str = "en"
    access_needs: str = ""
    need_category: str = ""
    consent_share: bool = False


class ReferralOut(msgspec.Struct):
    code: str
    status: str
    expires_at: str  # the last day the code can be used, in the venue's days
    months: int
    organisation: str
    name: str
    redeemed: bool


class ReferralList(msgspec.Struct):
    referrals: list[ReferralOut]


class RedeemIn(msgspec.Struct, forbid_unknown_fields=True):
    member_id: int | None = None  # a volunteer redeeming for a member at the counter


class RedeemOut(msgspec.Struct):
    status: str
    ends_at: str


def referral_out(referral: referrals.ReferralView) -> ReferralOut:
    return ReferralOut(
        code=referral.code,
        status=referral.status,
        expires_at=referral.redeem_by.isoformat(),
        months=referral.months,
        organisation=referral.organisation_name,
        name=referral.name,
        redeemed=referral.redeemed_at is not None,
    )


@post(
    "/referrals",
    name="api:referrals_create",
    guards=[requires(Role.link_worker)],
    tags=["referrals"],
    summary="Issue a referral for your organisation",
)
async def api_issue(request: Request, data: JSONBody[ReferralIn]) -> Response[ReferralOut]:
    referral = await referrals.issue_referral(
        issuer=current_user(request), details=_details(msgspec.structs.asdict(data))
    )
    return Response(content=referral_out(referral), status_code=201)


@get(
    "/referrals",
    name="api:referrals_list",
    guards=[requires(Role.link_worker)],
    tags=["referrals"],
    summary="Your organisation's referrals (all of them for a coordinator)",
)
async def api_list(request: Request) -> ReferralList:
    return ReferralList(
        referrals=[referral_out(r) for r in await referrals.list_referrals(viewer=current_user(request))]
    )


@post(
    "/referrals/{code:str}/redeem",
    name="api:referrals_redeem",
    guards=[signed_in],
    tags=["referrals"],
    status_code=200,
    summary="Use a referral code: an active free membership (409 referral_used)",
    responses=web_errors.error_responses(429),
)  # too many codes tried from one address
async def api_redeem(request: Request, code: FromPath[str], data: JSONBody[RedeemIn]) -> RedeemOut:
    user = current_user(request)
    if data.member_id is not None and data.member_id != user.id:
        if not may_act_as(user.role, Role.volunteer):
            raise errors.NotAllowed(_l("You can only use a code for yourself."), code="not_allowed")
        member_id = data.member_id
    elif user.role == Role.member.value:
        member_id = user.id
    else:
        raise errors.InvalidInput(
            _l("Send the member_id of the member at the counter."), code="member_required", field="member_id"
        )
    membership = await referrals.redeem(
        code=code, member_id=member_id, address=client_address(request), actor_id=user.id
    )
    return RedeemOut(status=membership.status, ends_at=membership.ends_at.isoformat())


class ImpactCounts(msgspec.Struct):
    issued: int | None
    redeemed: int | None
    in_use: int | None
    take_up_percent: int | None


class ImpactMonth(ImpactCounts, kw_only=True):
    month: str  # 2026-01


class ImpactOrganisation(ImpactCounts, kw_only=True):
    organisation: str


class ImpactCategory(msgspec.Struct):
    category: str
    loans: int | None


class ImpactOut(msgspec.Struct):
    """Aggregate counts only. Every count from 1 to 4 is null, and so is every rate, average
    or median worked out from fewer than 5 people; 0 is 0."""

    from_day: str = msgspec.field(name="from")
    to_day: str = msgspec.field(name="to")
    organisation: str | None  # the link worker's organisation; null: every organisation
    suppressed_below: int
    totals: ImpactCounts
    referred_members: int | None
    borrowed: int | None
    median_days_to_first_loan: float | None
    loans_per_referred_member: float | None
    other_members: int | None
    loans_per_other_member: float | None
    by_month: list[ImpactMonth]
    by_organisation: list[ImpactOrganisation]
    categories: list[ImpactCategory]


def _counts(counts: reports.Counts) -> dict:
    return {
        "issued": counts.issued,
        "redeemed": counts.redeemed,
        "in_use": counts.in_use,
        "take_up_percent": counts.take_up_percent,
    }


def impact_out(report: reports.Impact) -> ImpactOut:
    return ImpactOut(
        from_day=report.from_day.isoformat(),
        to_day=report.to_day.isoformat(),
        organisation=report.organisation,
        suppressed_below=reports.SMALL,
        totals=ImpactCounts(**_counts(report.totals)),
        referred_members=report.referred_members,
        borrowed=report.borrowed,
        median_days_to_first_loan=report.median_days_to_first_loan,
        loans_per_referred_member=report.loans_per_referred_member,
        other_members=report.other_members,
        loans_per_other_member=report.loans_per_other_member,
        by_month=[ImpactMonth(month=row.month.strftime("%Y-%m"), **_counts(row.counts)) for row in report.by_month],
        by_organisation=[
            ImpactOrganisation(organisation=row.organisation, **_counts(row.counts)) for row in report.by_organisation
        ],
        categories=[ImpactCategory(category=str(row.category), loans=row.loans) for row in report.categories],
    )


@get(
    "/reports/impact",
    name="api:reports_impact",
    guards=[requires(Role.link_worker)],
    tags=["referrals"],
    summary="The impact of referrals: aggregate counts only, small numbers suppressed (null)",
)
async def api_impact(request: Request, from_text: FromDay = None, to_text: ToDay = None) -> ImpactOut:
    from_day, to_day = reports.parse_period(from_text, to_text)
    return impact_out(await reports.impact(viewer=current_user(request), from_day=from_day, to_day=to_day))


# --- FHIR R4: a referring system sends a ServiceRequest -----------------------------------------
# Authenticated with a link worker's API token, which names the organisation. Every answer is
# FHIR: the ServiceRequest made, or an OperationOutcome (never the API's {code, detail}).

log = logging.getLogger("lending")

_ISSUE_TYPES = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "business-rule",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}


def _fhir_response(content: dict, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(content=content, status_code=status, media_type=fhir.MEDIA_TYPES[0], headers=headers)


def _outcome(problem: fhir.Problem, headers: dict[str, str] | None = None) -> Response:
    if problem.status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return _fhir_response(fhir.operation_outcome(problem.issues), problem.status, headers)


def _domain_problem(exc: errors.DomainError) -> fhir.Problem:
    if isinstance(exc, errors.InvalidInput) and exc.errors:
        return fhir.Problem(status=exc.status, issues=fhir.details_issues(exc.errors))
    return fhir.problem(exc.status, _ISSUE_TYPES.get(exc.status, "processing"), str(exc.detail))


def _fhir_error(request: Request, exc: Exception) -> Response:
    """What goes wrong before or around the handler (a bad token, a route's method), as an
    OperationOutcome in the reader's language."""
    language = request.scope.get("state", {}).get("language") or i18n.negotiate(
        chosen=None, account_language=None, accept_language=request.headers.get("accept-language")
    )
    with i18n.in_language(language):
        exc = web_errors.refused_input(exc) or exc
        if isinstance(exc, errors.DomainError):
            return _outcome(_domain_problem(exc))
        if isinstance(exc, HTTPException) and exc.status_code < 500:
            return _outcome(
                fhir.problem(
                    exc.status_code,
                    _ISSUE_TYPES.get(exc.status_code, "invalid"),
                    _("This request could not be understood"),
                ),
                exc.headers,
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _outcome(
            fhir.problem(
                500,
                "exception",
                _("Sorry, something went wrong on our side. The problem has been logged; please try again."),
            )
        )


_FHIR_HANDLERS = {errors.DomainError: _fhir_error, HTTPException: _fhir_error, Exception: _fhir_error}


class OutcomeIssue(msgspec.Struct):
    severity: str
    code: str
    diagnostics: str
    expression: list[str] | msgspec.UnsetType = msgspec.UNSET


class OperationOutcome(msgspec.Struct):
    resource_type: str = msgspec.field(name="resourceType")
    issue: list[OutcomeIssue]


# Every error of these routes is an OperationOutcome, so the document says so for each status.
_FHIR_RESPONSES = {
    status: ResponseSpec(
        data_container=OperationOutcome,
        media_type=fhir.MEDIA_TYPES[0],
        generate_examples=False,
        description=f"An OperationOutcome ({issue_type})",
    )
    for status, issue_type in _ISSUE_TYPES.items()
}


def _fhir_sender(request: Request):
    """The link worker whose API token came with the request; Problem otherwise."""
    user = current_user(request)
    if user is None or not request.headers.get("authorization"):
        raise fhir.problem(401, "login", _("Send your organisation's API token as 'Authorization: Bearer <token>'."))
    if user.role != Role.link_worker.value:
        raise fhir.problem(403, "forbidden", _("Only a link worker's API token can send referrals."))
    if user.organisation_id is None:
        raise fhir.problem(409, "business-rule", _("Your organisation is no longer registered with the library."))
    return user


def _resource(referral: referrals.ReferralView, intent: str = "order") -> dict:
    return fhir.service_request(
        code=referral.code,
        status=referral.status,
        intent=intent,
        months=referral.months,
        redeem_by=referral.redeem_by,
        issued_at=referral.issued_at,
        consent_share=referral.consent_share,
    )


@post(
    "/fhir/ServiceRequest",
    name="api:fhir_service_request",
    tags=["fhir"],
    status_code=201,
    exception_handlers=_FHIR_HANDLERS,
    opt={"exclude_from_csrf": True},
    media_type=fhir.MEDIA_TYPES[0],
    responses=_FHIR_RESPONSES,
    summary="FHIR R4: refer someone with a ServiceRequest (see docs/fhir.md)",
)
async def fhir_create(request: Request) -> Response:
    # Only a bearer token is accepted (never the session cookie), so CSRF cannot reach this.
    try:
        user = _fhir_sender(request)
        if problem := fhir.media_type_problem(request.headers.get("content-type", "")):
            raise problem
        resource = fhir.parse_json(await request.body())
        config = await referrals.settings()
        today = venue_rules.local_date(clock.now(), i18n.current_time_zone())
        details = fhir.read_service_request(
            resource,
            default_months=config.months_options[len(config.months_options) // 2],
            default_redeem_by=today + timedelta(days=config.redeem_days),
        )
        referral = await referrals.issue_referral(issuer=user, details=details)
    except fhir.Problem as problem:
        return _outcome(problem)
    except errors.DomainError as exc:
        return _outcome(_domain_problem(exc))
    location = f"/api/v1/fhir/ServiceRequest/{referral.code}"
    return _fhir_response(_resource(referral, intent=resource["intent"]), 201, {"Location": location})


@get(
    "/fhir/ServiceRequest/{code:str}",
    name="api:fhir_service_request_read",
    tags=["fhir"],
    exception_handlers=_FHIR_HANDLERS,
    media_type=fhir.MEDIA_TYPES[0],
    responses=_FHIR_RESPONSES,
    summary="FHIR R4: a referral your organisation sent, as a ServiceRequest",
)
async def fhir_read(request: Request, code: FromPath[str]) -> Response:
    try:
        user = _fhir_sender(request)
        referral = await referrals.get_referral(viewer=user, code=code)
    except fhir.Problem as problem:
        return _outcome(problem)
    except errors.DomainError as exc:
        return _outcome(_domain_problem(exc))
    return _fhir_response(_resource(referral), 200)


API_ROUTES = [api_issue, api_list, api_redeem, api_impact, fhir_create, fhir_read]
ROUTES = [
    voucher_target,
    redeem_page,
    redeem_submit,
    Router(
        path="/referrals",
        guards=[requires(Role.link_worker)],
        route_handlers=[index, issue, impact_page, impact_csv, show, outcome_download, voucher, withdraw, extend],
    ),
    Router(path="/desk", guards=[requires(Role.volunteer)], route_handlers=[desk_redeem]),
    Router(
        path="/manage/organisations",
        guards=[requires(Role.coordinator)],
        route_handlers=[organisations_page, organisations_create, settings_submit],
    ),
    Router(path="/manage", guards=[requires(Role.coordinator)], route_handlers=[manage_impact_page, manage_impact_csv]),
]
