"""Memberships on the web: joining at /join (and coming back from Stripe), members' own
membership on their account page, payments at the desk with receipts, the coordinators'
tiers, agreement and payments pages, Stripe's webhook, and the memberships API."""

from __future__ import annotations

from litestar import Request, Response, Router, get, post, put
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template

from lending import errors, i18n
from lending.i18n import gettext as _
from lending.i18n import lazy_gettext as _l
from lending.mail import services as mail
from lending.members import services as members
from lending.members.rules import Role, may_act_as
from lending.memberships import (
    agreements,
    counter_payments,
    joining,
    records,
    recurring,
    refunds,
    reports,
    rules,
    stripe_events,
    tiers,
)
from lending.memberships.amounts import GiftAid
from lending.memberships.gateway import InvalidSignature, StripeGateway
from lending.memberships.schemas import (
    AmountIn,
    CheckoutIn,
    CheckoutOut,
    CounterPaymentIn,
    CounterPaymentOut,
    GiftAidIn,
    IncomeOut,
    MembershipOut,
    MyMembershipOut,
    PaymentList,
    PaymentOut,
    RefundIn,
    TierList,
    income_row_out,
    membership_out,
    payment_out,
    tier_out,
)
from lending.memberships.tiers import TierInput
from lending.venues import services as venues
from lending.web import auth, flash
from lending.web.auth import current_user, requires, signed_in
from lending.web.forms import form_data


def _gateway(request: Request) -> StripeGateway:
    return request.app.state.payments


def _send_mail(request: Request) -> BackgroundTask:
    """Deliver queued messages (receipts) after the response: the payment is already safe in
    the database, and a slow mail server must not hold up the counter."""
    return BackgroundTask(mail.send_pending, mailer=request.app.state.mailer, limit=20)


def _labels() -> dict:
    return {
        "status": {s.value: label for s, label in rules.STATUS_LABELS.items()},
        "method": {m.value: label for m, label in rules.METHOD_LABELS.items()},
        "interval": {i.value: label for i, label in rules.INTERVAL_LABELS.items()},
        "per": {i.value: label for i, label in rules.PER_INTERVAL.items()},
    }


def _gift_aid_from_form(data: dict) -> GiftAid | None:
    if data.get("gift_aid") != "yes":
        return None
    return GiftAid(
        full_name=data.get("gift_aid_name", ""),
        house=data.get("gift_aid_house", ""),
        postcode=data.get("gift_aid_postcode", ""),
    )


def _gift_aid_from_json(data: GiftAidIn | None) -> GiftAid | None:
    return GiftAid(full_name=data.full_name, house=data.house, postcode=data.postcode) if data else None


def _chosen_amount(data: dict) -> str:
    """The suggested amount picked, or what was typed under "another amount"."""
    picked = data.get("amount", "")
    return data.get("amount_other", "") if picked in ("other", "") else picked


# --- joining -------------------------------------------------------------------------------------


async def _join_context(
    request: Request, *, tier_id: int | None, values: dict, problems: dict, error: str | None
) -> dict:
    offered = await tiers.list_tiers(public_only=True)
    chosen = next((t for t in offered if t.id == tier_id), None)
    if chosen is None and len(offered) == 1:
        chosen = offered[0]
    user = current_user(request)
    return {
        "tiers": offered,
        "tier": chosen,
        "agreement": await agreements.current_agreement(),
        "membership": await records.current_membership(member_id=user.id) if user else None,
        "online": _gateway(request).configured,
        "labels": _labels(),
        "values": values,
        "errors": problems,
        "error": error,
        "is_member": user is None or user.role == Role.member.value,
    }


@get("/join", name="memberships:join", include_in_schema=False)
async def join_page(request: Request, tier: FromQuery[str] = "") -> Template:
    tier_id = int(tier) if tier.isdigit() else None
    return Template(
        template_name="memberships/join.html",
        context=await _join_context(request, tier_id=tier_id, values={}, problems={}, error=None),
    )


