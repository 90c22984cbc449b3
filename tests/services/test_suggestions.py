"""Members' suggestions through their services, on every database engine."""

from __future__ import annotations

import asyncio

import pytest

from lending import errors
from lending.audit.tables import AuditEvent
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.members import services as members
from lending.members.tables import Account
from lending.suggestions import rules
from lending.suggestions import services as suggestions
from lending.suggestions.tables import Suggestion, Support


@pytest.fixture
async def others(people):
    """Two more members, so support can be counted."""
    return [
        await members.create_account(name=f"Member {n}", email=f"m{n}@example.org", role="member") for n in range(2)
    ]


async def audit_actions() -> list[str]:
    rows = (
        await AuditEvent.select(AuditEvent.action)
        .where(AuditEvent.action.like("suggestion.%"))
        .order_by(AuditEvent.id)
        .run()
    )
    return [row["action"] for row in rows]


async def supports(suggestion_id: int) -> int:
    return await Support.count().where(Support.suggestion == suggestion_id).run()


def test_rules_check_titles_and_decisions():
    assert rules.clean_title("  Pressure \n washer ") == "Pressure washer"
    assert rules.clean_text(" line one\r\nline two \r") == "line one\nline two"
    assert rules.suggestion_problems(title="Tent", details="") == {}
    assert set(rules.suggestion_problems(title="", details="")) == {"title"}
    assert set(rules.suggestion_problems(title="x" * 201, details="y" * 2001)) == {"title", "details"}
    assert rules.is_open("open") and not rules.is_open("declined") and not rules.is_open("acquired")
    assert rules.decision_problems(outcome="declined", reason="Too big to store", item_code=None) == {}
    assert rules.decision_problems(outcome="acquired", reason="", item_code="ABCD1234") == {}
    assert set(rules.decision_problems(outcome="declined", reason="", item_code=None)) == {"reason"}
    assert set(rules.decision_problems(outcome="acquired", reason="", item_code=" ")) == {"item_code"}
    assert set(rules.decision_problems(outcome="open", reason="x", item_code=None)) == {"outcome"}
    assert set(rules.decision_problems(outcome="declined", reason="x" * 2001, item_code=None)) == {"reason"}


async def test_suggesting_a_thing_supports_it(people):
    member = people["member"]
    made = await suggestions.suggest(
        title="  Pressure   washer ", details="For patios.\r\nAnd cars.", member_id=member.id
    )
    assert made.title == "Pressure washer" and made.details == "For patios.\nAnd cars."
    assert made.status == "open" and made.supporters == 1 and made.supported_by_viewer
    assert made.suggested_by_id == member.id
    assert await supports(made.id) == 1
    assert await audit_actions() == ["suggestion.create"]
    [listed] = await suggestions.list_open(viewer_id=member.id)
    assert listed.id == made.id and listed.supported_by_viewer
    [anonymous] = await suggestions.list_open()
    assert not anonymous.supported_by_viewer


async def test_open_suggestions_are_ranked_by_support_then_age(people, others):
    member = people["member"]
    oldest = await suggestions.suggest(title="Tent", member_id=member.id)
    middle = await suggestions.suggest(title="Sewing machine", member_id=member.id)
    newest = await suggestions.suggest(title="Carpet cleaner", member_id=member.id)
    assert [s.id for s in await suggestions.list_open()] == [oldest.id, middle.id, newest.id]
    for other in others:
        await suggestions.support(suggestion_id=newest.id, member_id=other.id)
    await suggestions.support(suggestion_id=middle.id, member_id=others[0].id)
    ranked = await suggestions.list_open(viewer_id=others[1].id)
    assert [(s.title, s.supporters) for s in ranked] == [("Carpet cleaner", 3), ("Sewing machine", 2), ("Tent", 1)]
    assert [s.supported_by_viewer for s in ranked] == [True, False, False]


async def test_supporting_twice_counts_once(people, others):
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    assert await suggestions.support(suggestion_id=made.id, member_id=others[0].id) is True
    assert await suggestions.support(suggestion_id=made.id, member_id=others[0].id) is False
    assert await suggestions.support(suggestion_id=made.id, member_id=people["member"].id) is False
    assert await supports(made.id) == 2
    assert (await suggestions.get_suggestion(suggestion_id=made.id)).supporters == 2
    assert await audit_actions() == ["suggestion.create", "suggestion.support"]


