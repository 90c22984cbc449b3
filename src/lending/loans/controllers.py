"""The volunteers' desk (find a member, scan items, lend in one step, check in), the member's
own loans, holds, bookings and calendar feed, the coordinator's lending rules, and the JSON
API for all of it. Every route calls the same services, so the rules hold everywhere."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Request, Response, Router, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template

from lending import clock, codes, errors, i18n
from lending.adapters import qr
from lending.catalog import rules as catalog_rules
from lending.catalog import services as catalog
from lending.i18n import gettext as _
from lending.i18n import lazy_gettext as _l
from lending.loans import (
    calendar_feed,
    checkin,
    checkout,
    facts,
    fees,
    holds,
    loan_policy,
    records,
    renewals,
    reservations,
    rules,
)
from lending.loans.schemas import (
    EligibilityOut,
    HoldIn,
    HoldList,
    HoldOut,
    ItemReturnIn,
    LoanIn,
    LoanList,
    LoanOut,
    ReservationIn,
    ReservationList,
    ReservationOut,
    ReturnIn,
    ReturnOut,
    eligibility_out,
    hold_out,
    loan_out,
    reservation_out,
)
from lending.mail import services as mail
from lending.members import services as members
from lending.members.rules import Role, may_act_as
from lending.venues import rules as hours
from lending.venues import services as venues
from lending.web import flash
from lending.web.auth import current_user, requires, signed_in
from lending.web.forms import form_data


def _send_mail(request: Request) -> BackgroundTask:
    """Receipts and hold notices go after the response: the loan is already safe."""
    return BackgroundTask(mail.send_pending, mailer=request.app.state.mailer, limit=20)


def _is_volunteer(request: Request) -> bool:
    user = current_user(request)
    return user is not None and may_act_as(user.role, Role.volunteer)


def _outcome(assessment: checkout.Assessment, added: str) -> tuple[str, str] | None:
    """What the desk says (and sounds) after a scan: the line just added decides it."""
    if not added:
        return None
    line = next((line for line in assessment.lines if line.code == added), None)
    if line is None:
        return None
    if not line.name:
        return "unknown", _("No item has the code %(code)s. Check it and scan again.", code=added)
    if line.reasons:
        return "unavailable", _("%(name)s cannot go out: %(reason)s", name=line.name, reason=line.reasons[0].message)
    if assessment.borrower_reasons:
        return "blocked", _(
            "Added %(name)s, but %(member)s cannot borrow now: %(reason)s",
            name=line.name,
            member=assessment.member_name,
            reason=assessment.borrower_reasons[0].message,
        )
    return "success", _("%(name)s, due back by %(when)s.", name=line.name, when=i18n.format_when(line.due_at))


async def _all(request: Request, name: str) -> list[str]:
    """Every value of a repeated form field (the basket's items, the parts ticked)."""
    return [str(value) for value in (await request.form()).getall(name, []) if isinstance(value, str)]


def _basket(items: list[str], add: str = "", remove: str = "") -> tuple[list[str], str]:
    basket: list[str] = []
    for raw in items:
        code = facts.code_from_scan(raw)
        if code and code not in basket and code != remove:
            basket.append(code)
    added = facts.code_from_scan(add) if add.strip() else ""
    if add.strip() and not added:
        added = add.strip()[:40]
    if added and added not in basket:
        basket.append(added)
    return basket[: rules.MAX_BASKET], added


async def _member_page(
    request: Request,
    member_id: int,
    basket: list[str],
    *,
    added: str = "",
    error: errors.DomainError | None = None,
    values: dict | None = None,
    status: int = 200,
) -> Template:
    member = await members.get_account(account_id=member_id)
    assessment = await checkout.assess(member_id=member_id, item_codes=basket)
    outcome = _outcome(assessment, added)
    if error is not None:
        outcome = (
            "unavailable"
            if isinstance(error, errors.Conflict)
            else "unknown"
            if isinstance(error, errors.NotFound)
            else "blocked",
            str(error.detail),
        )
    return Template(
        template_name="loans/member.html",
        status_code=status,
        context={
            "member": member,
            "assessment": assessment,
            "basket": [line for line in assessment.lines],
            "codes_in_basket": [line.code for line in assessment.lines],
            "outcome": outcome,
            "loans": await records.member_loans(member_id=member_id),
            "holds": await records.member_holds(member_id=member_id),
            "reservations": await records.member_reservations(member_id=member_id),
            "fees": await fees.list_fees(member_id=member_id),
            "values": values or {},
            "errors": error.errors if error is not None else {},
            "now": clock.now(),
        },
    )


# --- the desk ---------------------------------------------------------------------------------


@get("/", name="loans:desk", include_in_schema=False)
async def desk(request: Request, q: FromQuery[str] = "") -> Response:
    results = []
    if q.strip():
        code = facts.code_from_scan(q)
        if code:  # a scanned or typed card goes straight to its member
            try:
                member = await members.member_by_card(card_code=code)
            except errors.NotFound:
                member = None
            if member is not None:
                return Redirect(path=f"/desk/members/{member.id}", status_code=303)
        results = await members.find_members(query=q)
    return Template(
        template_name="loans/desk.html",
        context={
            "q": q,
            "results": results,
            "problems": await catalog.open_problems(),
            "ready": await records.ready_holds(limit=50),
            "overdue": await records.overdue_loans(limit=50),
        },
    )


@get("/members/{member_id:int}", name="loans:member", include_in_schema=False)
async def desk_member(
    request: Request,
    member_id: FromPath[int],
    item: FromQuery[list[str] | None] = None,
    add: FromQuery[str] = "",
    remove: FromQuery[str] = "",
) -> Template:
    basket, added = _basket(item or [], add, facts.code_from_scan(remove))
    return await _member_page(request, member_id, basket, added=added)


@post("/members/{member_id:int}/loans", name="loans:check_out", include_in_schema=False)
async def desk_check_out(request: Request, member_id: FromPath[int]) -> Response:
    form = await form_data(request)
    basket, _added = _basket(await _all(request, "item"))
    lent_at = str(form.get("lent_at", "")).strip() if form.get("backdate") == "yes" else None
    try:
        lent = await checkout.check_out(
            member_id=member_id, item_codes=basket, actor_id=current_user(request).id, via="desk", lent_at=lent_at
        )
    except (errors.Conflict, errors.RuleViolation, errors.NotFound, errors.InvalidInput) as exc:
        return await _member_page(
            request, member_id, basket, error=exc, values={"lent_at": lent_at or ""}, status=exc.status
        )
    flash.add(
        request.scope,
        i18n.ngettext(
            "Lent %(num)d item. The receipt is on its way by email.",
            "Lent %(num)d items. The receipt is on its way by email.",
            len(lent),
        ),
    )
    query = urlencode([("lent", str(loan.id)) for loan in lent])
    return Redirect(path=f"/desk/members/{member_id}?{query}", status_code=303, background=_send_mail(request))


@post("/loans/{loan_id:int}/renew", name="loans:desk_renew", include_in_schema=False)
async def desk_renew(request: Request, loan_id: FromPath[int]) -> Response:
    loan = await records.get_loan(loan_id=loan_id)
    try:
        renewed = await renewals.renew(loan_id=loan_id, actor_id=current_user(request).id, via="desk")
        flash.add(
            request.scope,
            _(
                "Renewed %(item)s: now due back by %(when)s.",
                item=renewed.item_name,
                when=i18n.format_when(renewed.due_at),
            ),
        )
    except (errors.Conflict, errors.RuleViolation) as exc:
        flash.add(request.scope, str(exc.detail), "error")
    return Redirect(path=f"/desk/members/{loan.member_id}#loans", status_code=303)


@get("/returns", name="loans:returns", include_in_schema=False)
async def desk_returns(request: Request, item: FromQuery[str] = "", done: FromQuery[int | None] = None) -> Template:
    context: dict = {"item_code": item, "loan": None, "item": None, "outcome": None, "errors": {}, "values": {}}
    if done is not None:
        loan = await records.get_loan(loan_id=done)
        context["done"] = loan
    if item.strip():
        code = facts.code_from_scan(item)
        try:
            found = await catalog.get_item(code=code) if code else None
        except errors.NotFound:
            found = None
        if found is None:
            context["outcome"] = (
                "unknown",
                _("No item has the code %(code)s. Check it and scan again.", code=item.strip()[:40]),
            )
        else:
            context["item"] = found
            context["loan"] = await records.open_loan_for_item(code=found.code)
            if context["loan"] is None:
                context["outcome"] = ("already", _("%(name)s is not on loan: nothing to check in.", name=found.name))
    return Template(
        template_name="loans/returns.html",
        context={**context, "conditions": catalog_rules.CONDITION_LABELS, "now": clock.now()},
    )


@post("/returns", name="loans:check_in", include_in_schema=False)
async def desk_check_in(request: Request) -> Response:
    form = await form_data(request)
    code = str(form.get("item_code", ""))
    parts = await _all(request, "parts_missing")
    returned_at = str(form.get("returned_at", "")).strip() if form.get("backdate") == "yes" else None
    loan_id = str(form.get("loan_id", "")).strip()
    try:
        result = await checkin.check_in(
            loan_id=int(loan_id) if loan_id.isdigit() else None,
            item_code=code,
            condition=str(form.get("condition", "")),
            notes=str(form.get("notes", "")),
            parts_missing=list(parts),
            needs_repair=form.get("needs_repair") == "yes",
            returned_at=returned_at,
            actor_id=current_user(request).id,
            via="desk",
        )
    except (errors.InvalidInput, errors.NotFound, errors.Conflict) as exc:
        found = None
        try:
            found = await catalog.get_item(code=facts.code_from_scan(code)) if facts.code_from_scan(code) else None
        except errors.NotFound:
            pass
        kind = "unknown" if isinstance(exc, errors.NotFound) else "already" if exc.code == "not_on_loan" else "blocked"
        return Template(
            template_name="loans/returns.html",
            status_code=exc.status,
            context={
                "item_code": code,
                "item": found,
                "loan": await records.open_loan_for_item(code=found.code) if found else None,
                "outcome": (kind, str(exc.detail)),
                "errors": exc.errors,
                "conditions": catalog_rules.CONDITION_LABELS,
                "values": {
                    "condition": form.get("condition", ""),
                    "notes": form.get("notes", ""),
                    "returned_at": returned_at or "",
                },
                "now": clock.now(),
            },
        )
    if not result.changed:
        flash.add(request.scope, _("%(item)s was already checked in; nothing changed.", item=result.loan.item_name))
    else:
        message = _("Checked in %(item)s from %(member)s.", item=result.loan.item_name, member=result.loan.member_name)
        if result.needs_repair:
            message += " " + _("It is now marked for repair.")
        elif result.hold_for:
            message += " " + _(
                "Put it aside: %(member)s is next in the queue and has been told.", member=result.hold_for
            )
        if result.fee_pence:
            message += " " + _("A late fee of %(amount)s was added.", amount=i18n.format_money(result.fee_pence))
        flash.add(request.scope, message)
    return Redirect(path=f"/desk/returns?done={result.loan.id}", status_code=303, background=_send_mail(request))


@post("/holds/{hold_id:int}/cancel", name="loans:desk_cancel_hold", include_in_schema=False)
async def desk_cancel_hold(request: Request, hold_id: FromPath[int]) -> Response:
    hold = await records.get_hold(hold_id=hold_id)
    await holds.cancel_hold(hold_id=hold_id, actor_id=current_user(request).id, via="desk")
    flash.add(request.scope, _("The hold on %(item)s is cancelled.", item=hold.item_name))
    return Redirect(path=f"/desk/members/{hold.member_id}#holds", status_code=303, background=_send_mail(request))


@get("/members/{member_id:int}/card", name="loans:desk_card", include_in_schema=False)
async def desk_card(request: Request, member_id: FromPath[int]) -> Template:
    return await _card(request, await members.get_account(account_id=member_id))


async def _card(request: Request, account) -> Template:
    url = f"{request.app.state.settings.base_url}/c/{account.card_code}"
    return Template(
        template_name="loans/card.html",
        context={"account": account, "qr_svg": qr.qr_svg(url).decode(), "card_url": url},
    )


# --- a card's QR ------------------------------------------------------------------------------


@get("/c/{code:str}", name="loans:card_target", include_in_schema=False)
async def card_target(request: Request, code: FromPath[str]) -> Response:
    """Where a member card's QR leads: volunteers to the member at the desk, the member to their
    own account, anyone else to sign in."""
    user = current_user(request)
    if user is None:
        return Redirect(path=f"/login?next=/c/{codes.normalise(code)}", status_code=303)
    if may_act_as(user.role, Role.volunteer):
        member = await members.member_by_card(card_code=code)
        return Redirect(path=f"/desk/members/{member.id}", status_code=303)
    return Redirect(path="/account#card", status_code=303)


# --- the member's own -------------------------------------------------------------------------


@get("/loans", name="loans:mine", include_in_schema=False)
async def my_loans(request: Request) -> Template:
    user = current_user(request)
    token = await calendar_feed.calendar_token(member_id=user.id)
    return Template(
        template_name="loans/mine.html",
        context={
            "loans": await records.member_loans(member_id=user.id),
            "history": await records.member_loans(member_id=user.id, open_only=False, limit=50),
            "holds": await records.member_holds(member_id=user.id),
            "reservations": await records.member_reservations(member_id=user.id),
            "fees": await fees.list_fees(member_id=user.id),
            "calendar_url": f"{request.app.state.settings.base_url}/calendar/{token}.ics",
            "now": clock.now(),
        },
    )


@get("/card", name="loans:my_card", include_in_schema=False)
async def my_card(request: Request) -> Template:
    return await _card(request, await members.get_account(account_id=current_user(request).id))


@post("/loans/{loan_id:int}/renew", name="loans:my_renew", include_in_schema=False)
async def my_renew(request: Request, loan_id: FromPath[int]) -> Response:
    user = current_user(request)
    try:
        renewed = await renewals.renew(loan_id=loan_id, actor_id=user.id, borrower_id=user.id, via="account")
        flash.add(
            request.scope,
            _(
                "Renewed %(item)s: now due back by %(when)s.",
                item=renewed.item_name,
                when=i18n.format_when(renewed.due_at),
            ),
        )
    except (errors.Conflict, errors.RuleViolation) as exc:
        flash.add(request.scope, str(exc.detail), "error")
    return Redirect(path="/account/loans", status_code=303)


@post("/holds", name="loans:my_hold", include_in_schema=False)
async def my_hold(request: Request) -> Response:
    user = current_user(request)
    form = await form_data(request)
    code = str(form.get("item_code", ""))
    try:
        hold = await holds.place_hold(member_id=user.id, item_code=code, via="account")
    except (errors.Conflict, errors.RuleViolation, errors.NotFound) as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(
            path=f"/i/{codes.normalise(code)}#borrow" if codes.normalise(code) else "/account/loans", status_code=303
        )
    if hold.status == "ready":
        flash.add(
            request.scope,
            _(
                "%(item)s is put aside for you: collect it by %(when)s.",
                item=hold.item_name,
                when=i18n.format_when(hold.expires_at),
            ),
        )
    else:
        flash.add(
            request.scope,
            _(
                "You are number %(position)d in the queue for %(item)s. We will email you when it is ready.",
                position=hold.position,
                item=hold.item_name,
            ),
        )
    return Redirect(path="/account/loans#holds", status_code=303, background=_send_mail(request))


@post("/holds/{hold_id:int}/cancel", name="loans:my_cancel_hold", include_in_schema=False)
async def my_cancel_hold(request: Request, hold_id: FromPath[int]) -> Response:
    user = current_user(request)
    await holds.cancel_hold(hold_id=hold_id, actor_id=user.id, member_id=user.id, via="account")
    flash.add(request.scope, _("You have left the queue."))
    return Redirect(path="/account/loans#holds", status_code=303, background=_send_mail(request))


@post("/reservations", name="loans:my_reserve", include_in_schema=False)
async def my_reserve(request: Request) -> Response:
    user = current_user(request)
    form = await form_data(request)
    code = codes.normalise(str(form.get("item_code", "")))
    try:
        booking = await reservations.reserve(
            member_id=user.id,
            item_code=code,
            starts_on=str(form.get("starts_on", "")),
            ends_on=str(form.get("ends_on", "")),
            via="account",
        )
    except (errors.Conflict, errors.RuleViolation, errors.NotFound, errors.InvalidInput) as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(path=f"/i/{code}#book" if code else "/account/loans", status_code=303)
    flash.add(
        request.scope,
        _(
            "Booked %(item)s from %(start)s to %(end)s.",
            item=booking.item_name,
            start=i18n.format_date(booking.starts_on, weekday=True),
            end=i18n.format_date(booking.ends_on, weekday=True),
        ),
    )
    return Redirect(path="/account/loans#bookings", status_code=303)


@post("/reservations/{reservation_id:int}/cancel", name="loans:my_cancel_reservation", include_in_schema=False)
async def my_cancel_reservation(request: Request, reservation_id: FromPath[int]) -> Response:
    user = current_user(request)
    await reservations.cancel_reservation(reservation_id=reservation_id, actor_id=user.id, member_id=user.id)
    flash.add(request.scope, _("Your booking is cancelled."))
    return Redirect(path="/account/loans#bookings", status_code=303)


@post("/calendar/renew", name="loans:my_calendar_renew", include_in_schema=False)
async def my_calendar_renew(request: Request) -> Response:
    await calendar_feed.calendar_token(member_id=current_user(request).id, renew=True)
    flash.add(request.scope, _("Your calendar has a new address; the old one no longer works."))
    return Redirect(path="/account/loans#calendar", status_code=303)


@get("/calendar/{token:str}", name="loans:calendar_feed", include_in_schema=False)
async def member_calendar(request: Request, token: FromPath[str]) -> Response:
    """A member's due dates, holds and bookings for their calendar app (which cannot sign in):
    the address is the secret."""
    member_id = await calendar_feed.member_for_calendar(token=token.removesuffix(".ics"))
    member = await members.get_account(account_id=member_id)
    with i18n.in_language(member.language):
        body = await calendar_feed.calendar_feed(member_id=member_id, base_url=request.app.state.settings.base_url)
    return Response(
        content=body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "X-Robots-Tag": "noindex"},
    )