@post("/join", name="memberships:join_submit", include_in_schema=False)
async def join_submit(request: Request) -> Response:
    data = await form_data(request)
    user = current_user(request)
    tier_id = int(data["tier"]) if data.get("tier", "").isdigit() else None
    common = dict(
        tier=tier_id,
        amount=_chosen_amount(data),
        forward=data.get("forward", ""),
        pounds=True,
        gift_aid=_gift_aid_from_form(data),
        agreement_version=data.get("agreement_version") or None,
        gateway=_gateway(request),
        base_url=request.app.state.settings.base_url,
    )
    try:
        if user is None:
            outcome = await joining.join(
                name=data.get("name", ""),
                email=data.get("email", ""),
                password=data.get("password", ""),
                phone=data.get("phone") or None,
                language=data.get("language") or i18n.current_language(),
                **common,
            )
        elif user.role != Role.member.value:
            raise errors.RuleViolation(_l("Memberships are for members' accounts."), code="not_a_member")
        else:
            outcome = await joining.start_membership(member_id=user.id, **common)
    except (errors.InvalidInput, errors.Conflict, errors.RuleViolation) as exc:
        data.pop("password", None)
        return Template(
            template_name="memberships/join.html",
            context=await _join_context(
                request, tier_id=tier_id, values=data, problems=exc.errors, error=str(exc.detail)
            ),
            status_code=exc.status,
        )
    if outcome.checkout_url:
        response: Response = Redirect(path=outcome.checkout_url, status_code=303)
    else:
        if outcome.membership.status == rules.Status.active.value and user is not None:
            flash.add(
                request.scope,
                _("Your membership is active until %(date)s.", date=i18n.format_date(outcome.membership.ends_at)),
            )
        elif outcome.membership.status == rules.Status.active.value:
            flash.add(request.scope, _("Welcome! Your membership is active: show your card number at the counter."))
        elif outcome.payment_problem:
            flash.add(request.scope, outcome.payment_problem, "warning")
        else:
            flash.add(
                request.scope,
                _("Your membership is waiting for payment: pay at the counter to start borrowing."),
                "info",
            )
        response = Redirect(path="/account", status_code=303)
    token = getattr(outcome, "session_token", "")
    if token:
        response.set_cookie(auth.session_cookie(token, secure=request.app.state.settings.secure_cookies))
    return response


@get("/join/done", name="memberships:join_done", guards=[signed_in], include_in_schema=False)
async def join_done(request: Request, session_id: FromQuery[str] = "") -> Template:
    """Back from Stripe. The address proves nothing (anyone can type it), so this page only
    shows what Stripe's webhook has confirmed, and waits for it."""
    user = current_user(request)
    checkout = await joining.checkout_for_member(member_id=user.id, session_id=session_id)
    if checkout is None:
        return Template(
            template_name="memberships/done.html",
            context={"checkout": None, "membership": None, "session_id": "", "labels": _labels()},
            status_code=404,
        )
    membership = await records.get_membership(membership_id=checkout["membership"])
    return Template(
        template_name="memberships/done.html",
        context={"checkout": checkout, "membership": membership, "session_id": session_id, "labels": _labels()},
    )


@get("/join/cancelled", name="memberships:join_cancelled", include_in_schema=False)
async def join_cancelled(request: Request) -> Template:
    return Template(template_name="memberships/cancelled.html", context={})


# --- members' own membership ---------------------------------------------------------------------


async def account_context(member_id: int) -> dict:
    """The membership part of the member's account page."""
    membership = await records.current_membership(member_id=member_id)
    tier = await tiers.get_tier(tier_id=membership.tier_id) if membership else None
    return {
        "membership": membership,
        "tier": tier,
        "labels": _labels(),
        "payments": await records.member_payments(member_id=member_id, limit=20),
    }