async def test_the_same_member_supporting_at_once_counts_once(people, others):
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    results = await asyncio.gather(
        *(suggestions.support(suggestion_id=made.id, member_id=others[0].id) for _ in range(10))
    )
    assert sorted(results) == [False] * 9 + [True]
    assert await Support.count().where(Support.suggestion == made.id, Support.account == others[0].id).run() == 1
    assert await audit_actions() == ["suggestion.create", "suggestion.support"]


async def test_the_database_refuses_a_second_support_row(people):
    """The unique index itself, not only the service, holds one support per member."""
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    with pytest.raises(Exception) as raised:
        await Support.insert(Support(suggestion=made.id, account=people["member"].id, created_at=made.created_at)).run()
    from lending import db

    assert db.is_unique_violation(raised.value)


async def test_withdrawing_support(people, others):
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    await suggestions.support(suggestion_id=made.id, member_id=others[0].id)
    assert await suggestions.withdraw_support(suggestion_id=made.id, member_id=others[0].id) is True
    assert await suggestions.withdraw_support(suggestion_id=made.id, member_id=others[0].id) is False
    assert await supports(made.id) == 1
    assert await suggestions.withdraw_support(suggestion_id=made.id, member_id=people["member"].id) is True
    assert (await suggestions.get_suggestion(suggestion_id=made.id)).supporters == 0
    assert await suggestions.support(suggestion_id=made.id, member_id=others[0].id) is True
    assert await audit_actions() == [
        "suggestion.create",
        "suggestion.support",
        "suggestion.withdraw_support",
        "suggestion.withdraw_support",
        "suggestion.support",
    ]
    with pytest.raises(errors.NotFound):
        await suggestions.support(suggestion_id=9999, member_id=others[0].id)
    with pytest.raises(errors.NotFound):
        await suggestions.withdraw_support(suggestion_id=9999, member_id=others[0].id)


async def test_acquiring_links_the_item(people, others):
    member, coordinator = people["member"], people["coordinator"]
    made = await suggestions.suggest(title="Pressure washer", member_id=member.id)
    item = await catalog.add_item(details=ItemDetails(name="Pressure washer 2000"))
    decided = await suggestions.decide(
        suggestion_id=made.id, outcome="acquired", reason="", item_code=item.code.lower(), actor_id=coordinator.id
    )
    assert (
        decided.status == "acquired" and decided.item_code == item.code and decided.item_name == "Pressure washer 2000"
    )
    assert decided.decided_at is not None
    row = await Suggestion.select().where(Suggestion.id == made.id).first().run()
    assert row["item_group"] == item.group_id and row["decided_by"] == coordinator.id
    assert await suggestions.list_open() == []
    [mine] = await suggestions.my_suggestions(member_id=member.id)
    assert mine.status == "acquired" and mine.item_code == item.code
    assert (await suggestions.list_decided())[0].id == made.id
    assert (await audit_actions())[-1] == "suggestion.acquired"
    # A decided suggestion gathers no more support, and keeps what it had.
    with pytest.raises(errors.Conflict) as raised:
        await suggestions.support(suggestion_id=made.id, member_id=others[0].id)
    assert raised.value.code == "suggestion_decided"
    with pytest.raises(errors.Conflict):
        await suggestions.withdraw_support(suggestion_id=made.id, member_id=member.id)
    assert await supports(made.id) == 1


async def test_declining_needs_a_reason_the_member_sees(people):
    member, coordinator = people["member"], people["coordinator"]
    made = await suggestions.suggest(title="Jet ski", member_id=member.id)
    before = await AuditEvent.count().run()
    for blank in ("", "   \n "):
        with pytest.raises(errors.InvalidInput) as raised:
            await suggestions.decide(
                suggestion_id=made.id, outcome="declined", reason=blank, item_code=None, actor_id=coordinator.id
            )
        assert set(raised.value.errors) == {"reason"}
    assert await AuditEvent.count().run() == before
    assert (await suggestions.get_suggestion(suggestion_id=made.id)).status == "open"
    await suggestions.decide(
        suggestion_id=made.id,
        outcome="declined",
        reason="We have nowhere to keep it.",
        item_code=None,
        actor_id=coordinator.id,
    )
    [mine] = await suggestions.my_suggestions(member_id=member.id)
    assert mine.status == "declined" and mine.decision_reason == "We have nowhere to keep it."
    assert mine.item_code is None
    assert (await audit_actions())[-1] == "suggestion.declined"