# --- the coordinator's rules ------------------------------------------------------------------


@get("/", name="loans:manage", include_in_schema=False)
async def manage_lending(request: Request) -> Template:
    return await _manage_page(request)


async def _manage_page(
    request: Request, *, error: errors.DomainError | None = None, values: dict | None = None, status: int = 200
) -> Template:
    snap = await venues.snapshot(fresh=True)
    sites = await catalog.list_sites()
    site = _site_param(request.query_params.get("site") or (values or {}).get("site_id"), sites)
    own = snap.sessions.get(None, ()) if site is None else snap.sessions.get(site.id, ())
    hours_text = {day: hours.format_sessions(tuple(s for s in own if s.weekday == day)) for day in range(7)}
    return Template(
        template_name="loans/manage.html",
        status_code=status,
        context={
            "policy": await loan_policy.policy(),
            "calendar": snap.calendar(),
            "hours_text": hours_text,
            "weekdays": hours.WEEKDAY_NAMES,
            "sites": sites,
            "site": site,
            "site_options": [("", _("The whole venue")), *((str(each.id), each.name) for each in sites)],
            "closures": await venues.list_closures(from_day=venues.today(snap.calendar())),
            "fees": await fees.list_fees(),
            "categories": await catalog.category_tree(),
            "errors": error.errors if error else {},
            "error": error,
            "values": values or {},
        },
    )


