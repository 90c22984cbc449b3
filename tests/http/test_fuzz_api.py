"""Property-based fuzzing of the JSON API with schemathesis, against the app's own OpenAPI
document: every /api/v1 operation gets generated requests, valid ones and (separately) invalid
ones, sent with a volunteer's and, in another test, a member's API token (some invalid ones go
without it). Every answer must be no 5xx and what the document says: a documented status, its
content type and its body schema. The errors each operation documents come from
``lending.web.errors.document_api_errors``.

The requests go through httpx's ASGI transport in this event loop (the one the ``database``
fixture's PostgreSQL pool belongs to). Hypothesis itself is synchronous, so each operation's
examples run in a worker thread that hands every request back to this loop. Hypothesis is
derandomized, so CI fails the same way a laptop does; a failure prints a curl command.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.loans import checkout
from lending.members import services as members
from lending.memberships import counter_payments, tiers
from lending.memberships.tiers import TierInput
from tests.conftest import bearer, http_client

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 25, schemathesis.GenerationMode.NEGATIVE: 20}
SEEDED_EXAMPLES = 10  # with the seeded records' ids and codes in the path, so requests reach past "not found"
BASE_URL = "http://testserver.local"


async def seed(people: dict) -> dict[str, object]:
    """A little of what the API talks about: a tier, a paid-up member with a loan, an item on the
    shelf, a member registered at the counter. Returns values for path parameters."""
    tier = await tiers.save_tier(
        values=TierInput(name="Free", min_pence=0, max_pence=5000, allow_free=True, loan_limit=3)
    )
    await counter_payments.record_counter_payment(
        member_id=people["member"].id, tier=tier.id, amount=0, method="cash", actor_id=None
    )
    drill = await catalog.add_item(details=ItemDetails(name="Cordless drill", parts="Drill\nCharger"))
    await catalog.add_item(details=ItemDetails(name="Tent"))
    await members.register_member(
        name="Nia Jones", email="nia@example.org", language="cy", actor_id=people["volunteer"].id
    )
    lent = await checkout.check_out(
        member_id=people["member"].id, item_codes=[drill.code], actor_id=people["volunteer"].id, via="api"
    )
    return {"code": drill.code, "loan_id": lent[0].id, "member_id": people["member"].id}


def api_operations(raw: dict) -> list:
    schema = schemathesis.openapi.from_dict(raw, config=schemathesis.Config())
    found = [result.ok() for result in schema.get_all_operations()]
    return [operation for operation in found if operation.path.startswith("/api/v1/")]


def to_httpx(kwargs: dict) -> dict:
    """schemathesis serialises a case for requests; the few differences from httpx."""
    kwargs = dict(kwargs)
    kwargs.pop("auth", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), (bytes, str)):
        kwargs["content"] = kwargs.pop("data")
    return kwargs


def fuzz_operation(strategy, examples: int, send, headers: dict[str, str]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=strategy)
    def run(case) -> None:
        response = send(to_httpx(case.as_transport_kwargs(base_url=BASE_URL, headers=headers)))
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


async def fuzz_api(app, headers: dict[str, str], path_values: dict[str, object]) -> list[str]:
    loop = asyncio.get_running_loop()
    async with http_client(app) as client:
        raw = (await client.get("/schema/openapi.json")).json()

        def send(kwargs: dict):
            return asyncio.run_coroutine_threadsafe(client.request(**kwargs), loop).result(timeout=60)

        operations = api_operations(raw)
        assert any(operation.label == "POST /api/v1/loans" for operation in operations), "no API operations found"
        problems = []
        for operation in operations:
            runs = [(operation.as_strategy(generation_mode=mode), examples) for mode, examples in EXAMPLES.items()]
            known = {p.name: path_values[p.name] for p in operation.path_parameters if p.name in path_values}
            if known:
                runs.append((operation.as_strategy(path_parameters=known), SEEDED_EXAMPLES))
            for strategy, examples in runs:
                try:
                    await asyncio.to_thread(fuzz_operation, strategy, examples, send, headers)
                except (Exception, BaseExceptionGroup) as exc:  # reported; the next operation runs
                    problems.append(f"{operation.label}:\n{exc}")
                    break
    return problems


@pytest.mark.parametrize("role", ["volunteer", "member"])
async def test_every_api_operation_answers_generated_requests_as_documented(app, people, role):
    path_values = await seed(people)
    started = time.monotonic()
    problems = await fuzz_api(app, await bearer(people[role].id), path_values)
    print(f"fuzzed the API as a {role} in {time.monotonic() - started:.1f}s")
    assert not problems, f"{len(problems)} operation(s) failed:\n\n" + "\n\n".join(problems)