@post("/account/membership/cancel", name="memberships:cancel", guards=[signed_in], include_in_schema=False)
async def cancel_page(request: Request) -> Response:
    user = current_user(request)
    try:
        membership = await recurring.cancel_recurring(member_id=user.id, gateway=_gateway(request))
    except (errors.Conflict, errors.Unavailable, errors.RuleViolation) as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(path="/account#membership", status_code=303)
    flash.add(
        request.scope,
        _("Your membership will not renew. You can borrow until %(date)s.", date=i18n.format_date(membership.ends_at)),
    )
    return Redirect(path="/account#membership", status_code=303)


@post("/account/membership/amount", name="memberships:change_amount", guards=[signed_in], include_in_schema=False)
async def change_amount_page(request: Request) -> Response:
    user = current_user(request)
    data = await form_data(request)
    try:
        await recurring.change_amount(
            member_id=user.id,
            amount=data.get("amount", ""),
            pounds=True,
            forward=data.get("forward") if "forward" in data else None,
            gateway=_gateway(request),
        )
    except (errors.InvalidInput, errors.Conflict, errors.Unavailable, errors.RuleViolation) as exc:
        flash.add(request.scope, str(exc.detail), "error")
        return Redirect(path="/account#membership", status_code=303)
    flash.add(request.scope, _("Your new amount applies from your next renewal."))
    return Redirect(path="/account#membership", status_code=303)


async def _receipt(request: Request, code: str) -> Template:
    user = current_user(request)
    payment = await records.receipt_for(
        receipt_code=code, viewer_id=user.id, sees_everyones=may_act_as(user.role, Role.volunteer)
    )
    return Template(template_name="memberships/receipt.html", context={"payment": payment, "labels": _labels()})


@get("/account/receipts/{code:str}", name="memberships:my_receipt", guards=[signed_in], include_in_schema=False)
async def my_receipt(request: Request, code: FromPath[str]) -> Template:
    return await _receipt(request, code)


# --- the desk ---------------------------------------------------------------------------------------


async def _desk_context(member_id: int, values: dict, problems: dict, error: str | None) -> dict:
    member = await members.get_account(account_id=member_id)
    offered = await tiers.list_tiers()
    agreement = await agreements.current_agreement()
    accepted = await agreements.accepted_version(account_id=member_id)
    return {
        "agreement": agreement if agreement and accepted != agreement.version else None,
        "member": member,
        "membership": await records.current_membership(member_id=member_id),
        "payments": await records.member_payments(member_id=member_id, limit=10),
        "tiers": offered,
        "gift_aid_offered": any(t.gift_aid for t in offered),
        "labels": _labels(),
        "values": values,
        "errors": problems,
        "error": error,
    }


@get("/members/{member_id:int}/membership", name="memberships:desk_member", include_in_schema=False)
async def desk_member(request: Request, member_id: FromPath[int]) -> Template:
    return Template(
        template_name="memberships/desk_member.html",
        context=await _desk_context(member_id, {"method": "cash"}, {}, None),
    )