@post("/policy", name="loans:save_policy", include_in_schema=False)
async def save_policy(request: Request) -> Response:
    form = await form_data(request)
    values = {key: form.get(key, "") for key in (*loan_policy._POLICY_FIELDS, "fees_enabled")}
    for key in ("fee_per_day_pence", "fee_cap_pence", "block_over_pence"):
        values[key] = _pence(form.get(key.removesuffix("_pence"), ""))
    try:
        await loan_policy.save_policy(values=values, actor_id=current_user(request).id)
    except errors.InvalidInput as exc:
        return await _manage_page(request, error=exc, values=dict(form), status=422)
    flash.add(request.scope, _("The lending rules are saved."))
    return Redirect(path="/manage/lending", status_code=303)


def _site_param(value: object, sites: list) -> object:
    """The site whose hours the page shows (?site=ID), or None for the whole venue's."""
    return next((site for site in sites if str(site.id) == str(value or "")), None)


def _pence(text: object) -> object:
    try:
        value = catalog_rules.parse_pence(str(text))
    except ValueError:
        return "x"
    return 0 if value is None else value


@post("/categories", name="loans:save_category_periods", include_in_schema=False)
async def save_category_periods(request: Request) -> Response:
    form = await form_data(request)
    periods = {
        int(key.removeprefix("category_")): value
        for key, value in form.items()
        if key.startswith("category_") and key.removeprefix("category_").isdigit()
    }
    try:
        await catalog.set_category_loan_days(periods=periods, actor_id=current_user(request).id)
    except errors.InvalidInput as exc:
        return await _manage_page(request, error=exc, values=dict(form), status=422)
    flash.add(request.scope, _("The loan periods are saved."))
    return Redirect(path="/manage/lending#categories", status_code=303)


