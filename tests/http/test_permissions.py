"""Every route of the app, walked with every role, against one permission table.

``PERMISSIONS`` maps each (method, path template) of ``app.routes`` to who may use it. The
routes are read from the app itself, so a new route that is not in the table fails
``test_every_route_is_in_the_permission_table``: add it there, with the rule it should follow.

The walk signs each role in once (a browser session with its CSRF token for pages and the API,
a bearer token for the API) and sends every route's method with an empty or minimal body and
real ids from a small seeded library. A role the table refuses must get the refusal (pages: a
303 to /login for anonymous visitors, 403 for a signed-in person; the API: 401 without a token,
403 for the wrong role, each with a stable JSON ``code``); a role it allows must get anything
but 401/403 (a 200, a 303, a 404 for a missing thing, a 409 or a 4xx for an empty form all
show that the permission layer let it through). Guards run before the handler (Litestar calls
them before it resolves parameters or reads the body), so a made-up id still proves the guard.
Every mismatch is listed in one table at the end, not only the first.

Also walked: every unsafe route with a session but no CSRF token (403 csrf_failed), every API
route with a made-up token (401 invalid_token), and the special cases after the walk: another
organisation's referrals, another member's records, the admin, the Stripe webhook, the first run.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import stripe
from litestar.routes import ASGIRoute, HTTPRoute

from lending import clock
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.loans import calendar_feed, checkout, holds, records, reservations
from lending.mail import rules as mail_rules
from lending.members import organisations
from lending.members import services as members
from lending.members.tables import Account
from lending.memberships import counter_payments, tiers
from lending.memberships import records as membership_records
from lending.memberships.tiers import TierInput
from lending.referrals import rules as referral_rules
from lending.referrals import services as referrals
from lending.referrals.tables import Referral
from lending.suggestions import services as suggestions
from lending.venues import services as venues
from tests.conftest import PASSWORD, bearer, csrf_token, http_client, make_settings, sign_in

ROLES = ("anonymous", "member", "volunteer", "link_worker", "coordinator")
SIGNED_IN_ROLES = ROLES[1:]
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- the permission table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Who the permission layer lets through, and how it refuses a signed-in person it does
    not: ``refused`` are the statuses, ``codes`` the API's error codes. Anonymous callers are
    refused as "not signed in" (a 303 to /login for pages, 401 for the API) unless the rule
    lets them through. ``bearer_only``: the browser session is never enough (401 even for an
    allowed role). ``fhir``: errors are FHIR OperationOutcomes, not ``{"code", "detail"}``."""

    allowed: frozenset[str]
    refused: frozenset[int] = frozenset({403})
    codes: frozenset[str] = frozenset({"wrong_role"})
    bearer_only: bool = False
    fhir: bool = False
    note: str = ""


def rule(
    *roles: str,
    refused: tuple[int, ...] = (403,),
    codes: tuple[str, ...] = ("wrong_role",),
    bearer_only: bool = False,
    fhir: bool = False,
    note: str = "",
) -> Rule:
    unknown = set(roles) - set(ROLES)
    assert not unknown, unknown
    return Rule(frozenset(roles), frozenset(refused), frozenset(codes), bearer_only, fhir, note)


PUBLIC = rule(*ROLES, note="anyone, signed in or not")
SIGNED_IN = rule(*SIGNED_IN_ROLES, note="any signed-in account")
VOLUNTEER = rule("volunteer", "coordinator", note="the desk: volunteers and coordinators")
LINK_WORKER = rule("link_worker", "coordinator", note="link workers (their own organisation's) and coordinators")
COORDINATOR = rule("coordinator", note="coordinators only")
MEMBER_ACCOUNT = rule("member", codes=("not_a_member",), note="memberships are for members' own accounts")
ISSUER = rule(
    "link_worker",
    codes=("wrong_role", "not_allowed"),
    note="only a link worker issues referrals, for their organisation (coordinators: not_allowed)",
)
# The seeded loan, hold, booking, receipt and redemption are the member's ("member@example.org").
OWNER = rule(
    "member",
    refused=(404,),
    codes=("loan_not_found", "hold_not_found", "reservation_not_found"),
    note="the member's own record; to anyone else it does not exist",
)
OWNER_OR_STAFF = rule(
    "member",
    "volunteer",
    "coordinator",
    refused=(403, 404),
    codes=("not_allowed", "loan_not_found", "hold_not_found", "reservation_not_found", "payment_not_found"),
    note="the member's own record, or volunteers for them; to anyone else it does not exist",
)
FHIR = rule(
    "link_worker",
    bearer_only=True,
    fhir=True,
    codes=(),
    note="FHIR: a link worker's API token only; every answer is FHIR",
)

