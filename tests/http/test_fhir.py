"""A referring system sends a FHIR R4 ServiceRequest with its link worker's token: a referral is
issued for that organisation, or an OperationOutcome says why not and nothing is written."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from lending import clock
from lending.members import organisations
from lending.members import services as members
from lending.memberships import tiers
from lending.memberships.tiers import TierInput
from lending.referrals import fhir
from lending.referrals import services as referrals
from lending.referrals.tables import Referral
from lending.venues import services as venues
from tests.conftest import PASSWORD, bearer

URL = "/api/v1/fhir/ServiceRequest"
FHIR_JSON = "application/fhir+json"


async def token_for(account_id: int) -> dict[str, str]:
    return {**await bearer(account_id), "Content-Type": FHIR_JSON}


@pytest.fixture
async def setup(people):
    venues.forget_cache()
    tier = await tiers.save_tier(
        values=TierInput(name="Concession", min_pence=0, max_pence=0, allow_free=True, public=False)
    )
    await referrals.save_settings(tier_id=tier.id, months_options="3,6,12", redeem_days="60", erase_after_days="365")
    return {"tier": tier, "headers": await token_for(people["link_worker"].id)}


def resource(**changes) -> dict:
    body = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "871731000000106",
                    "display": "Referral to social prescribing service",
                }
            ]
        },
        "contained": [
            {
                "resourceType": "Patient",
                "id": "p1",
                "name": [{"family": "Jones", "given": ["Siân"]}],
                "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "cy"}]}}],
                "telecom": [{"system": "email", "value": "sian@example.org"}],
            }
        ],
        "subject": {"reference": "#p1"},
        "occurrencePeriod": {"end": (clock.now().date() + timedelta(days=30)).isoformat()},
        "quantityQuantity": {"value": 12, "unit": "mo"},
        "extension": [{"url": "https://lending.example/fhir/StructureDefinition/consent-share", "valueBoolean": True}],
    }
    body.update(changes)
    return body


def outcome(response, status: int) -> list[dict]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"], body
    assert all(issue["severity"] == "error" and issue["diagnostics"] for issue in body["issue"])
    return body["issue"]


async def test_a_valid_service_request_issues_a_referral(client, people, setup):
    sent = resource()
    response = await client.post(URL, content=json.dumps(sent), headers=setup["headers"])
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    code = body["id"]
    assert body["resourceType"] == "ServiceRequest" and body["status"] == "active" and body["intent"] == "order"
    assert body["identifier"] == [{"system": "https://lending.example/referral-code", "value": code}]
    assert response.headers["location"] == f"/api/v1/fhir/ServiceRequest/{code}"
    assert "Siân" not in response.text and "sian@example.org" not in response.text  # not echoed
    row = await Referral.select().where(Referral.code == code).first().run()
    assert row["status"] == "issued" and row["organisation"] == people["organisation"].id
    assert row["issued_by"] == people["link_worker"].id
    assert (row["name"], row["language"], row["months"]) == ("Siân", "cy", 12)
    assert (row["contact_route"], row["contact"]) == ("email", "sian@example.org")
    assert row["redeem_by"].isoformat() == sent["occurrencePeriod"]["end"] and row["consent_share"] is True
    assert row["access_needs"] == "" and row["need_category"] == ""
    again = await client.get(response.headers["location"], headers=setup["headers"])
    assert again.status_code == 200 and again.json()["id"] == code and again.json()["status"] == "active"


async def test_defaults_and_a_plain_json_content_type(client, setup):
    sent = resource(
        intent="proposal",
        contained=[
            {
                "resourceType": "Patient",
                "id": "x",
                "name": [{"text": "Sam"}],
                "telecom": [{"system": "phone", "value": "01234 567890"}],
            }
        ],
        subject={"reference": "#x"},
    )
    for key in ("occurrencePeriod", "quantityQuantity", "extension"):
        sent.pop(key)
    headers = {**setup["headers"], "Content-Type": "application/json"}
    response = await client.post(URL, content=json.dumps(sent), headers=headers)
    assert response.status_code == 201, response.text
    row = await Referral.select().where(Referral.code == response.json()["id"]).first().run()
    assert (row["name"], row["language"], row["months"], row["contact_route"]) == ("Sam", "en", 6, "phone")
    assert row["consent_share"] is False
    assert (row["redeem_by"] - clock.now().date()).days in (59, 60, 61)
    assert response.json()["intent"] == "proposal"


BAD = [
    # (what is wrong, the resource, the issue code, the expression)
    (
        "a wrong SNOMED code",
        resource(code={"coding": [{"system": "http://snomed.info/sct", "code": "73211009"}]}),
        "value",
        "ServiceRequest.code",
    ),
    ("no code", resource(code=None), "required", "ServiceRequest.code"),
    ("no subject", resource(subject=None), "required", "ServiceRequest.subject"),
    (
        "a subject that is not contained",
        resource(subject={"reference": "Patient/123"}),
        "not-supported",
        "ServiceRequest.subject",
    ),
    ("a subject pointing at nothing", resource(subject={"reference": "#p9"}), "invalid", "ServiceRequest.contained"),
    (
        "no name",
        resource(contained=[{"resourceType": "Patient", "id": "p1", "name": [{"family": "Jones"}]}]),
        "required",
        "Patient.name",
    ),
    ("a reason", resource(reasonCode=[{"text": "Low mood"}]), "business-rule", "ServiceRequest.reasonCode"),
    (
        "a reason reference",
        resource(reasonReference=[{"reference": "Condition/1"}]),
        "business-rule",
        "ServiceRequest.reasonReference",
    ),
    ("a draft", resource(status="draft"), "value", "ServiceRequest.status"),
    ("no intent", resource(intent=None), "required", "ServiceRequest.intent"),
    ("a wrong intent", resource(intent="instance-order"), "value", "ServiceRequest.intent"),
    (
        "months the venue does not give",
        resource(quantityQuantity={"value": 5, "unit": "mo"}),
        "value",
        "ServiceRequest.quantityQuantity",
    ),
    (
        "days, not months",
        resource(quantityQuantity={"value": 30, "unit": "d"}),
        "value",
        "ServiceRequest.quantityQuantity",
    ),
    (
        "a date that is not one",
        resource(occurrencePeriod={"end": "next week"}),
        "value",
        "ServiceRequest.occurrencePeriod.end",
    ),
    (
        "a use-by date passed",
        resource(occurrencePeriod={"end": "2020-01-01"}),
        "value",
        "ServiceRequest.occurrencePeriod.end",
    ),
    (
        "a bad email",
        resource(
            contained=[
                {
                    "resourceType": "Patient",
                    "id": "p1",
                    "name": [{"text": "Sam"}],
                    "telecom": [{"system": "email", "value": "not-an-address"}],
                }
            ]
        ),
        "value",
        "Patient.telecom",
    ),
    ("another resource", {"resourceType": "Patient", "id": "p1"}, "invalid", "ServiceRequest.resourceType"),
    ("a list", [resource()], "structure", None),
]


@pytest.mark.parametrize(("case", "sent", "issue_code", "expression"), BAD, ids=[case for case, *_ in BAD])
async def test_a_bad_service_request_is_explained_and_nothing_is_written(
    client, setup, case, sent, issue_code, expression
):
    response = await client.post(URL, content=json.dumps(sent), headers=setup["headers"])
    issues = outcome(response, 422)
    assert any(
        issue["code"] == issue_code and (expression is None or issue.get("expression") == [expression])
        for issue in issues
    ), issues
    assert await Referral.count().run() == 0


async def test_every_problem_is_listed_at_once(client, setup):
    sent = resource(status="draft", reasonCode=[{"text": "x"}], subject=None)
    issues = outcome(await client.post(URL, content=json.dumps(sent), headers=setup["headers"]), 422)
    assert {issue["expression"][0] for issue in issues} == {
        "ServiceRequest.status",
        "ServiceRequest.reasonCode",
        "ServiceRequest.subject",
    }
    health = next(issue for issue in issues if issue["expression"] == ["ServiceRequest.reasonCode"])
    assert "health information" in health["diagnostics"]


async def test_who_may_send(client, people, setup):
    body = json.dumps(resource())
    issues = outcome(await client.post(URL, content=body, headers={"Content-Type": FHIR_JSON}), 401)
    assert issues[0]["code"] == "login"
    wrong = outcome(
        await client.post(URL, content=body, headers={"Content-Type": FHIR_JSON, "Authorization": "Bearer nope"}), 401
    )
    assert wrong[0]["code"] == "login"
    for role in ("member", "volunteer", "coordinator"):
        issues = outcome(await client.post(URL, content=body, headers=await token_for(people[role].id)), 403)
        assert issues[0]["code"] == "forbidden"
    # A signed-in browser session is not a token.
    from tests.conftest import sign_in

    await sign_in(client, "link_worker@example.org")
    outcome(await client.post(URL, content=body, headers={"Content-Type": FHIR_JSON}), 401)
    assert await Referral.count().run() == 0


async def test_unreadable_bodies(client, setup):
    issues = outcome(
        await client.post(URL, content=b'{"resourceType": "ServiceRequest",', headers=setup["headers"]), 400
    )
    assert issues[0]["code"] == "structure"
    outcome(await client.post(URL, content=b"\xff\xfe", headers=setup["headers"]), 400)
    issues = outcome(
        await client.post(
            URL, content=json.dumps(resource()), headers={**setup["headers"], "Content-Type": "text/plain"}
        ),
        415,
    )
    assert issues[0]["code"] == "not-supported"
    big = resource(note=[{"text": "x" * (fhir.MAX_BODY_BYTES + 1)}])
    outcome(await client.post(URL, content=json.dumps(big), headers=setup["headers"]), 413)
    assert await Referral.count().run() == 0


async def test_a_link_worker_whose_organisation_was_removed_is_told_so(client, people, setup):
    from lending.members.tables import Account, Organisation

    orphan = await organisations.create_organisation(name="Closed charity", kind="charity")
    worker = await members.create_account(
        name="Ola", email="ola@example.org", role="link_worker", password=PASSWORD, organisation=orphan.id
    )
    headers = await token_for(worker.id)
    await Account.update({Account.organisation: None}).where(Account.id == worker.id).run()
    await Organisation.delete().where(Organisation.id == orphan.id).run()
    issues = outcome(await client.post(URL, content=json.dumps(resource()), headers=headers), 409)
    assert "no longer registered" in issues[0]["diagnostics"]
    assert await Referral.count().run() == 0


async def test_the_venue_must_have_set_up_referrals(client, people):
    venues.forget_cache()
    headers = await token_for(people["link_worker"].id)
    issues = outcome(await client.post(URL, content=json.dumps(resource()), headers=headers), 409)
    assert issues[0]["code"] == "business-rule"
    assert await Referral.count().run() == 0


async def test_another_organisations_referral_cannot_be_read(client, people, setup):
    made = await client.post(URL, content=json.dumps(resource()), headers=setup["headers"])
    other = await organisations.create_organisation(name="Hillside PCN", kind="primary_care_network")
    outsider = await members.create_account(
        name="Bryn", email="bryn@example.org", role="link_worker", password=PASSWORD, organisation=other.id
    )
    issues = outcome(await client.get(made.headers["location"], headers=await token_for(outsider.id)), 404)
    assert issues[0]["code"] == "not-found"


def test_the_mapping_is_pure():
    today = clock.now().date()
    details = fhir.read_service_request(copy.deepcopy(resource()), default_months=6, default_redeem_by=today)
    assert (details.name, details.language, details.months, details.consent_referral) == ("Siân", "cy", 12, True)
    preferred = resource(
        contained=[
            {
                "resourceType": "Patient",
                "id": "p1",
                "name": [{"use": "official", "text": "Mrs Siân Jones"}, {"use": "usual", "given": ["Sia"]}],
                "communication": [
                    {"language": {"coding": [{"code": "pl"}]}},
                    {"language": {"coding": [{"code": "en-GB"}]}, "preferred": True},
                ],
            }
        ]
    )
    details = fhir.read_service_request(preferred, default_months=6, default_redeem_by=today)
    assert (details.name, details.language, details.contact_route) == ("Sia", "en", "through_me")
    # An empty reason carries nothing, so it is no reason to refuse.
    assert (
        fhir.read_service_request(
            resource(reasonCode=[], reasonReference=[{}]), default_months=6, default_redeem_by=today
        ).name
        == "Siân"
    )
    with pytest.raises(fhir.Problem) as caught:
        fhir.read_service_request(
            resource(extension=[{"url": fhir.CONSENT_SHARE_URL, "valueBoolean": "yes"}]),
            default_months=6,
            default_redeem_by=today,
        )
    assert caught.value.status == 422 and caught.value.issues[0].expression == ("ServiceRequest.extension",)
