"""The catalogue through its services, on every database engine."""

from __future__ import annotations

import asyncio

import pytest

from lending import errors
from lending.audit.tables import AuditEvent
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.catalog.tables import Item, ItemGroup, Sticker


@pytest.fixture
async def tools(database):
    tools = await catalog.create_category(name="Tools")
    drills = await catalog.create_category(name="Drills", parent_id=tools.id)
    garden = await catalog.create_category(name="Garden")
    return {"tools": tools, "drills": drills, "garden": garden}


async def test_category_tree_is_in_order_with_paths(tools):
    tree = await catalog.category_tree()
    assert [(n.path, n.depth) for n in tree] == [("Garden", 0), ("Tools", 0), ("Tools › Drills", 1)]
    with pytest.raises(errors.Conflict):
        await catalog.create_category(name="drills", parent_id=tools["tools"].id)
    # The same name under another parent is fine.
    await catalog.create_category(name="Drills", parent_id=tools["garden"].id)
    with pytest.raises(errors.InvalidInput) as raised:
        await catalog.create_category(name="Orphans", parent_id=9999)
    assert raised.value.code == "unknown_category"
    assert (await catalog.find_category(name_or_path="tools > drills")).id == tools["drills"].id


async def test_add_an_item_and_a_copy(tools):
    drill = await catalog.add_item(
        details=ItemDetails(
            name="Cordless drill",
            description="18V with two batteries",
            category_id=tools["drills"].id,
            parts="Drill\nCharger\n\nBattery x2",
            replacement_value="£89.99",
            condition="good",
            loan_days=7,
        )
    )
    assert len(drill.code) == 8 and drill.status == "available"
    assert drill.category == "Tools › Drills" and drill.parts == ["Drill", "Charger", "Battery x2"]
    assert drill.replacement_value_pence == 8999
    copy = await catalog.add_item(details=ItemDetails(name="ignored for copies", condition="fair"), copy_of=drill.code)
    assert copy.group_id == drill.group_id and copy.code != drill.code and copy.name == "Cordless drill"
    assert await ItemGroup.count().run() == 1 and await Item.count().run() == 2
    assert (await catalog.get_item(code=drill.code.lower())).code == drill.code


@pytest.mark.parametrize(
    ("details", "fields"),
    [
        (ItemDetails(name=""), {"name"}),
        (ItemDetails(name="Saw", category_id=9999), {"category"}),
        (ItemDetails(name="Saw", replacement_value="lots"), {"replacement_value"}),
        (ItemDetails(name="Saw", condition="shiny", loan_days=0), {"condition", "loan_days"}),
        (ItemDetails(name="Saw", site_id=42), {"site"}),
        (ItemDetails(name="Saw", parts="\n".join(f"part {n}" for n in range(60))), {"parts"}),
    ],
)
async def test_bad_item_details_write_nothing(database, details, fields):
    with pytest.raises(errors.InvalidInput) as raised:
        await catalog.add_item(details=details)
    assert set(raised.value.errors) == fields
    assert await ItemGroup.count().run() == 0 and await Item.count().run() == 0
    assert await AuditEvent.count().run() == 0


async def test_stickers_are_claimed_once(database):
    codes = await catalog.create_stickers(count=3)
    assert len(set(codes)) == 3 and await Sticker.count().run() == 3
    spaced = f"{codes[0][:4].lower()}-{codes[0][4:]}"
    item = await catalog.add_item(details=ItemDetails(name="Tent"), sticker=spaced)
    assert item.code == codes[0]
    with pytest.raises(errors.Conflict) as raised:
        await catalog.add_item(details=ItemDetails(name="Another tent"), sticker=codes[0])
    assert raised.value.code == "sticker_used"
    for bad, code in (("ZZZZZZZZ", "unknown_sticker"), ("!!", "invalid_input"), ("ABC", "invalid_input")):
        with pytest.raises(errors.InvalidInput) as raised:
            await catalog.add_item(details=ItemDetails(name="Tent"), sticker=bad)
        assert raised.value.code == code
    assert await Item.count().run() == 1


async def test_two_volunteers_claiming_one_sticker_make_one_item(database):
    [code] = await catalog.create_stickers(count=1)
    results = await asyncio.gather(
        *(catalog.add_item(details=ItemDetails(name=f"Tent {n}"), sticker=code) for n in range(6)),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1, results
    assert all(isinstance(r, errors.Conflict) for r in results if isinstance(r, BaseException)), results
    assert await Item.count().run() == 1 and await ItemGroup.count().run() == 1


async def test_status_lifecycle(tools):
    item = await catalog.add_item(details=ItemDetails(name="Ladder"))
    with pytest.raises(errors.RuleViolation):
        await catalog.set_status(code=item.code, status="retired")
    with pytest.raises(errors.RuleViolation):
        await catalog.set_status(code=item.code, status="on_loan")
    with pytest.raises(errors.RuleViolation):
        await catalog.set_status(code=item.code, status="sparkly")
    assert (await catalog.set_status(code=item.code, status="maintenance")).status == "maintenance"
    retired = await catalog.set_status(code=item.code, status="retired", reason="Rung cracked")
    assert retired.status == "retired" and retired.status_reason == "Rung cracked"
    items, _ = await catalog.list_items()
    assert items == []  # retired items leave the catalogue


async def test_list_items_filters_and_pages(tools):
    for n in range(7):
        await catalog.add_item(details=ItemDetails(name=f"Drill {n}", category_id=tools["drills"].id))
    await catalog.add_item(
        details=ItemDetails(name="Hedge trimmer", description="for big hedges", category_id=tools["garden"].id)
    )
    first, cursor = await catalog.list_items(limit=5)
    second, end = await catalog.list_items(limit=5, cursor=cursor)
    assert len(first) == 5 and len(second) == 3 and end is None
    assert [i.code for i in first + second] == [i.code for i in (await catalog.list_items(limit=50))[0]]
    assert [i.name for i in (await catalog.list_items(query="HEDGE"))[0]] == ["Hedge trimmer"]
    assert len((await catalog.list_items(category_id=tools["tools"].id))[0]) == 7  # includes sub-categories
    busy = first[0]
    await catalog.set_status(code=busy.code, status="maintenance")
    assert busy.code not in [i.code for i in (await catalog.list_items(available=True, limit=50))[0]]
    for hostile in ("' OR 1=1 --", "drill* NEAR(", '"unbalanced', "%", "_"):
        items, _ = await catalog.list_items(query=hostile)
        assert isinstance(items, list)
    with pytest.raises(errors.InvalidInput):
        await catalog.list_items(cursor="not-a-cursor")


async def test_problem_reports_reach_the_desk(tools):
    item = await catalog.add_item(details=ItemDetails(name="Carpet cleaner"))
    report = await catalog.report_problem(code=item.code, description="The hose leaks")
    assert [p.description for p in await catalog.open_problems()] == ["The hose leaks"]
    with pytest.raises(errors.InvalidInput):
        await catalog.report_problem(code=item.code, description="  ")
    with pytest.raises(errors.NotFound):
        await catalog.report_problem(code="ZZZZZZZZ", description="?")
    await catalog.resolve_problem(problem_id=report.id, actor_id=None)
    assert await catalog.open_problems() == []


async def test_unknown_codes_are_not_found(database):
    for code in ("ZZZZZZZZ", "", "drop table item", "x" * 500):
        with pytest.raises(errors.NotFound):
            await catalog.get_item(code=code)