@post("/hours", name="loans:save_hours", include_in_schema=False)
async def save_hours(request: Request) -> Response:
    form = await form_data(request)
    site_id = int(form["site_id"]) if form.get("site_id", "").isdigit() else None
    try:
        await venues.set_hours(
            timezone_name=None if site_id else str(form.get("timezone", "")),
            site_id=site_id,
            hours={day: str(form.get(f"day_{day}", "")) for day in range(7)},
            actor_id=current_user(request).id,
        )
    except errors.InvalidInput as exc:
        return await _manage_page(request, error=exc, values=dict(form), status=422)
    flash.add(request.scope, _("The opening hours are saved."))
    return Redirect(
        path=f"/manage/lending?site={site_id}#hours" if site_id else "/manage/lending#hours", status_code=303
    )


@post("/closures", name="loans:add_closure", include_in_schema=False)
async def add_closure(request: Request) -> Response:
    form = await form_data(request)
    try:
        await venues.add_closure(
            starts_on=str(form.get("starts_on", "")),
            ends_on=str(form.get("ends_on", "")),
            reason=str(form.get("reason", "")),
            actor_id=current_user(request).id,
            site_id=int(form["site_id"]) if form.get("site_id", "").isdigit() else None,
        )
    except errors.InvalidInput as exc:
        return await _manage_page(request, error=exc, values=dict(form), status=422)
    flash.add(request.scope, _("The closure is added; due dates will skip it."))
    return Redirect(path="/manage/lending#closures", status_code=303)