PERMISSIONS: dict[tuple[str, str], Rule] = {
    # web: every visitor
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/language/{code:str}"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("POST", "/welcome"): PUBLIC,  # the first run only; afterwards it sends people to sign in (tested below)
    ("GET", "/venue/theme.css"): PUBLIC,
    ("GET", "/venue/logo.png"): PUBLIC,
    ("GET", "/static/{file_path:path}"): PUBLIC,
    ("HEAD", "/static/{file_path:path}"): PUBLIC,
    ("GET", "/schema"): PUBLIC,
    ("GET", "/schema/swagger"): PUBLIC,
    ("GET", "/schema/openapi.json"): PUBLIC,
    ("GET", "/schema/oauth2-redirect.html"): PUBLIC,
    ("GET", "/schema/{path:str}"): PUBLIC,
    # members: your own account, registering at the desk, the people page
    ("GET", "/account"): SIGNED_IN,
    ("POST", "/account/language"): SIGNED_IN,
    ("GET", "/desk/members/new"): VOLUNTEER,
    ("POST", "/desk/members"): VOLUNTEER,
    ("POST", "/desk/members/{account_id:int}/language"): VOLUNTEER,
    ("GET", "/manage/people"): COORDINATOR,
    ("POST", "/manage/people"): COORDINATOR,
    ("GET", "/manage/people/{account_id:int}"): COORDINATOR,
    ("GET", "/manage/people/{account_id:int}/export"): COORDINATOR,
    ("POST", "/manage/people/{account_id:int}/erase"): COORDINATOR,
    # catalogue
    ("GET", "/i/{code:str}"): PUBLIC,
    ("POST", "/i/{code:str}/problems"): PUBLIC,  # anyone who scans an item may report a problem
    ("GET", "/items"): PUBLIC,
    ("GET", "/photos/{photo_id:int}"): PUBLIC,
    ("GET", "/photos/{photo_id:int}/thumb"): PUBLIC,
    ("GET", "/manuals/{manual_id:int}"): PUBLIC,
    ("GET", "/desk/items/new"): VOLUNTEER,
    ("POST", "/desk/items/new"): VOLUNTEER,
    ("GET", "/desk/items/{code:str}"): VOLUNTEER,
    ("POST", "/desk/items/{code:str}"): VOLUNTEER,
    ("POST", "/desk/items/{code:str}/status"): VOLUNTEER,
    ("GET", "/desk/labels"): VOLUNTEER,
    ("POST", "/desk/labels"): VOLUNTEER,
    ("POST", "/desk/problems/{problem_id:int}/resolve"): VOLUNTEER,
    ("GET", "/manage/catalogue"): COORDINATOR,
    ("POST", "/manage/catalogue/categories"): COORDINATOR,
    ("POST", "/manage/catalogue/sites"): COORDINATOR,
    # lending
    ("GET", "/c/{code:str}"): SIGNED_IN,  # a card's QR: the handler sends visitors to sign in
    ("GET", "/calendar/{token:str}"): PUBLIC,  # the address is the secret
    ("GET", "/desk"): VOLUNTEER,
    ("GET", "/desk/members/{member_id:int}"): VOLUNTEER,
    ("POST", "/desk/members/{member_id:int}/loans"): VOLUNTEER,
    ("POST", "/desk/loans/{loan_id:int}/renew"): VOLUNTEER,
    ("GET", "/desk/returns"): VOLUNTEER,
    ("POST", "/desk/returns"): VOLUNTEER,
    ("POST", "/desk/holds/{hold_id:int}/cancel"): VOLUNTEER,
    ("GET", "/desk/members/{member_id:int}/card"): VOLUNTEER,
    ("GET", "/account/loans"): SIGNED_IN,
    ("GET", "/account/card"): SIGNED_IN,
    ("POST", "/account/loans/{loan_id:int}/renew"): OWNER,
    ("POST", "/account/holds"): SIGNED_IN,
    ("POST", "/account/holds/{hold_id:int}/cancel"): OWNER,
    ("POST", "/account/reservations"): SIGNED_IN,
    ("POST", "/account/reservations/{reservation_id:int}/cancel"): OWNER,
    ("POST", "/account/calendar/renew"): SIGNED_IN,
    ("GET", "/manage/lending"): COORDINATOR,
    ("POST", "/manage/lending/policy"): COORDINATOR,
    ("POST", "/manage/lending/categories"): COORDINATOR,
    ("POST", "/manage/lending/hours"): COORDINATOR,
    ("POST", "/manage/lending/closures"): COORDINATOR,
    ("POST", "/manage/lending/closures/{closure_id:int}/remove"): COORDINATOR,
    ("POST", "/manage/lending/fees/{fee_id:int}"): COORDINATOR,
    # referrals
    ("GET", "/r/{code:str}"): PUBLIC,
    ("GET", "/redeem"): PUBLIC,
    ("POST", "/redeem"): PUBLIC,  # signed-in accounts other than members get 422 not_a_member
    ("GET", "/referrals"): LINK_WORKER,
    ("POST", "/referrals"): ISSUER,
    ("GET", "/referrals/impact"): LINK_WORKER,
    ("GET", "/referrals/impact.csv"): LINK_WORKER,
    ("GET", "/referrals/{code:str}"): LINK_WORKER,
    ("GET", "/referrals/{code:str}/outcome.txt"): LINK_WORKER,
    ("GET", "/referrals/{code:str}/voucher"): LINK_WORKER,
    ("POST", "/referrals/{code:str}/withdraw"): LINK_WORKER,
    ("POST", "/referrals/{code:str}/extend"): LINK_WORKER,
    ("POST", "/desk/members/{member_id:int}/referral"): VOLUNTEER,
    ("GET", "/manage/organisations"): COORDINATOR,
    ("POST", "/manage/organisations"): COORDINATOR,
    ("POST", "/manage/organisations/settings"): COORDINATOR,
    ("GET", "/manage/impact"): COORDINATOR,
    ("GET", "/manage/impact.csv"): COORDINATOR,
    # the venue
    ("GET", "/manage"): COORDINATOR,
    ("GET", "/manage/venue"): COORDINATOR,
    ("POST", "/manage/venue"): COORDINATOR,
    ("POST", "/manage/venue/logo"): COORDINATOR,
    ("GET", "/manage/venue/setup.json"): COORDINATOR,
    ("POST", "/manage/venue/setup"): COORDINATOR,
    ("GET", "/manage/emails"): COORDINATOR,
    ("GET", "/manage/emails/{kind:str}/{language:str}"): COORDINATOR,
    ("POST", "/manage/emails/{kind:str}/{language:str}"): COORDINATOR,
    # suggestions
    ("GET", "/suggestions"): SIGNED_IN,
    ("POST", "/suggestions"): SIGNED_IN,
    ("POST", "/suggestions/{suggestion_id:int}/support"): SIGNED_IN,
    ("POST", "/suggestions/{suggestion_id:int}/withdraw"): SIGNED_IN,
    ("GET", "/manage/suggestions"): COORDINATOR,
    ("POST", "/manage/suggestions/{suggestion_id:int}/acquire"): COORDINATOR,
    ("POST", "/manage/suggestions/{suggestion_id:int}/decline"): COORDINATOR,
    # memberships
    ("GET", "/join"): PUBLIC,
    ("POST", "/join"): PUBLIC,  # signed-in accounts other than members get 422 not_a_member
    ("GET", "/join/done"): SIGNED_IN,
    ("GET", "/join/cancelled"): PUBLIC,
    ("POST", "/webhooks/stripe"): PUBLIC,  # Stripe's; the signature is the check (tested below)
    ("POST", "/account/membership/cancel"): SIGNED_IN,
    ("POST", "/account/membership/amount"): SIGNED_IN,
    ("GET", "/account/receipts/{code:str}"): OWNER_OR_STAFF,
    ("GET", "/desk/members/{member_id:int}/membership"): VOLUNTEER,
    ("POST", "/desk/members/{member_id:int}/payments"): VOLUNTEER,
    ("GET", "/desk/receipts/{code:str}"): VOLUNTEER,
    ("GET", "/manage/memberships"): COORDINATOR,
    ("GET", "/manage/memberships/tiers/new"): COORDINATOR,
    ("GET", "/manage/memberships/tiers/{tier_id:int}"): COORDINATOR,
    ("POST", "/manage/memberships/tiers"): COORDINATOR,
    ("POST", "/manage/memberships/tiers/{tier_id:int}"): COORDINATOR,
    ("POST", "/manage/memberships/agreement"): COORDINATOR,
    ("GET", "/manage/payments"): COORDINATOR,
    ("GET", "/manage/payments/export.csv"): COORDINATOR,
    ("GET", "/manage/payments/{payment_id:int}"): COORDINATOR,
    ("POST", "/manage/payments/{payment_id:int}/refund"): COORDINATOR,
    # the admin: a mount, walked at /admin/ only (its own sub-routes are piccolo_admin's)
    ("ASGI", "/admin"): COORDINATOR,
    # JSON API v1
    ("GET", "/api/v1/me"): SIGNED_IN,
    ("GET", "/api/v1/members"): VOLUNTEER,
    ("POST", "/api/v1/members"): VOLUNTEER,
    ("GET", "/api/v1/members/{member_id:int}/eligibility"): VOLUNTEER,
    ("GET", "/api/v1/items"): PUBLIC,
    ("POST", "/api/v1/items"): VOLUNTEER,
    ("GET", "/api/v1/items/{code:str}"): PUBLIC,
    ("GET", "/api/v1/items/{code:str}/qr.png"): PUBLIC,
    ("GET", "/api/v1/items/{code:str}/qr.svg"): PUBLIC,
    ("POST", "/api/v1/labels"): VOLUNTEER,
    ("GET", "/api/v1/suggestions"): SIGNED_IN,
    ("POST", "/api/v1/suggestions"): SIGNED_IN,
    ("GET", "/api/v1/suggestions/mine"): SIGNED_IN,
    ("PUT", "/api/v1/suggestions/{suggestion_id:int}/support"): SIGNED_IN,
    ("DELETE", "/api/v1/suggestions/{suggestion_id:int}/support"): SIGNED_IN,
    ("POST", "/api/v1/suggestions/{suggestion_id:int}/decision"): COORDINATOR,
    ("GET", "/api/v1/membership-tiers"): PUBLIC,
    ("POST", "/api/v1/memberships"): VOLUNTEER,
    ("POST", "/api/v1/memberships/checkout"): MEMBER_ACCOUNT,
    ("GET", "/api/v1/memberships/mine"): SIGNED_IN,
    ("GET", "/api/v1/memberships/checkouts/{session_id:str}"): SIGNED_IN,
    ("POST", "/api/v1/memberships/mine/cancel"): MEMBER_ACCOUNT,
    ("PUT", "/api/v1/memberships/mine/amount"): MEMBER_ACCOUNT,
    ("GET", "/api/v1/payments"): COORDINATOR,
    ("POST", "/api/v1/payments/{payment_id:int}/refund"): COORDINATOR,
    ("GET", "/api/v1/reports/income"): COORDINATOR,
    ("POST", "/api/v1/loans"): VOLUNTEER,
    ("GET", "/api/v1/loans"): SIGNED_IN,  # your own loans; ?member_id= only counts for volunteers
    ("GET", "/api/v1/loans/{loan_id:int}"): OWNER_OR_STAFF,
    ("POST", "/api/v1/loans/{loan_id:int}/return"): VOLUNTEER,
    ("POST", "/api/v1/loans/{loan_id:int}/renew"): OWNER_OR_STAFF,
    ("POST", "/api/v1/returns"): VOLUNTEER,
    ("GET", "/api/v1/holds"): OWNER_OR_STAFF,  # walked with ?member_id= of the member
    ("POST", "/api/v1/holds"): OWNER_OR_STAFF,  # walked with the member's member_id
    ("DELETE", "/api/v1/holds/{hold_id:int}"): OWNER_OR_STAFF,
    ("GET", "/api/v1/reservations"): OWNER_OR_STAFF,
    ("POST", "/api/v1/reservations"): OWNER_OR_STAFF,
    ("DELETE", "/api/v1/reservations/{reservation_id:int}"): OWNER_OR_STAFF,
    ("GET", "/api/v1/referrals"): LINK_WORKER,
    ("POST", "/api/v1/referrals"): ISSUER,
    ("POST", "/api/v1/referrals/{code:str}/redeem"): OWNER_OR_STAFF,  # walked with the member's member_id
    ("GET", "/api/v1/reports/impact"): LINK_WORKER,
    ("POST", "/api/v1/fhir/ServiceRequest"): FHIR,
    ("GET", "/api/v1/fhir/ServiceRequest/{code:str}"): FHIR,
    ("GET", "/api/v1/venue"): PUBLIC,
    ("PUT", "/api/v1/venue"): COORDINATOR,
    ("GET", "/api/v1/venue/setup"): COORDINATOR,
    ("POST", "/api/v1/venue/setup"): COORDINATOR,
}

