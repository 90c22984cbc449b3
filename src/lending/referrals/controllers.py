"""Link workers' pages (issue, follow, withdraw, extend, print a voucher), redeeming a code
(online or at the desk), the coordinator's organisations and referral settings, and the API."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template

from lending import clock, codes, errors, i18n
from lending.catalog import qr
from lending.i18n import gettext as _
from lending.i18n import lazy_gettext as _l
from lending.members import services as members
from lending.members.rules import Role, may_act_as
from lending.memberships import services as memberships
from lending.referrals import rules
from lending.referrals import services as referrals
from lending.venues import rules as venue_rules
from lending.web import auth, flash
from lending.web.auth import current_user, requires, signed_in
from lending.web.forms import form_data


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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
        name=str(data.get("name", "")), contact_route=str(data.get("contact_route", "")),
        contact=str(data.get("contact", "") or ""), language=str(data.get("language", "en") or "en"),
        access_needs=str(data.get("access_needs", "") or ""), need_category=str(data.get("need_category", "") or ""),
        months=months, redeem_by=redeem_by, consent_referral=data.get("consent_referral") in yes,
        consent_share=data.get("consent_share") in yes)


async def _index_context(request: Request, values: dict, problems: dict, error: str | None) -> dict:
    from datetime import timedelta

    user = current_user(request)
    config = await referrals.settings()
    today = venue_rules.local_date(clock.now(), i18n.current_time_zone())
    return {"account": user, "referrals": await referrals.list_referrals(viewer=user), "config": config,
            "values": {"months": config.months_options[len(config.months_options) // 2],
                       "redeem_by": (today + timedelta(days=config.redeem_days)).isoformat(), "language": "en",
                       "contact_route": "email", **values},
            "errors": problems, "error": error, "labels": rules.STATUS_LABELS, "needs": rules.NEED_CATEGORIES,
            "routes": rules.CONTACT_ROUTES}


@get("/", name="referrals:index", include_in_schema=False)
async def index(request: Request) -> Template:
    return Template(template_name="referrals/index.html", context=await _index_context(request, {}, {}, None))


@post("/", name="referrals:issue", include_in_schema=False)
async def issue(request: Request) -> Response:
    data = await form_data(request)
    try:
        referral = await referrals.issue_referral(issuer=current_user(request), details=_details(data))
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(template_name="referrals/index.html", status_code=exc.status,
                        context=await _index_context(request, data, exc.errors, str(exc.detail)))
    flash.add(request.scope, _("Referral issued. Give them the code %(code)s, or print the voucher.",
                               code=codes.display(referral.code)))
    return Redirect(path=f"/referrals/{referral.code}", status_code=303)


@get("/{code:str}", name="referrals:show", include_in_schema=False)
async def show(request: Request, code: FromPath[str]) -> Template:
    referral = await referrals.get_referral(viewer=current_user(request), code=code)
    return Template(template_name="referrals/show.html", context={
        "referral": referral, "labels": rules.STATUS_LABELS, "needs": rules.NEED_CATEGORIES,
        "routes": rules.CONTACT_ROUTES, "config": await referrals.settings()})


@get("/{code:str}/voucher", name="referrals:voucher", include_in_schema=False)
async def voucher(request: Request, code: FromPath[str], lang: FromQuery[str] = "") -> Template:
    referral = await referrals.get_referral(viewer=current_user(request), code=code)
    language = lang if lang in i18n.LANGUAGES else referral.language
    i18n.set_language(language)  # the voucher is in the person's language, whatever the link worker reads
    url = f"{request.app.state.settings.base_url}/r/{referral.code}"
    return Template(template_name="referrals/voucher.html", context={
        "referral": referral, "qr_svg": qr.qr_svg(url).decode(), "url": url, "voucher_language": language})


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
    return Template(template_name="referrals/redeem.html", context={
        "values": {"code": codes.normalise(code) or code.strip()[:20], "language": i18n.current_language()},
        "errors": {}, "error": None, "user": current_user(request)})


@post("/redeem", name="referrals:redeem", include_in_schema=False)
async def redeem_submit(request: Request) -> Response:
    data = await form_data(request)
    user = current_user(request)
    try:
        if user is not None:
            if user.role != Role.member.value:
                raise errors.RuleViolation(_l("Referral codes are for members' accounts."), code="not_a_member")
            membership = await referrals.redeem(code=data.get("code", ""), member_id=user.id, address=_address(request))
            token = ""
        else:
            _account, membership, token = await referrals.join_with_code(
                code=data.get("code", ""), name=data.get("name", ""), email=data.get("email", ""),
                password=data.get("password", ""), language=data.get("language", "en"), address=_address(request))
    except (errors.InvalidInput, errors.Conflict, errors.RuleViolation, errors.NotFound,
            errors.TooManyAttempts) as exc:
        data.pop("password", None)
        return Template(template_name="referrals/redeem.html", status_code=exc.status, context={
            "values": data, "errors": exc.errors, "error": str(exc.detail), "user": user})
    flash.add(request.scope, _("Welcome! Your free membership is active until %(date)s: show your card at the "
                               "counter to borrow.", date=i18n.format_date(membership.ends_at)))
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
        await referrals.redeem(code=data.get("code", ""), member_id=member_id, address=_address(request),
                               actor_id=current_user(request).id)
        flash.add(request.scope, _("The code is accepted: the membership is active."))
    except (errors.Conflict, errors.RuleViolation, errors.NotFound, errors.TooManyAttempts) as exc:
        flash.add(request.scope, str(exc.detail), "error")
    return Redirect(path=f"/desk/members/{member_id}", status_code=303)


async def _organisations_context(values: dict, problems: dict, error: str | None) -> dict:
    organisations = await referrals.list_organisations()
    link_workers = await members.list_accounts(role=Role.link_worker.value)
    counts = {o.id: sum(1 for a in link_workers if a.organisation_id == o.id) for o in organisations}
    config = await referrals.settings()
    tiers = await memberships.list_tiers(include_inactive=True)
    return {"organisations": organisations, "counts": counts, "kind_options": list(referrals.KIND_LABELS.items()),
            "values": values, "config": config, "tier_options": [("", _("Choose a membership"))] + [
                (tier.id, tier.name) for tier in tiers if tier.allow_free],
            "errors": problems, "error": error}


@get("/", name="referrals:organisations", include_in_schema=False)
async def organisations_page(request: Request) -> Template:
    return Template(template_name="referrals/organisations.html", context=await _organisations_context({}, {}, None))


@post("/settings", name="referrals:settings", include_in_schema=False)
async def settings_submit(request: Request) -> Response:
    data = await form_data(request)
    try:
        await referrals.save_settings(tier_id=int(data["tier"]) if data.get("tier", "").isdigit() else None,
                                      months_options=data.get("months_options", ""),
                                      redeem_days=data.get("redeem_days", ""),
                                      erase_after_days=data.get("erase_after_days", ""),
                                      actor_id=current_user(request).id)
    except errors.InvalidInput as exc:
        return Template(template_name="referrals/organisations.html", status_code=exc.status,
                        context=await _organisations_context(data, exc.errors, str(exc.detail)))
    flash.add(request.scope, _("The referral settings are saved."))
    return Redirect(path="/manage/organisations#settings", status_code=303)


@post("/", name="referrals:organisations_create", include_in_schema=False)
async def organisations_create(request: Request) -> Response:
    data = await form_data(request)
    try:
        organisation = await referrals.create_organisation(name=data.get("name", ""), kind=data.get("kind", "other"),
                                                           actor_id=current_user(request).id)
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(template_name="referrals/organisations.html",
                        context=await _organisations_context(data, exc.errors, str(exc.detail)),
                        status_code=exc.status)
    flash.add(request.scope, _("%(name)s is added.", name=organisation.name))
    return Redirect(path="/manage/organisations", status_code=303)


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
    return ReferralOut(code=referral.code, status=referral.status, expires_at=referral.redeem_by.isoformat(),
                       months=referral.months, organisation=referral.organisation_name, name=referral.name,
                       redeemed=referral.redeemed_at is not None)


@post("/referrals", name="api:referrals_create", guards=[requires(Role.link_worker)], tags=["referrals"],
      summary="Issue a referral for your organisation")
async def api_issue(request: Request, data: JSONBody[ReferralIn]) -> Response[ReferralOut]:
    referral = await referrals.issue_referral(issuer=current_user(request),
                                              details=_details(msgspec.structs.asdict(data)))
    return Response(content=referral_out(referral), status_code=201)


@get("/referrals", name="api:referrals_list", guards=[requires(Role.link_worker)], tags=["referrals"],
     summary="Your organisation's referrals (all of them for a coordinator)")
async def api_list(request: Request) -> ReferralList:
    return ReferralList(referrals=[referral_out(r) for r in await referrals.list_referrals(viewer=current_user(request))])


@post("/referrals/{code:str}/redeem", name="api:referrals_redeem", guards=[signed_in], tags=["referrals"],
      status_code=200, summary="Use a referral code: an active free membership (409 referral_used)")
async def api_redeem(request: Request, code: FromPath[str], data: JSONBody[RedeemIn]) -> RedeemOut:
    user = current_user(request)
    if data.member_id is not None and data.member_id != user.id:
        if not may_act_as(user.role, Role.volunteer):
            raise errors.NotAllowed(_l("You can only use a code for yourself."), code="not_allowed")
        member_id = data.member_id
    elif user.role == Role.member.value:
        member_id = user.id
    else:
        raise errors.InvalidInput(_l("Send the member_id of the member at the counter."), code="member_required",
                                  field="member_id")
    membership = await referrals.redeem(code=code, member_id=member_id, address=_address(request), actor_id=user.id)
    return RedeemOut(status=membership.status, ends_at=membership.ends_at.isoformat())


API_ROUTES = [api_issue, api_list, api_redeem]
ROUTES = [
    voucher_target, redeem_page, redeem_submit,
    Router(path="/referrals", guards=[requires(Role.link_worker)],
           route_handlers=[index, issue, show, voucher, withdraw, extend]),
    Router(path="/desk", guards=[requires(Role.volunteer)], route_handlers=[desk_redeem]),
    Router(path="/manage/organisations", guards=[requires(Role.coordinator)],
           route_handlers=[organisations_page, organisations_create, settings_submit]),
]