@post("/closures/{closure_id:int}/remove", name="loans:remove_closure", include_in_schema=False)
async def remove_closure(request: Request, closure_id: FromPath[int]) -> Response:
    await venues.remove_closure(closure_id=closure_id, actor_id=current_user(request).id)
    flash.add(request.scope, _("The closure is removed."))
    return Redirect(path="/manage/lending#closures", status_code=303)


@post("/fees/{fee_id:int}", name="loans:settle_fee", include_in_schema=False)
async def settle_fee(request: Request, fee_id: FromPath[int]) -> Response:
    form = await form_data(request)
    await fees.settle_fee(
        fee_id=fee_id,
        settlement=str(form.get("settlement", "")),
        note=str(form.get("note", "")),
        actor_id=current_user(request).id,
    )
    flash.add(request.scope, _("The fee is settled."))
    return Redirect(path="/manage/lending#fees", status_code=303)


# --- JSON API ---------------------------------------------------------------------------------


async def _api_member_id(request: Request, member_id: int | None, card_code: str | None) -> int:
    if member_id is not None:
        return member_id
    if card_code:
        return (await members.member_by_card(card_code=facts.code_from_scan(card_code) or card_code)).id
    raise errors.InvalidInput(_l("Send member_id or card_code."), code="member_required", field="member_id")