# Routes whose permission depends on what is sent: walked with this body or query, not empty.
BODIES: dict[tuple[str, str], Callable[[dict], dict]] = {
    ("POST", "/api/v1/memberships/checkout"): lambda s: {"amount_pence": 0},
    ("PUT", "/api/v1/memberships/mine/amount"): lambda s: {"amount_pence": 500},
    ("POST", "/api/v1/referrals"): lambda s: {
        "name": "Sam",
        "contact_route": "through_me",
        "months": 3,
        "consent_referral": True,
        "redeem_by": (clock.now().date() + timedelta(days=20)).isoformat(),
    },
    ("POST", "/api/v1/referrals/{code:str}/redeem"): lambda s: {"member_id": s["member_id"]},
    ("POST", "/api/v1/holds"): lambda s: {"item_code": s["spare_code"], "member_id": s["member_id"]},
    ("POST", "/api/v1/reservations"): lambda s: {
        "item_code": s["spare_code"],
        "member_id": s["member_id"],
        "starts_on": s["book_from"],
        "ends_on": s["book_to"],
    },
}
QUERIES: dict[tuple[str, str], Callable[[dict], dict]] = {
    ("GET", "/api/v1/holds"): lambda s: {"member_id": s["member_id"]},
    ("GET", "/api/v1/reservations"): lambda s: {"member_id": s["member_id"]},
}
# Which seeded code fills a {code} parameter, by the path's start.
CODE_PARAMETER = (
    ("/i/", "item_code"),
    ("/desk/items/", "item_code"),
    ("/api/v1/items/", "item_code"),
    ("/c/", "card_code"),
    ("/referrals/", "referral_code"),
    ("/r/", "referral_code"),
    ("/api/v1/referrals/", "referral_code"),
    ("/api/v1/fhir/", "referral_code"),
    ("/language/", "language"),
    ("/account/receipts/", "receipt_code"),
    ("/desk/receipts/", "receipt_code"),
)
# Walked last: signing out ends the role's session; a new calendar address ends the seeded one.
WALKED_LAST = {("POST", "/logout"), ("POST", "/account/calendar/renew")}
MACHINE_PREFIXES = ("/api/", "/health", "/schema", "/webhooks/")  # walked with bearer tokens as well as sessions
CSRF_EXEMPT = {
    ("POST", "/webhooks/stripe"): "Stripe's webhook: the signature is its check",
    ("POST", "/api/v1/fhir/ServiceRequest"): "bearer tokens only, so a browser cannot be made to send it",
    ("ASGI", "/admin"): "piccolo_admin checks its own CSRF token",
}