@post("/members/{member_id:int}/payments", name="memberships:desk_payment", include_in_schema=False)
async def desk_payment(request: Request, member_id: FromPath[int]) -> Response:
    data = await form_data(request)
    try:
        membership, payment = await counter_payments.record_counter_payment(
            member_id=member_id,
            tier=data.get("tier") or None,
            amount=data.get("amount", ""),
            forward=data.get("forward", ""),
            pounds=True,
            method=data.get("method", ""),
            gift_aid=_gift_aid_from_form(data),
            agreement_version=data.get("agreement_version") or None,
            actor_id=current_user(request).id,
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(
            template_name="memberships/desk_member.html",
            context=await _desk_context(member_id, data, exc.errors, str(exc.detail)),
            status_code=exc.status,
        )
    if payment is None:
        flash.add(
            request.scope, _("The free membership is active until %(date)s.", date=i18n.format_date(membership.ends_at))
        )
        return Redirect(path=f"/desk/members/{member_id}", status_code=303)
    flash.add(request.scope, _("Payment recorded. The membership is active."))
    return Redirect(path=f"/desk/receipts/{payment.receipt_code}", status_code=303, background=_send_mail(request))


@get("/receipts/{code:str}", name="memberships:desk_receipt", include_in_schema=False)
async def desk_receipt(request: Request, code: FromPath[str]) -> Template:
    return await _receipt(request, code)


# --- coordinators -----------------------------------------------------------------------------------


def _tier_input(data: dict) -> tuple[TierInput, dict[str, str]]:
    """The tier form in pounds, read into a TierInput; unreadable amounts are reported by field."""
    problems: dict[str, str] = {}
    pence: dict[str, int] = {}
    for name in ("min_pence", "max_pence"):
        found = rules.parse_pounds(data.get(name, ""))
        if isinstance(found, rules.AmountProblem):
            problems[name] = found.message
            found = 0
        pence[name] = found
    suggested = []
    for part in (data.get("suggested", "") or "").split(","):
        if part.strip():
            found = rules.parse_pounds(part)
            if isinstance(found, rules.AmountProblem):
                problems["suggested"] = _l("List the suggested amounts in pounds, separated by commas.")
            else:
                suggested.append(found)
    numbers: dict[str, int] = {}
    for name, default in (("loan_limit", 3), ("loan_days", 7), ("position", 0)):
        text = data.get(name, "").strip()
        numbers[name] = int(text) if text.isdigit() else (default if not text else -1)
    return TierInput(
        name=data.get("name", ""),
        description=data.get("description", ""),
        suggested=suggested,
        min_pence=pence["min_pence"],
        max_pence=pence["max_pence"],
        allow_free=data.get("allow_free") == "yes",
        interval=data.get("interval", ""),
        offer_pay_forward=data.get("offer_pay_forward") == "yes",
        gift_aid=data.get("gift_aid") == "yes",
        loan_limit=numbers["loan_limit"],
        loan_days=numbers["loan_days"],
        public=data.get("public") == "yes",
        active=data.get("active") == "yes",
        position=max(0, numbers["position"]),
    ), problems


def _tier_values(tier) -> dict:
    return {
        "name": tier.name,
        "description": tier.description,
        "suggested": ", ".join(f"{p / 100:.2f}" for p in tier.suggested),
        "min_pence": f"{tier.min_pence / 100:.2f}",
        "max_pence": f"{tier.max_pence / 100:.2f}",
        "allow_free": "yes" if tier.allow_free else "",
        "interval": tier.interval,
        "offer_pay_forward": "yes" if tier.offer_pay_forward else "",
        "gift_aid": "yes" if tier.gift_aid else "",
        "loan_limit": str(tier.loan_limit),
        "loan_days": str(tier.loan_days),
        "public": "yes" if tier.public else "",
        "active": "yes" if tier.active else "",
        "position": str(tier.position),
    }


_NEW_TIER = {
    "interval": "one_off",
    "min_pence": "0.00",
    "max_pence": "50.00",
    "loan_limit": "3",
    "loan_days": "7",
    "public": "yes",
    "active": "yes",
    "offer_pay_forward": "yes",
    "position": "0",
}


async def _manage_context(values: dict | None = None, problems: dict | None = None, error: str | None = None) -> dict:
    return {
        "tiers": await tiers.list_tiers(include_inactive=True),
        "agreement": await agreements.current_agreement(),
        "labels": _labels(),
        "values": values or {},
        "errors": problems or {},
        "error": error,
    }


@get("/", name="memberships:manage", include_in_schema=False)
async def manage_page(request: Request) -> Template:
    return Template(template_name="memberships/manage.html", context=await _manage_context())


def _tier_template(tier_id: int | None, values: dict, problems: dict, error: str | None, status: int = 200) -> Template:
    return Template(
        template_name="memberships/tier.html",
        context={
            "tier_id": tier_id,
            "values": values,
            "errors": problems,
            "error": error,
            "labels": _labels(),
            "intervals": [(i.value, rules.INTERVAL_LABELS[i]) for i in rules.Interval],
        },
        status_code=status,
    )


@get("/tiers/new", name="memberships:tier_new", include_in_schema=False)
async def tier_new(request: Request) -> Template:
    return _tier_template(None, dict(_NEW_TIER), {}, None)


@get("/tiers/{tier_id:int}", name="memberships:tier_edit", include_in_schema=False)
async def tier_edit(request: Request, tier_id: FromPath[int]) -> Template:
    return _tier_template(tier_id, _tier_values(await tiers.get_tier(tier_id=tier_id)), {}, None)


async def _save_tier(request: Request, tier_id: int | None) -> Response:
    data = await form_data(request)
    values, problems = _tier_input(data)
    try:
        if problems:
            raise errors.InvalidInput(_l("Check the membership's settings."), errors=problems)
        tier = await tiers.save_tier(values=values, tier_id=tier_id, actor_id=current_user(request).id)
    except (errors.InvalidInput, errors.Conflict) as exc:
        return _tier_template(tier_id, data, exc.errors, str(exc.detail), exc.status)
    flash.add(request.scope, _("The membership “%(name)s” is saved.", name=tier.name))
    return Redirect(path="/manage/memberships", status_code=303)


@post("/tiers", name="memberships:tier_create", include_in_schema=False)
async def tier_create(request: Request) -> Response:
    return await _save_tier(request, None)


@post("/tiers/{tier_id:int}", name="memberships:tier_update", include_in_schema=False)
async def tier_update(request: Request, tier_id: FromPath[int]) -> Response:
    return await _save_tier(request, tier_id)


@post("/agreement", name="memberships:agreement", include_in_schema=False)
async def agreement_publish(request: Request) -> Response:
    data = await form_data(request)
    try:
        agreement = await agreements.publish_agreement(
            body=data.get("body", ""), body_cy=data.get("body_cy", ""), actor_id=current_user(request).id
        )
    except (errors.InvalidInput, errors.Conflict) as exc:
        return Template(
            template_name="memberships/manage.html",
            context=await _manage_context(data, exc.errors, str(exc.detail)),
            status_code=exc.status,
        )
    flash.add(
        request.scope,
        _(
            "Version %(version)d of the borrowing agreement is published. Members accept it "
            "when they next join or renew.",
            version=agreement.version,
        ),
    )
    return Redirect(path="/manage/memberships#agreement", status_code=303)


@get("/", name="memberships:payments", include_in_schema=False)
async def payments_page(request: Request) -> Template:
    return Template(
        template_name="memberships/payments.html",
        context={
            "income": await reports.income_by_month(),
            "payments": await records.list_payments(limit=200),
            "unmatched": await stripe_events.unmatched_events(),
            "labels": _labels(),
        },
    )


@get("/export.csv", name="memberships:payments_csv", include_in_schema=False)
async def payments_csv(request: Request) -> Response:
    return Response(
        content=await reports.export_payments_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="payments.csv"'},
    )


def _payment_template(payment, values: dict, problems: dict, error: str | None, status: int = 200) -> Template:
    return Template(
        template_name="memberships/payment.html",
        context={"payment": payment, "labels": _labels(), "values": values, "errors": problems, "error": error},
        status_code=status,
    )


@get("/{payment_id:int}", name="memberships:payment", include_in_schema=False)
async def payment_page(request: Request, payment_id: FromPath[int]) -> Template:
    payment = await records.get_payment(payment_id=payment_id)
    return _payment_template(payment, {"amount": f"{payment.refundable_pence / 100:.2f}"}, {}, None)


@post("/{payment_id:int}/refund", name="memberships:refund", include_in_schema=False)
async def refund_page(request: Request, payment_id: FromPath[int]) -> Response:
    data = await form_data(request)
    try:
        await refunds.refund_payment(
            payment_id=payment_id,
            amount=data.get("amount", ""),
            pounds=True,
            reason=data.get("reason", ""),
            end_membership=data.get("end_membership") == "yes",
            gateway=_gateway(request),
            actor_id=current_user(request).id,
        )
    except (errors.InvalidInput, errors.Conflict, errors.Unavailable, errors.RuleViolation) as exc:
        return _payment_template(
            await records.get_payment(payment_id=payment_id), data, exc.errors, str(exc.detail), exc.status
        )
    flash.add(request.scope, _("The refund is recorded."))
    return Redirect(path=f"/manage/payments/{payment_id}", status_code=303)


# --- Stripe's webhook --------------------------------------------------------------------------------


@post(
    "/webhooks/stripe",
    name="memberships:stripe_webhook",
    tags=["webhooks"],
    status_code=200,
    summary="Stripe events (signed with STRIPE_WEBHOOK_SECRET)",
)
async def stripe_webhook(request: Request) -> Response:
    """Verified with the SDK on the raw body; each event id has one effect, however often
    Stripe delivers it."""
    payload = await request.body()
    try:
        event = _gateway(request).verify_event(payload, request.headers.get("stripe-signature"))
    except InvalidSignature as exc:
        raise errors.DomainError(_l("The Stripe signature does not match this request."), code="bad_signature") from exc
    outcome = await stripe_events.handle_stripe_event(event=event)
    return Response(content={"received": True, "outcome": outcome}, status_code=200, background=_send_mail(request))


# --- JSON API ---------------------------------------------------------------------------------------------


@get("/membership-tiers", name="api:membership_tiers", tags=["memberships"], summary="The memberships offered")
async def api_tiers(request: Request) -> TierList:
    return TierList(tiers=[tier_out(t, await venues.currency()) for t in await tiers.list_tiers(public_only=True)])


async def _member_id(data: CounterPaymentIn) -> int:
    if data.member_id is not None:
        return data.member_id
    return (await members.member_by_card(card_code=data.card_code or "")).id


@post(
    "/memberships",
    name="api:memberships_counter",
    guards=[requires(Role.volunteer)],
    tags=["memberships"],
    summary="Record a payment at the counter (cash or card reader) and activate or renew the membership",
)
async def api_counter_payment(request: Request, data: JSONBody[CounterPaymentIn]) -> Response[CounterPaymentOut]:
    membership, payment = await counter_payments.record_counter_payment(
        member_id=await _member_id(data),
        tier=data.tier,
        amount=data.amount_pence,
        forward=data.forward_pence,
        method=data.method,
        gift_aid=_gift_aid_from_json(data.gift_aid),
        actor_id=current_user(request).id,
    )
    return Response(
        content=CounterPaymentOut(
            membership=membership_out(membership), payment=payment_out(payment) if payment else None
        ),
        status_code=201,
        background=_send_mail(request),
    )


def _member_only(request: Request):
    user = current_user(request)
    if user.role != Role.member.value:
        raise errors.NotAllowed(_l("Memberships are for members' accounts."), code="not_a_member")
    return user


@post(
    "/memberships/checkout",
    name="api:memberships_checkout",
    guards=[signed_in],
    tags=["memberships"],
    status_code=200,
    summary="Start paying for a membership (0 activates a free one where allowed)",
)
async def api_checkout(request: Request, data: JSONBody[CheckoutIn]) -> CheckoutOut:
    user = _member_only(request)
    outcome = await joining.start_membership(
        member_id=user.id,
        tier=data.tier,
        interval=data.interval,
        amount=data.amount_pence,
        forward=data.forward_pence,
        gift_aid=_gift_aid_from_json(data.gift_aid),
        agreement_version=data.agreement_version,
        gateway=_gateway(request),
        base_url=request.app.state.settings.base_url,
    )
    return CheckoutOut(
        checkout_url=outcome.checkout_url,
        membership=membership_out(outcome.membership),
        pay_at_counter=outcome.pay_at_counter,
        detail=outcome.payment_problem,
    )


@get(
    "/memberships/mine",
    name="api:memberships_mine",
    guards=[signed_in],
    tags=["memberships"],
    summary="Your membership and payments",
)
async def api_mine(request: Request) -> MyMembershipOut:
    user = current_user(request)
    membership = await records.current_membership(member_id=user.id)
    return MyMembershipOut(
        membership=membership_out(membership) if membership else None,
        payments=[payment_out(p) for p in await records.member_payments(member_id=user.id)],
    )


@get(
    "/memberships/checkouts/{session_id:str}",
    name="api:memberships_checkout_status",
    guards=[signed_in],
    tags=["memberships"],
    summary="Whether Stripe has confirmed your checkout",
)
async def api_checkout_status(request: Request, session_id: FromPath[str]) -> dict:
    user = current_user(request)
    checkout = await joining.checkout_for_member(member_id=user.id, session_id=session_id)
    if checkout is None:
        raise errors.NotFound(_l("There is no such checkout."), code="checkout_not_found")
    membership = await records.get_membership(membership_id=checkout["membership"])
    return {"checkout": checkout["status"], "membership": membership.status}


@post(
    "/memberships/mine/cancel",
    name="api:memberships_cancel",
    guards=[signed_in],
    tags=["memberships"],
    status_code=200,
    summary="Stop a recurring membership at the end of the period paid for",
)
async def api_cancel(request: Request) -> MembershipOut:
    user = _member_only(request)
    return membership_out(await recurring.cancel_recurring(member_id=user.id, gateway=_gateway(request)))


@put(
    "/memberships/mine/amount",
    name="api:memberships_amount",
    guards=[signed_in],
    tags=["memberships"],
    summary="Change what a recurring membership charges from the next renewal",
)
async def api_amount(request: Request, data: JSONBody[AmountIn]) -> MembershipOut:
    user = _member_only(request)
    return membership_out(
        await recurring.change_amount(
            member_id=user.id, amount=data.amount_pence, forward=data.forward_pence, gateway=_gateway(request)
        )
    )


@get(
    "/payments",
    name="api:payments",
    guards=[requires(Role.coordinator)],
    tags=["memberships"],
    summary="Payments, newest first",
)
async def api_payments(request: Request, limit: FromQuery[int] = 200) -> PaymentList:
    return PaymentList(payments=[payment_out(p) for p in await records.list_payments(limit=max(1, min(limit, 1000)))])


@post(
    "/payments/{payment_id:int}/refund",
    name="api:payments_refund",
    guards=[requires(Role.coordinator)],
    tags=["memberships"],
    status_code=200,
    summary="Refund all or part of a payment",
)
async def api_refund(request: Request, payment_id: FromPath[int], data: JSONBody[RefundIn]) -> PaymentOut:
    refunded = await refunds.refund_payment(
        payment_id=payment_id,
        amount=data.amount_pence,
        reason=data.reason,
        end_membership=data.end_membership,
        gateway=_gateway(request),
        actor_id=current_user(request).id,
    )
    return payment_out(refunded)


@get(
    "/reports/income",
    name="api:reports_income",
    guards=[requires(Role.coordinator)],
    tags=["memberships"],
    summary="Income by month and payment method",
)
async def api_income(request: Request) -> IncomeOut:
    return IncomeOut(
        currency=await venues.currency(), rows=[income_row_out(r) for r in await reports.income_by_month()]
    )


API_ROUTES = [
    api_tiers,
    api_counter_payment,
    api_checkout,
    api_mine,
    api_checkout_status,
    api_cancel,
    api_amount,
    api_payments,
    api_refund,
    api_income,
]
ROUTES = [
    join_page,
    join_submit,
    join_done,
    join_cancelled,
    stripe_webhook,
    Router(path="/", guards=[signed_in], route_handlers=[cancel_page, change_amount_page, my_receipt]),
    Router(path="/desk", guards=[requires(Role.volunteer)], route_handlers=[desk_member, desk_payment, desk_receipt]),
    Router(
        path="/manage/memberships",
        guards=[requires(Role.coordinator)],
        route_handlers=[manage_page, tier_new, tier_edit, tier_create, tier_update, agreement_publish],
    ),
    Router(
        path="/manage/payments",
        guards=[requires(Role.coordinator)],
        route_handlers=[payments_page, payments_csv, payment_page, refund_page],
    ),
]