async def test_deciding_twice_is_refused(people):
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    coordinator = people["coordinator"]
    await suggestions.decide(
        suggestion_id=made.id, outcome="declined", reason="We have two.", item_code=None, actor_id=coordinator.id
    )
    item = await catalog.add_item(details=ItemDetails(name="Tent"))
    for outcome, reason, code in (("declined", "Again", None), ("acquired", "", item.code)):
        with pytest.raises(errors.Conflict) as raised:
            await suggestions.decide(
                suggestion_id=made.id, outcome=outcome, reason=reason, item_code=code, actor_id=coordinator.id
            )
        assert raised.value.code == "suggestion_decided"
    row = await Suggestion.select().where(Suggestion.id == made.id).first().run()
    assert row["status"] == "declined" and row["decision_reason"] == "We have two." and row["item_group"] is None
    with pytest.raises(errors.NotFound):
        await suggestions.decide(
            suggestion_id=9999, outcome="declined", reason="x", item_code=None, actor_id=coordinator.id
        )


async def test_two_coordinators_deciding_at_once_decide_once(people):
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    results = await asyncio.gather(
        *(
            suggestions.decide(
                suggestion_id=made.id,
                outcome="declined",
                reason=f"Reason {n}",
                item_code=None,
                actor_id=people["coordinator"].id,
            )
            for n in range(5)
        ),
        return_exceptions=True,
    )
    decided = [r for r in results if not isinstance(r, BaseException)]
    assert len(decided) == 1, results
    assert all(isinstance(r, errors.Conflict) for r in results if isinstance(r, BaseException)), results
    assert (await audit_actions()).count("suggestion.declined") == 1


@pytest.mark.parametrize(
    ("title", "details", "fields"),
    [
        ("", "", {"title"}),
        ("   ", "anything", {"title"}),
        ("x" * 5000, "", {"title"}),
        ("Tent", "y" * 5000, {"details"}),
    ],
)
async def test_bad_suggestions_write_nothing(people, title, details, fields):
    before = await AuditEvent.count().run()
    with pytest.raises(errors.InvalidInput) as raised:
        await suggestions.suggest(title=title, details=details, member_id=people["member"].id)
    assert set(raised.value.errors) == fields and raised.value.code == "invalid_suggestion"
    assert await Suggestion.count().run() == 0 and await Support.count().run() == 0
    assert await AuditEvent.count().run() == before


async def test_an_unknown_item_code_writes_nothing(people):
    made = await suggestions.suggest(title="Tent", member_id=people["member"].id)
    await catalog.add_item(details=ItemDetails(name="Something else"))
    before = await AuditEvent.count().run()
    for code, expected in (("ZZZZZZZZ", "unknown_item"), ("!!", "unknown_item"), ("", "invalid_decision")):
        with pytest.raises(errors.InvalidInput) as raised:
            await suggestions.decide(
                suggestion_id=made.id, outcome="acquired", reason="", item_code=code, actor_id=people["coordinator"].id
            )
        assert raised.value.code == expected and set(raised.value.errors) == {"item_code"}
    with pytest.raises(errors.InvalidInput) as raised:
        await suggestions.decide(
            suggestion_id=made.id, outcome="maybe", reason="", item_code=None, actor_id=people["coordinator"].id
        )
    assert set(raised.value.errors) == {"outcome"}
    row = await Suggestion.select().where(Suggestion.id == made.id).first().run()
    assert row["status"] == "open" and row["item_group"] is None and row["decided_at"] is None
    assert await AuditEvent.count().run() == before


async def test_a_suggestion_outlives_its_suggesters_account(people, others):
    made = await suggestions.suggest(title="Tent", member_id=others[0].id)
    await suggestions.support(suggestion_id=made.id, member_id=people["member"].id)
    await Account.delete().where(Account.id == others[0].id).run()
    [kept] = await suggestions.list_open()
    assert kept.id == made.id and kept.suggested_by_id is None and kept.supporters == 1
    with pytest.raises(errors.NotFound):
        await suggestions.suggest(title="Kayak", member_id=others[0].id)