# --- the app's routes ---------------------------------------------------------------------------


def app_routes(app) -> dict[tuple[str, str], str]:
    """(method, path template) -> handler name, for every route of the app. Litestar's own
    OPTIONS answer on every path is left out; a mount is ("ASGI", its path)."""
    found: dict[tuple[str, str], str] = {}
    for route in app.routes:
        if isinstance(route, ASGIRoute):
            found[("ASGI", route.path)] = route.route_handler.name or route.route_handler.handler_name
            continue
        assert isinstance(route, HTTPRoute), route
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method == "OPTIONS" and handler.name is None:
                    continue
                found[(method, route.path)] = handler.name or handler.handler_name
    return found


async def test_every_route_is_in_the_permission_table(app):
    routes = app_routes(app)
    missing = sorted(key for key in routes if key not in PERMISSIONS)
    stale = sorted(key for key in PERMISSIONS if key not in routes)
    problems = [
        f"{method} {path} ({routes[(method, path)]}) is not in the permission table: add it to the "
        f"permission table in tests/http/test_permissions.py"
        for method, path in missing
    ]
    problems += [
        f"{method} {path} is in the permission table but not in the app: remove it from the table"
        for method, path in stale
    ]
    assert not problems, "\n".join(problems)
    for key in (*BODIES, *QUERIES, *CSRF_EXEMPT, *WALKED_LAST):
        assert key in routes, f"{key} is not a route any more"


# --- a small library to walk --------------------------------------------------------------------