@post(
    "/loans",
    name="api:loans_create",
    guards=[requires(Role.volunteer)],
    tags=["loans"],
    summary="Lend an item to a member (409 item_unavailable, 422 borrower_blocked with reasons)",
)
async def api_check_out(request: Request, data: JSONBody[LoanIn]) -> Response[LoanOut]:
    member_id = await _api_member_id(request, data.member_id, data.card_code)
    lent = await checkout.check_out(
        member_id=member_id,
        item_codes=[data.item_code],
        actor_id=current_user(request).id,
        via="api",
        lent_at=data.lent_at,
    )
    return Response(content=loan_out(lent[0]), status_code=201, background=_send_mail(request))


@get(
    "/loans",
    name="api:loans_list",
    guards=[signed_in],
    tags=["loans"],
    summary="Open loans (or closed ones with open=false): your own, or a member's for volunteers",
)
async def api_loans(
    request: Request, member_id: FromQuery[int | None] = None, open: FromQuery[bool] = True
) -> LoanList:
    user = current_user(request)
    if member_id is None or not _is_volunteer(request):
        member_id = user.id
    return LoanList(loans=[loan_out(loan) for loan in await records.member_loans(member_id=member_id, open_only=open)])


async def _visible_loan(request: Request, loan_id: int) -> records.LoanView:
    loan = await records.get_loan(loan_id=loan_id)
    if loan.member_id != current_user(request).id and not _is_volunteer(request):
        raise errors.NotFound(_l("There is no such loan."), code="loan_not_found")
    return loan