async def seed_library(people) -> dict:
    """Real rows for every path parameter that is cheap to make; the rest are made up (a guard
    answers before any lookup). The loan, hold, booking and receipt are the member's."""
    venues.forget_cache()
    member, link_worker = people["member"], people["link_worker"]
    tier = await tiers.save_tier(
        values=TierInput(name="Pay what you can", min_pence=0, max_pence=5000, allow_free=True, loan_limit=5)
    )
    _membership, payment = await counter_payments.record_counter_payment(
        member_id=member.id, tier=tier.id, amount=500, method="cash", actor_id=None
    )
    await referrals.save_settings(tier_id=tier.id, months_options="3,6,12", redeem_days="60", erase_after_days="365")
    drill = await catalog.add_item(details=ItemDetails(name="Cordless drill", parts="Drill\nCharger"))
    tent = await catalog.add_item(details=ItemDetails(name="Tent"))
    saw = await catalog.add_item(details=ItemDetails(name="Jigsaw"))
    spare = await catalog.add_item(details=ItemDetails(name="Sewing machine"))
    [loan] = await checkout.check_out(member_id=member.id, item_codes=[drill.code], actor_id=None)
    hold = await holds.place_hold(member_id=member.id, item_code=tent.code)
    start = clock.now().date() + timedelta(days=3)
    booking = await reservations.reserve(
        member_id=member.id, item_code=saw.code, starts_on=start, ends_on=start + timedelta(days=1)
    )
    problem = await catalog.report_problem(code=saw.code, description="The blade is blunt")
    closure = await venues.add_closure(starts_on=start + timedelta(days=40), reason="Holiday")
    suggestion = await suggestions.suggest(title="Pressure washer", member_id=member.id)
    referral = await referrals.issue_referral(
        issuer=link_worker,
        details=referral_rules.Details(
            name="Sam",
            contact_route="through_me",
            months=3,
            redeem_by=clock.now().date() + timedelta(days=10),
            consent_referral=True,
        ),
    )
    return {
        "item_code": drill.code,
        "spare_code": spare.code,
        "card_code": member.card_code,
        "referral_code": referral.code,
        "language": "en",
        "receipt_code": payment.receipt_code,
        "account_id": member.id,
        "member_id": member.id,
        "loan_id": loan.id,
        "hold_id": hold.id,
        "reservation_id": booking.id,
        "problem_id": problem.id,
        "closure_id": closure.id,
        "tier_id": tier.id,
        "payment_id": payment.id,
        "suggestion_id": suggestion.id,
        "kind": next(iter(mail_rules.KINDS)),
        "token": f"{await calendar_feed.calendar_token(member_id=member.id)}.ics",
        "file_path": "css/app.css",
        "path": "openapi.yaml",
        # made up: a 404 behind the guard is as good as a real row here
        "fee_id": 999_999,
        "photo_id": 999_999,
        "manual_id": 999_999,
        "session_id": "cs_test_made_up",
        "book_from": (start + timedelta(days=7)).isoformat(),
        "book_to": (start + timedelta(days=8)).isoformat(),
    }


_PARAMETER = re.compile(r"\{(\w+):\w+\}")


def fill(path: str, seed: dict) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "code":
            name = next(key for prefix, key in CODE_PARAMETER if path.startswith(prefix))
        assert name in seed, f"{path}: give the parameter {{{name}}} a value in seed_library()"
        return str(seed[name])

    return _PARAMETER.sub(value, path)


# --- what each answer should be -----------------------------------------------------------------


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def described(response) -> str:
    """A response in a few words: its status and its error code, FHIR issue or redirect."""
    status = response.status_code
    if 300 <= status < 400:
        return f"{status} -> {response.headers.get('location', '?')}"
    body = _json(response)
    if body.get("resourceType") == "OperationOutcome":
        return f"{status} FHIR {','.join(issue.get('code', '?') for issue in body.get('issue', []))}"
    if "code" in body:
        return f"{status} {body['code']}"
    return str(status)


def _to_sign_in(response) -> bool:
    """The guard's redirect: to /login, with the page to come back to."""
    return response.status_code == 303 and response.headers.get("location", "").startswith("/login?next=")


def mismatch(rule: Rule, role: str, via: str, method: str, path: str, response) -> str | None:
    """None when the answer is what the table says; otherwise what was expected."""
    status, body = response.status_code, _json(response)
    # The admin's own API answers in JSON too (its scope's path, inside the mount, is /api/...).
    machine = path.startswith(("/api/", "/admin/api/"))
    if role in rule.allowed and not (rule.bearer_only and via != "bearer"):
        if status in (401, 403) or status >= 500 or _to_sign_in(response):
            return "let through (not 401/403, no 5xx)"
        return None
    if role == "anonymous" or (rule.bearer_only and via != "bearer"):
        if rule.fhir:
            ok = status == 401 and body.get("resourceType") == "OperationOutcome"
            return None if ok else "401 FHIR OperationOutcome"
        if machine:
            if status == 401 and body.get("code") == "not_signed_in":
                return None
            return "401 not_signed_in"
        return None if _to_sign_in(response) else "303 -> /login?next=..."
    expected = "/".join(str(s) for s in sorted(rule.refused))
    if status not in rule.refused:
        return f"{expected} (refused)"
    if rule.fhir:
        return None if body.get("resourceType") == "OperationOutcome" else f"{expected} FHIR OperationOutcome"
    if machine and (body.get("code") not in rule.codes or not body.get("detail")):
        return f"{expected} {'|'.join(sorted(rule.codes))} with a detail"
    return None


@dataclass
class Walk:
    rows: list[tuple[str, str, str, str, str, str]]
    checked: int = 0

    def record(self, method: str, path: str, via: str, role: str, expected: str | None, response) -> None:
        self.checked += 1
        if expected is not None:
            self.rows.append((method, path, via, role, expected, described(response)))

    def report(self) -> str:
        header = ("method", "path", "via", "role", "expected", "got")
        rows = [header, *sorted(self.rows)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
        return f"{len(self.rows)} of {self.checked} answers do not match the permission table:\n" + "\n".join(lines)


# --- the walk -----------------------------------------------------------------------------------


async def test_every_route_answers_every_role_as_the_table_says(app, people):
    seed = await seed_library(people)
    routes = app_routes(app)
    walk = Walk(rows=[])
    for method, template in routes:
        if (method, template) not in PERMISSIONS:
            walk.rows.append((method, template, "-", "-", "a rule: add it to the permission table", "no rule"))

    async with contextlib.AsyncExitStack() as stack:
        sessions, tokens = {}, {}
        for role in ROLES:
            sessions[role] = client = await stack.enter_async_context(http_client(app))
            if role == "anonymous":
                await csrf_token(client)
                tokens[role] = {}
            else:
                signed = await sign_in(client, f"{role}@example.org")
                assert signed.status_code == 303, (role, signed.text)
                tokens[role] = await bearer(people[role].id)
        machine_client = await stack.enter_async_context(http_client(app))  # bearer tokens; cookies cleared
        await walk_routes(walk, routes, seed, sessions, tokens, machine_client)
    assert not walk.rows, walk.report()
    assert walk.checked > 1000, walk.checked


async def walk_routes(walk: Walk, routes: dict, seed: dict, sessions: dict, tokens: dict, machine_client) -> None:
    """Every route with every role: pages with sessions (and their CSRF token), the API and
    other machine routes with sessions and with bearer tokens; then, per route, a session
    without a CSRF token on unsafe methods and a made-up token on the API."""
    order = sorted(routes, key=lambda key: (key in WALKED_LAST, key == ("POST", "/logout"), key[1], key[0]))
    for method, template in order:
        key = (method, template)
        rule = PERMISSIONS.get(key)
        if rule is None:
            continue
        if method == "ASGI":
            await walk_mount(walk, rule, template, sessions, tokens, machine_client)
            continue
        path = fill(template, seed)
        body = BODIES[key](seed) if key in BODIES else {}
        query = QUERIES[key](seed) if key in QUERIES else None
        ways = ["session"] + (["bearer"] if template.startswith(MACHINE_PREFIXES) else [])
        for via in ways:
            for role in ROLES:
                if via == "session":
                    client = sessions[role]
                    token = client.cookies.get("lending_csrf", "")
                    if template.startswith("/api/"):
                        kwargs = {"headers": {"X-CSRFToken": token}}
                        if method in UNSAFE:
                            kwargs["json"] = body
                    else:
                        kwargs = {"data": {"_csrf_token": token}} if method in UNSAFE else {}
                else:
                    client = machine_client
                    client.cookies.clear()
                    kwargs = {"headers": dict(tokens[role])}
                    if method in UNSAFE:
                        kwargs["json"] = body
                response = await client.request(method, path, params=query, **kwargs)
                expected = mismatch(rule, role, via, method, template, response)
                walk.record(method, template, via, role, expected, response)

        if method in UNSAFE and key not in CSRF_EXEMPT:
            # A session without the CSRF token is refused before anything else, page or API.
            response = await sessions["coordinator"].request(
                method, path, params=query, **({"json": body} if template.startswith("/api/") else {})
            )
            csrf_ok = response.status_code == 403 and (
                not template.startswith("/api/") or _json(response).get("code") == "csrf_failed"
            )
            walk.record(
                method,
                template,
                "session, no CSRF token",
                "coordinator",
                None if csrf_ok else "403 csrf_failed",
                response,
            )
        if template.startswith("/api/"):
            # A token that is not one is refused, whatever the route.
            machine_client.cookies.clear()
            response = await machine_client.request(
                method,
                path,
                params=query,
                headers={"Authorization": "Bearer not-a-real-token"},
                **({"json": body} if method in UNSAFE else {}),
            )
            if rule.fhir:
                bad_ok = response.status_code == 401 and _json(response).get("resourceType") == "OperationOutcome"
            else:
                bad_ok = response.status_code == 401 and _json(response).get("code") == "invalid_token"
            walk.record(
                method, template, "made-up token", "anonymous", None if bad_ok else "401 invalid_token", response
            )


async def walk_mount(walk: Walk, rule: Rule, template: str, sessions: dict, tokens: dict, machine_client) -> None:
    """The admin: /admin/ with every role's session and token; an unsafe request refused to
    everyone the table refuses (a coordinator's would be piccolo_admin's business)."""
    path = f"{template}/"
    for role in ROLES:
        response = await sessions[role].get(path)
        walk.record("GET", path, "session", role, mismatch(rule, role, "session", "GET", path, response), response)
        machine_client.cookies.clear()
        response = await machine_client.get(path, headers=tokens[role])
        walk.record("GET", path, "bearer", role, mismatch(rule, role, "bearer", "GET", path, response), response)
        if role not in rule.allowed:
            api = f"{template}/api/tables/"
            response = await sessions[role].post(api, json={})
            walk.record("POST", api, "session", role, mismatch(rule, role, "session", "POST", api, response), response)


# --- the special cases --------------------------------------------------------------------------


async def test_a_link_worker_sees_only_their_own_organisations_referrals(app, people):
    """Another organisation's referral does not exist for a link worker, on any page or API
    route, and nothing they try changes it; its own link worker and coordinators see it."""
    seed = await seed_library(people)
    other = await organisations.create_organisation(name="Hillside PCN", kind="primary_care_network")
    outsider = await members.create_account(
        name="Bryn", email="bryn@example.org", role="link_worker", password=PASSWORD, organisation=other.id
    )
    theirs = await referrals.issue_referral(
        issuer=outsider,
        details=referral_rules.Details(
            name="Other person",
            contact_route="through_me",
            months=3,
            redeem_by=clock.now().date() + timedelta(days=10),
            consent_referral=True,
        ),
    )
    refused: list[str] = []
    async with http_client(app) as lw, http_client(app) as api:
        assert (await sign_in(lw, "link_worker@example.org")).status_code == 303
        token = await csrf_token(lw)
        for method, path in (
            ("GET", f"/referrals/{theirs.code}"),
            ("GET", f"/referrals/{theirs.code}/outcome.txt"),
            ("GET", f"/referrals/{theirs.code}/voucher"),
            ("POST", f"/referrals/{theirs.code}/withdraw"),
            ("POST", f"/referrals/{theirs.code}/extend"),
        ):
            data = {"_csrf_token": token, "months": "6"} if method == "POST" else None
            response = await lw.request(method, path, data=data)
            if response.status_code not in (403, 404):
                refused.append(f"{method} {path}: {described(response)}")
        listed = await lw.get("/referrals")
        assert listed.status_code == 200 and seed["referral_code"][:4] in listed.text
        assert "Other person" not in listed.text and theirs.code[:4] not in listed.text

        headers = await bearer(people["link_worker"].id)
        listing = await api.get("/api/v1/referrals", headers=headers)
        assert [r["code"] for r in listing.json()["referrals"]] == [seed["referral_code"]]
        fhir_read = await api.get(f"/api/v1/fhir/ServiceRequest/{theirs.code}", headers=headers)
        if fhir_read.status_code not in (403, 404):
            refused.append(f"GET FHIR ServiceRequest/{theirs.code}: {described(fhir_read)}")
        impact = await api.get("/api/v1/reports/impact", headers=headers)
        assert impact.status_code == 200 and impact.json()["organisation"] == "Riverside Surgery", impact.text
        assert (
            await api.get(f"/api/v1/fhir/ServiceRequest/{seed['referral_code']}", headers=headers)
        ).status_code == 200

        own = await api.get(f"/api/v1/fhir/ServiceRequest/{theirs.code}", headers=await bearer(outsider.id))
        assert own.status_code == 200, own.text
        everyone = await api.get("/api/v1/referrals", headers=await bearer(people["coordinator"].id))
        assert {r["code"] for r in everyone.json()["referrals"]} == {seed["referral_code"], theirs.code}
    assert not refused, "another organisation's referral reached a link worker:\n" + "\n".join(refused)
    row = await Referral.select(Referral.status, Referral.redeem_by).where(Referral.code == theirs.code).first().run()
    assert row["status"] == "issued" and row["redeem_by"] == theirs.redeem_by


async def test_a_member_sees_only_their_own_loans_and_account(app, people):
    """Another member's loan, hold, booking and receipt do not exist for a member, and nothing
    they try on them changes anything; the desk sees them."""
    seed = await seed_library(people)
    owner = people["member"]
    other = await members.create_account(name="Nosy Parker", email="nosy@example.org", role="member", password=PASSWORD)
    leaks: list[str] = []
    async with http_client(app) as page, http_client(app) as api:
        assert (await sign_in(page, "nosy@example.org")).status_code == 303
        token = await csrf_token(page)
        for path in (
            f"/account/loans/{seed['loan_id']}/renew",
            f"/account/holds/{seed['hold_id']}/cancel",
            f"/account/reservations/{seed['reservation_id']}/cancel",
        ):
            response = await page.post(path, data={"_csrf_token": token})
            if response.status_code != 404:
                leaks.append(f"POST {path}: {described(response)}")
        receipt = await page.get(f"/account/receipts/{seed['receipt_code']}")
        if receipt.status_code != 404:
            leaks.append(f"GET /account/receipts/...: {described(receipt)}")
        for path in ("/account", "/account/loans", "/account/card"):
            shown = await page.get(path)
            assert shown.status_code == 200, path
            assert owner.card_code not in shown.text and "Cordless drill" not in shown.text, path

        headers = await bearer(other.id)
        for method, path, body in (
            ("GET", f"/api/v1/loans/{seed['loan_id']}", None),
            ("POST", f"/api/v1/loans/{seed['loan_id']}/renew", {}),
            ("DELETE", f"/api/v1/holds/{seed['hold_id']}", None),
            ("DELETE", f"/api/v1/reservations/{seed['reservation_id']}", None),
            ("GET", f"/api/v1/holds?member_id={owner.id}", None),
            ("GET", f"/api/v1/reservations?member_id={owner.id}", None),
            ("POST", "/api/v1/holds", {"item_code": seed["spare_code"], "member_id": owner.id}),
            (
                "POST",
                "/api/v1/reservations",
                {
                    "item_code": seed["spare_code"],
                    "member_id": owner.id,
                    "starts_on": seed["book_from"],
                    "ends_on": seed["book_to"],
                },
            ),
            ("POST", f"/api/v1/referrals/{seed['referral_code']}/redeem", {"member_id": owner.id}),
        ):
            response = await api.request(method, path, headers=headers, json=body)
            if response.status_code not in (403, 404) or "code" not in _json(response):
                leaks.append(f"{method} {path}: {described(response)}")
        mine = await api.get(f"/api/v1/loans?member_id={owner.id}", headers=headers)
        assert mine.status_code == 200 and mine.json()["loans"] == []
        me = await api.get("/api/v1/me", headers=headers)
        assert me.json()["id"] == other.id and me.json()["card_code"] == other.card_code
        assert (await api.get("/api/v1/memberships/mine", headers=headers)).json()["membership"] is None

        desk = await bearer(people["volunteer"].id)
        seen = await api.get(f"/api/v1/loans/{seed['loan_id']}", headers=desk)
        assert seen.status_code == 200 and seen.json()["member_id"] == owner.id
        assert [
            loan["id"] for loan in (await api.get(f"/api/v1/loans?member_id={owner.id}", headers=desk)).json()["loans"]
        ] == [seed["loan_id"]]
    assert not leaks, "another member's records reached a member:\n" + "\n".join(leaks)
    loan = await records.get_loan(loan_id=seed["loan_id"])
    assert loan.returned_at is None and loan.renewals == 0
    assert [h.id for h in await records.member_holds(member_id=owner.id)] == [seed["hold_id"]]
    assert [b.id for b in await records.member_reservations(member_id=owner.id)] == [seed["reservation_id"]]
    assert await membership_records.current_membership(member_id=other.id) is None


async def test_guards_answer_before_any_lookup(client, people):
    """A made-up id behind a guard: the wrong role is refused (403), not told it is missing."""
    await sign_in(client, "member@example.org")
    for path in (
        "/manage/people/999999",
        "/manage/payments/999999",
        "/desk/members/999999",
        "/referrals/ZZZZZZZZ",
        "/manage/memberships/tiers/999999",
    ):
        assert (await client.get(path)).status_code == 403, path
    headers = await bearer(people["coordinator"].id)
    for path in (
        "/manage/people/999999",
        "/manage/payments/999999",
        "/desk/members/999999",
        "/referrals/ZZZZZZZZ",
        "/manage/memberships/tiers/999999",
    ):
        assert (await client.get(path, headers=headers)).status_code == 404, path


async def test_the_admin_is_for_coordinators_only(client, people):
    response = await client.get("/admin/")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fadmin%2F"
    for role in ("member", "volunteer", "link_worker"):
        await sign_in(client, f"{role}@example.org")
        assert (await client.get("/admin/")).status_code == 403, role
        assert (await client.get("/admin/api/tables/")).status_code == 403, role
        await client.post("/logout", data={"_csrf_token": await csrf_token(client)})
    await sign_in(client, "coordinator@example.org")
    assert (await client.get("/admin/")).status_code == 200


WEBHOOK_SECRET = "whsec_permissions"


async def test_the_stripe_webhook_is_public_but_checks_the_signature(database, people):
    """No session, token or CSRF token is asked for; a bad or missing signature is refused
    (400 bad_signature) whoever sends it, and a good one is accepted whoever sends it."""
    from lending.app import create_app

    app = create_app(make_settings(database, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET))
    event = {
        "id": "evt_permissions_1",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1"}},
    }
    payload = json.dumps(event)
    good = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)
    forged = stripe.WebhookSignature.generate_signature_header(payload, "whsec_someone_else")
    async with http_client(app) as client:
        for headers in (
            {},
            {"Stripe-Signature": forged},
            {"Stripe-Signature": "t=1,v1=00"},
            {"Stripe-Signature": forged, **await bearer(people["coordinator"].id)},
        ):
            response = await client.post(
                "/webhooks/stripe", content=payload, headers={"Content-Type": "application/json", **headers}
            )
            assert response.status_code == 400 and response.json()["code"] == "bad_signature", headers
        accepted = await client.post(
            "/webhooks/stripe", content=payload, headers={"Content-Type": "application/json", "Stripe-Signature": good}
        )
        assert accepted.status_code == 200 and accepted.json()["received"] is True, accepted.text
        await sign_in(client, "member@example.org")
        again = await client.post(
            "/webhooks/stripe", content=payload, headers={"Content-Type": "application/json", "Stripe-Signature": good}
        )
        assert again.status_code == 200 and again.json()["outcome"] == "duplicate", again.text