@get("/loans/{loan_id:int}", name="api:loans_get", guards=[signed_in], tags=["loans"], summary="One loan")
async def api_loan(request: Request, loan_id: FromPath[int]) -> LoanOut:
    return loan_out(await _visible_loan(request, loan_id))


def _return_out(result: checkin.Return) -> ReturnOut:
    base = loan_out(result.loan)
    return ReturnOut(
        **{f: getattr(base, f) for f in base.__struct_fields__},
        changed=result.changed,
        hold_for_member=result.hold_for is not None,
        needs_repair=result.needs_repair,
        fee_pence=result.fee_pence,
    )


@post(
    "/loans/{loan_id:int}/return",
    name="api:loans_return",
    guards=[requires(Role.volunteer)],
    tags=["loans"],
    status_code=200,
    summary="Check a loan in; returning twice changes nothing",
)
async def api_return(request: Request, loan_id: FromPath[int], data: JSONBody[ReturnIn]) -> Response[ReturnOut]:
    result = await checkin.check_in(
        loan_id=loan_id,
        condition=data.condition,
        notes=data.notes,
        parts_missing=data.parts_missing,
        needs_repair=data.needs_repair,
        returned_at=data.returned_at,
        actor_id=current_user(request).id,
        via="api",
    )
    return Response(content=_return_out(result), status_code=200, background=_send_mail(request))


@post(
    "/returns",
    name="api:returns",
    guards=[requires(Role.volunteer)],
    tags=["loans"],
    status_code=200,
    summary="Check in by item code, as the desk's scanner does",
)
async def api_return_item(request: Request, data: JSONBody[ItemReturnIn]) -> Response[ReturnOut]:
    result = await checkin.check_in(
        item_code=data.item_code,
        condition=data.condition,
        notes=data.notes,
        parts_missing=data.parts_missing,
        needs_repair=data.needs_repair,
        returned_at=data.returned_at,
        actor_id=current_user(request).id,
        via="api",
    )
    return Response(content=_return_out(result), status_code=200, background=_send_mail(request))


@post(
    "/loans/{loan_id:int}/renew",
    name="api:loans_renew",
    guards=[signed_in],
    tags=["loans"],
    status_code=200,
    summary="Renew a loan (409 someone_waiting or renewal_limit)",
)
async def api_renew(request: Request, loan_id: FromPath[int]) -> LoanOut:
    user = current_user(request)
    borrower = None if _is_volunteer(request) else user.id
    return loan_out(await renewals.renew(loan_id=loan_id, actor_id=user.id, borrower_id=borrower, via="api"))


@get(
    "/members/{member_id:int}/eligibility",
    name="api:eligibility",
    guards=[requires(Role.volunteer)],
    tags=["loans"],
    summary="Can this member borrow these items now? Every reason when not",
)
async def api_eligibility(
    request: Request, member_id: FromPath[int], item_code: FromQuery[list[str] | None] = None
) -> EligibilityOut:
    await members.get_account(account_id=member_id)
    return eligibility_out(await checkout.assess(member_id=member_id, item_codes=item_code or []))


def _holder(request: Request, member_id: int | None) -> int:
    """Members act for themselves; a volunteer may name the member."""
    user = current_user(request)
    if member_id is not None and member_id != user.id:
        if not _is_volunteer(request):
            raise errors.NotAllowed(_l("You can only do this for yourself."), code="not_allowed")
        return member_id
    return user.id


@post(
    "/holds",
    name="api:holds_create",
    guards=[signed_in],
    tags=["holds"],
    summary="Join the queue for a thing (any copy); ready at once when a copy is on the shelf",
)
async def api_hold(request: Request, data: JSONBody[HoldIn]) -> Response[HoldOut]:
    hold = await holds.place_hold(
        member_id=_holder(request, data.member_id),
        item_code=data.item_code,
        actor_id=current_user(request).id,
        via="api",
    )
    return Response(content=hold_out(hold), status_code=201, background=_send_mail(request))


@get("/holds", name="api:holds_list", guards=[signed_in], tags=["holds"], summary="Your holds and places in queues")
async def api_holds(request: Request, member_id: FromQuery[int | None] = None) -> HoldList:
    return HoldList(holds=[hold_out(h) for h in await records.member_holds(member_id=_holder(request, member_id))])


@delete(
    "/holds/{hold_id:int}",
    name="api:holds_cancel",
    guards=[signed_in],
    tags=["holds"],
    status_code=204,
    summary="Leave the queue",
)
async def api_cancel_hold(request: Request, hold_id: FromPath[int]) -> None:
    user = current_user(request)
    await holds.cancel_hold(
        hold_id=hold_id, actor_id=user.id, member_id=None if _is_volunteer(request) else user.id, via="api"
    )


@post(
    "/reservations",
    name="api:reservations_create",
    guards=[signed_in],
    tags=["reservations"],
    summary="Book a copy for future days (409 reservation_conflict; 422 closed_day, invalid_date ...)",
)
async def api_reserve(request: Request, data: JSONBody[ReservationIn]) -> Response[ReservationOut]:
    booking = await reservations.reserve(
        member_id=_holder(request, data.member_id),
        item_code=data.item_code,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        actor_id=current_user(request).id,
        via="api",
    )
    return Response(content=reservation_out(booking), status_code=201)


@get("/reservations", name="api:reservations_list", guards=[signed_in], tags=["reservations"], summary="Your bookings")
async def api_reservations(request: Request, member_id: FromQuery[int | None] = None) -> ReservationList:
    found = await records.member_reservations(member_id=_holder(request, member_id))
    return ReservationList(reservations=[reservation_out(b) for b in found])


@delete(
    "/reservations/{reservation_id:int}",
    name="api:reservations_cancel",
    guards=[signed_in],
    tags=["reservations"],
    status_code=204,
    summary="Cancel a booking",
)
async def api_cancel_reservation(request: Request, reservation_id: FromPath[int]) -> None:
    user = current_user(request)
    await reservations.cancel_reservation(
        reservation_id=reservation_id,
        actor_id=user.id,
        member_id=None if _is_volunteer(request) else user.id,
        via="api",
    )


API_ROUTES = [
    api_check_out,
    api_loans,
    api_loan,
    api_return,
    api_return_item,
    api_renew,
    api_eligibility,
    api_hold,
    api_holds,
    api_cancel_hold,
    api_reserve,
    api_reservations,
    api_cancel_reservation,
]
ROUTES = [
    card_target,
    member_calendar,
    Router(
        path="/desk",
        guards=[requires(Role.volunteer)],
        route_handlers=[
            desk,
            desk_member,
            desk_check_out,
            desk_renew,
            desk_returns,
            desk_check_in,
            desk_cancel_hold,
            desk_card,
        ],
    ),
    Router(
        path="/account",
        guards=[signed_in],
        route_handlers=[
            my_loans,
            my_card,
            my_renew,
            my_hold,
            my_cancel_hold,
            my_reserve,
            my_cancel_reservation,
            my_calendar_renew,
        ],
    ),
    Router(
        path="/manage/lending",
        guards=[requires(Role.coordinator)],
        route_handlers=[
            manage_lending,
            save_policy,
            save_category_periods,
            save_hours,
            add_closure,
            remove_closure,
            settle_fee,
        ],
    ),
]