async def test_the_first_run_is_open_to_anyone_until_a_coordinator_exists(app, database):
    """On an empty installation the home page is the welcome form and the first visitor
    becomes its coordinator; after that, /welcome only sends people to sign in, and every
    guarded page is as closed as ever."""
    form = {
        "name": "Ann Owen",
        "email": "ann@example.org",
        "password": "a long enough password",
        "venue_name": "Tools for Aber",
        "timezone": "Europe/London",
        "start": "new",
        "languages": ["en", "cy"],
        "default_language": "en",
    }
    async with http_client(app) as first, http_client(app) as second:
        home = await first.get("/")
        assert home.status_code == 200 and 'action="/welcome"' in home.text
        for path in ("/manage", "/desk", "/referrals", "/account", "/admin/"):
            assert _to_sign_in(await first.get(path)), path
        empty = await first.post("/welcome", data={"_csrf_token": await csrf_token(first)})
        assert empty.status_code == 422
        made = await first.post("/welcome", data={**form, "_csrf_token": await csrf_token(first)})
        assert made.status_code == 303 and made.headers["location"] == "/manage/venue", made.text
        assert (await first.get("/manage")).status_code == 200

        late = await second.post(
            "/welcome", data={**form, "email": "mallory@example.org", "_csrf_token": await csrf_token(second)}
        )
        assert late.status_code == 303 and late.headers["location"] == "/login"
        assert 'action="/welcome"' not in (await second.get("/")).text
        assert _to_sign_in(await second.get("/manage"))
    assert await Account.count().where(Account.role == "coordinator").run() == 1
