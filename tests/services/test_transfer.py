"""CSV import and export of the catalogue, on every database engine: every bad row reported
with its line, nothing half-written, and a round trip that gives back the same file."""

from __future__ import annotations

import csv
import io

import pytest

from lending import errors
from lending.audit.tables import AuditEvent
from lending.catalog import services as catalog
from lending.catalog import transfer
from lending.catalog.services import ItemDetails
from lending.catalog.tables import Category, Item, ItemGroup, Sticker
from tests.conftest import empty_tables


def csv_text(header: list[str], *rows: list[str], delimiter: str = ",", newline: str = "\r\n") -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


async def counts() -> tuple[int, int, int, int]:
    return (
        await Item.count().run(),
        await ItemGroup.count().run(),
        await Category.count().run(),
        await AuditEvent.count().run(),
    )


@pytest.fixture
async def venue(database):
    tools = await catalog.create_category(name="Tools")
    drills = await catalog.create_category(name="Drills", parent_id=tools.id)
    garden = await catalog.create_category(name="Garden")
    hall = await catalog.create_site(name="Main Hall")
    shed = await catalog.create_site(name="The Shed")
    return {"tools": tools, "drills": drills, "garden": garden, "hall": hall, "shed": shed}


HEADER = [
    "code",
    "name",
    "description",
    "category",
    "safety_notes",
    "parts",
    "condition",
    "replacement_value",
    "loan_days",
    "donor",
    "site",
    "copies",
]


async def test_a_good_file_imports_every_row_and_copy(venue):
    [sticker] = await catalog.create_stickers(count=1)
    text = csv_text(
        HEADER,
        [
            "",
            "Cordless drill",
            "18V, two batteries",
            "Tools > Drills",
            "Wear goggles",
            "Drill | Charger|Battery x2",
            "good",
            "£89.99",
            "7",
            "Ann",
            "Main Hall",
            "3",
        ],
        [
            f"{sticker[:4].lower()}-{sticker[4:]}",
            "Hedge trimmer",
            "",
            "garden",
            "",
            "",
            "Fair",
            "45",
            "",
            "",
            "the shed",
            "",
        ],
        ["", "Ladder", "Three-section\nextending", "", "", "", "", "", "14", "", "", "1"],
    )
    report = await transfer.import_items(text, dry_run=False)
    assert report.ok and report.written
    assert (report.rows, report.items, report.groups, report.claimed_stickers) == (3, 5, 3, 1)
    assert await Item.count().run() == 5 and await ItemGroup.count().run() == 3
    drills = [await catalog.get_item(code=code) for code in report.codes[:3]]
    assert len({d.code for d in drills}) == 3 and len({d.group_id for d in drills}) == 1
    drill = drills[0]
    assert (
        drill.name,
        drill.category,
        drill.parts,
        drill.replacement_value_pence,
        drill.loan_days,
        drill.donor,
        drill.site,
        drill.condition,
        drill.status,
    ) == (
        "Cordless drill",
        "Tools › Drills",
        ["Drill", "Charger", "Battery x2"],
        8999,
        7,
        "Ann",
        "Main Hall",
        "good",
        "available",
    )
    assert drill.labelled_at is None  # a new code: its label is still to print
    trimmer = await catalog.get_item(code=sticker)
    assert (trimmer.name, trimmer.category, trimmer.site, trimmer.condition) == (
        "Hedge trimmer",
        "Garden",
        "The Shed",
        "fair",
    )
    assert trimmer.labelled_at is not None  # the sticker is already on it
    assert (await Sticker.select(Sticker.item).where(Sticker.code == sticker).first().run())["item"] is not None
    ladder = await catalog.get_item(code=report.codes[4])
    assert ladder.description == "Three-section\nextending" and ladder.category is None
    found, _ = await catalog.list_items(query="hedge trim")  # imported items are in the search index
    assert [item.name for item in found] == ["Hedge trimmer"]
    assert len((await catalog.list_items(query="charger"))[0]) == 3  # parts are searched too
    actions = [
        row["action"]
        for row in await AuditEvent.select(AuditEvent.action)
        .where(AuditEvent.action.is_in(["item.create", "item.import"]))
        .run()
    ]
    assert actions.count("item.create") == 5 and actions.count("item.import") == 1


async def test_a_dry_run_writes_nothing(venue):
    before = await counts()
    text = csv_text(["name", "category", "copies"], ["Saw", "Tools > Saws", "2"], ["Rake", "Garden > Rakes", ""])
    report = await transfer.import_items(text, dry_run=True, create_categories=True)
    assert report.ok and not report.written
    assert (report.rows, report.items, report.new_categories) == (2, 3, ("Tools > Saws", "Garden > Rakes"))
    assert await counts() == before
    assert await transfer.check_import(text, create_categories=True) == report


async def bad_file(venue) -> tuple[str, dict[int, set[str]]]:
    """A file with every kind of mistake, and the (line: columns) each should be reported at."""
    [claimed, unclaimed] = await catalog.create_stickers(count=2)
    existing = await catalog.add_item(details=ItemDetails(name="Existing tent"), sticker=claimed)
    other = await catalog.add_item(details=ItemDetails(name="Existing stove"))
    await catalog.create_category(name="Drills", parent_id=venue["garden"].id)  # 'Drills' is now ambiguous
    header = [
        "name",
        "category",
        "replacement_value",
        "loan_days",
        "condition",
        "code",
        "site",
        "copies",
        "description",
        "status",
        "group",
        "parts",
    ]
    ok = ["Fine thing", "Tools > Drills", "12.50", "7", "good", "", "", "", "", "", "", ""]

    def row(**changes: str) -> list[str]:
        values = dict(zip(header, ok, strict=True))
        values.update(changes)
        return [values[column] for column in header]

    rows = {
        2: (row(name=""), {"name"}),
        3: (row(replacement_value="lots"), {"replacement_value"}),
        4: (row(replacement_value="12,50"), {"replacement_value"}),
        5: (row(loan_days="two weeks"), {"loan_days"}),
        6: (row(loan_days="400"), {"loan_days"}),
        7: (row(condition="shiny"), {"condition"}),
        8: (row(category="Toolz"), {"category"}),
        9: (row(category="Drills"), {"category"}),  # ambiguous
        10: (row(code="NOT-A-CODE!"), {"code"}),
        11: (row(code=unclaimed), set()),
        12: (row(code=unclaimed.lower()), {"code"}),  # the same code again
        13: (row(code=existing.code), {"code"}),  # already an item's code (and a claimed sticker)
        14: (row(code=other.code), {"code"}),
        15: (row(code="ZZZZ-ZZZZ"), {"code"}),  # no such sticker, and keep_codes is off
        16: (row(site="Nowhere"), {"site"}),
        17: (row(copies="0"), {"copies"}),
        18: (row(copies="3", code="YYYY-YYYY"), {"code"}),
        19: (row(description="x" * 10_001), {"description"}),
        20: (row(status="lost"), {"status"}),
        21: (row(group="A"), set()),
        22: (row(group="A", name="Another thing"), {"group"}),
        23: (row(parts="|".join(f"part {n}" for n in range(51))), {"parts"}),
        24: (row(name="n" * 201), {"name"}),
        25: (row(condition="shiny", site="Nowhere", loan_days="x"), {"condition", "site", "loan_days"}),
    }
    text = csv_text(header, *(values for values, _ in rows.values()))
    text += "Too,many,values,here,,,,,,,,,extra\r\n"  # line 26
    expected = {line: columns for line, (_, columns) in rows.items() if columns}
    expected[26] = {""}
    return text, expected


async def test_every_bad_row_is_reported_with_its_line_and_nothing_is_written(venue):
    text, expected = await bad_file(venue)
    before = await counts()
    report = await transfer.check_import(text)
    found: dict[int, set[str]] = {}
    for problem in report.problems:
        found.setdefault(problem.line, set()).add(problem.column)
    assert found == expected, [str(p) for p in report.problems]
    assert [p.line for p in report.problems] == sorted(p.line for p in report.problems)
    assert all(str(p).startswith(f"line {p.line}: ") for p in report.problems)
    text_of = {p.line: str(p) for p in report.problems}
    assert "12.50" in text_of[4] and "Toolz" in text_of[8] and "Garden > Drills" in text_of[9]
    assert "also on line 11" in text_of[12] and "Existing stove" in text_of[14] and "keep-codes" in text_of[15]
    assert "line 21" in text_of[22] and "13 values" in text_of[26]
    for dry_run in (True, False):
        with pytest.raises(transfer.ImportRejected) as raised:
            await transfer.import_items(text, dry_run=dry_run)
        assert raised.value.code == "import_has_errors" and isinstance(raised.value, errors.InvalidInput)
        assert raised.value.report.problems == report.problems
        assert f"{len(report.problems)} problems" in str(raised.value.detail)
    assert await counts() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \r\n\r\n", "empty"),
        ("description,category\r\nA drill,Tools\r\n", 'no "name" column'),
        ("name,catgory\r\nDrill,Tools\r\n", '"catgory" is not a column'),
        ("name,Name\r\nDrill,Drill\r\n", "appears twice"),
    ],
)
async def test_header_problems_are_on_line_1(venue, text, message):
    report = await transfer.check_import(text)
    assert not report.ok and [p.line for p in report.problems] == [1] * len(report.problems)
    assert any(message in str(p) for p in report.problems), [str(p) for p in report.problems]
    with pytest.raises(transfer.ImportRejected):
        await transfer.import_items(text, dry_run=False)
    assert await Item.count().run() == 0


async def test_only_the_last_of_500_rows_is_bad_and_nothing_is_written(venue):
    rows = [[f"Thing {n}", "Tools", "5"] for n in range(499)] + [["Bad thing", "Tools", "five"]]
    text = csv_text(["name", "category", "loan_days"], *rows)
    with pytest.raises(transfer.ImportRejected) as raised:
        await transfer.import_items(text, dry_run=False)
    assert [(p.line, p.column) for p in raised.value.report.problems] == [(501, "loan_days")]
    assert await Item.count().run() == 0 and await ItemGroup.count().run() == 0


async def test_unreadable_rows_are_reported_and_the_rest_still_checked(venue):
    text = 'name,description\r\nGood,"fine"\r\nBad,"quote"s\r\n"Oops,no closing quote\r\nStill,here\r\n'
    report = await transfer.check_import(text)
    assert [p.line for p in report.problems] == [3, 4], [str(p) for p in report.problems]
    assert "cannot be read as CSV" in str(report.problems[0])


async def test_a_failure_while_writing_rolls_everything_back(venue):
    before = await counts()
    text = csv_text(["name", "copies"], *([f"Thing {n}", "2"] for n in range(500)))
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 300:
            raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        await transfer.import_items(text, dry_run=False, progress=progress)
    assert seen == [100, 200, 300]  # three chunks were written before the failure...
    assert await counts() == before  # ...and rolled back with it


async def test_a_sticker_claimed_at_the_desk_during_the_import_rolls_everything_back(venue, monkeypatch):
    stickers = await catalog.create_stickers(count=2)
    desk_item = await catalog.add_item(details=ItemDetails(name="Added at the desk"))
    rows = [[f"Thing {n}", ""] for n in range(500)]
    rows[449][1] = stickers[1]
    text = csv_text(["name", "code"], *rows)
    before = await counts()
    real_insert = transfer._insert
    calls = {"items": 0}

    async def insert_while_the_desk_claims(table, rows, **kwargs):
        if table is Item:
            calls["items"] += 1
            if any(row["code"] == stickers[1] for row in rows):
                # Between the check and the write, a volunteer sticks it on something else.
                await (
                    Sticker.update(
                        {
                            Sticker.item: (await Item.select(Item.id).where(Item.code == desk_item.code).first().run())[
                                "id"
                            ]
                        }
                    )
                    .where(Sticker.code == stickers[1])
                    .run()
                )
        return await real_insert(table, rows, **kwargs)

    monkeypatch.setattr(transfer, "_insert", insert_while_the_desk_claims)
    with pytest.raises(errors.Conflict) as raised:
        await transfer.import_items(text, dry_run=False)
    assert raised.value.code == "sticker_used" and calls["items"] == 5
    assert await counts() == before
    assert (await Sticker.select(Sticker.item).where(Sticker.code == stickers[1]).first().run())["item"] is None


async def test_a_code_taken_during_the_import_is_a_conflict_not_a_crash(venue, monkeypatch):
    taken = await catalog.add_item(details=ItemDetails(name="Already here"))
    rows = [[f"Thing {n}", ""] for n in range(500)]
    rows[449][1] = taken.code
    text = csv_text(["name", "code"], *rows)
    before = await counts()

    async def sees_nothing(rows, codes_at, problems, *, keep_codes):  # as if the item arrived after the check
        for row in rows:
            if row.code:
                row.code_kind = "keep"

    monkeypatch.setattr(transfer, "_check_codes", sees_nothing)
    with pytest.raises(errors.Conflict) as raised:
        await transfer.import_items(text, dry_run=False, keep_codes=True)
    assert raised.value.code == "import_conflict"
    assert await counts() == before


async def make_catalogue(venue) -> None:
    drill = await catalog.add_item(
        details=ItemDetails(
            name="Cordless drill",
            description="18V with two batteries.\nCharger included.",
            category_id=venue["drills"].id,
            safety_notes="Wear goggles",
            parts="Drill\nCharger\nBattery x2",
            replacement_value="89.99",
            loan_days=7,
            donor="Siân Jones",
            site_id=venue["hall"].id,
            notes="Bought 2024",
        )
    )
    await catalog.add_item(
        details=ItemDetails(name="x", condition="worn", replacement_value="80", site_id=venue["shed"].id),
        copy_of=drill.code,
    )
    await catalog.add_item(
        details=ItemDetails(
            name='=HYPERLINK("http://evil")', description="-5 degrees; @home", category_id=venue["garden"].id
        )
    )
    ladder = await catalog.add_item(details=ItemDetails(name="Ladder", condition="damaged", replacement_value="0.5"))
    await catalog.set_status(code=ladder.code, status="retired", reason="Rung cracked")
    tent = await catalog.add_item(details=ItemDetails(name="Tent, 4-person", description='A "big" tent'))
    await catalog.set_status(code=tent.code, status="maintenance")


def without_codes(text: str) -> list[list[str]]:
    return [row[1:] for row in csv.reader(io.StringIO(text, newline=""))]


async def test_export_then_import_into_an_empty_catalogue_gives_the_same_file(venue):
    await make_catalogue(venue)
    exported = await transfer.export_items()
    rows = list(csv.reader(io.StringIO(exported, newline="")))
    assert rows[0] == list(transfer.COLUMNS) and len(rows) == 6
    assert rows[1][transfer.COLUMNS.index("category")] == "Tools > Drills"
    assert rows[1][transfer.COLUMNS.index("parts")] == "Drill | Charger | Battery x2"
    assert rows[1][-1] == rows[2][-1] == "1"  # copies share a group
    assert rows[3][1] == '\'=HYPERLINK("http://evil")' and rows[3][2] == "'-5 degrees; @home"  # no formulas

    # Into an empty catalogue, keeping the codes (labels already stuck on things keep working).
    await empty_tables()
    for name in ("Main Hall", "The Shed"):
        await catalog.create_site(name=name)
    report = await transfer.import_items(exported, dry_run=False, create_categories=True, keep_codes=True)
    assert (report.rows, report.groups, report.kept_codes) == (5, 4, 5)
    assert set(report.new_categories) == {"Tools", "Tools > Drills", "Garden"}
    assert await transfer.export_items() == exported
    assert (await catalog.get_item(code=rows[1][0])).name == "Cordless drill"

    # Or with new codes: the same rows but for the codes.
    await empty_tables()
    for name in ("Main Hall", "The Shed"):
        await catalog.create_site(name=name)
    blanked = csv_text(rows[0], *([""] + row[1:] for row in rows[1:]))
    await transfer.import_items(blanked, dry_run=False, create_categories=True)
    again = await transfer.export_items()
    assert without_codes(again) == without_codes(exported)
    assert {row[0] for row in csv.reader(io.StringIO(again))}.isdisjoint({row[0] for row in rows[1:]})


async def test_on_loan_items_come_in_available_with_a_warning(venue):
    text = csv_text(["name", "status"], ["Drill", "on_loan"], ["Saw", "Missing"], ["Rake", ""])
    report = await transfer.import_items(text, dry_run=False)
    assert [(w.line, w.column) for w in report.warnings] == [(2, "status")]
    assert [(await catalog.get_item(code=code)).status for code in report.codes] == [
        "available",
        "missing",
        "available",
    ]


async def test_keep_codes_registers_unused_codes_and_claims_stickers(venue):
    [sticker] = await catalog.create_stickers(count=1)
    text = csv_text(["code", "name"], ["m7k4-2qxd", "Kept"], [sticker, "Claimed"])
    refused = await transfer.check_import(text)
    assert [(p.line, p.column) for p in refused.problems] == [(2, "code")]
    report = await transfer.import_items(text, dry_run=False, keep_codes=True)
    assert (report.kept_codes, report.claimed_stickers) == (1, 1)
    assert report.codes == ("M7K42QXD", sticker)
    assert (await catalog.get_item(code="M7K4-2QXD")).name == "Kept"
    assert await Sticker.count().run() == 1  # a kept code is an item's code, not a printed sticker


@pytest.mark.parametrize(
    "text",
    [
        (
            "\ufeffName;Category;Replacement value;Parts\r\nDrill;Tools > Drills;12.50;Drill|Charger\r\n"
            '"Saw; hand";drills;3;\r\n'
        ),
        (
            "name\tcategory\treplacement_value\tparts\nDrill\tTools > Drills\t12.50\tDrill|Charger\n"
            "Saw; hand\tdrills\t3\t\n"
        ),
        ("NAME,CATEGORY,REPLACEMENT-VALUE,PARTS\rDrill,Tools › Drills,£12.50,Drill|Charger\rSaw; hand,DRILLS,3,\r"),
        (
            'name,category,replacement_value,parts\n\nDrill,tools>drills,12.5,"Drill\nCharger"\n,,,\n'
            "Saw; hand,Drills,3.00,\n"
        ),
    ],
    ids=["excel-bom-crlf-semicolon", "tab", "upper-case-cr", "lf-blank-rows"],
)
async def test_excel_and_other_spreadsheets(venue, text):
    report = await transfer.import_items(text, dry_run=False)
    assert report.rows == 2, [str(p) for p in report.problems]
    drill, saw = [await catalog.get_item(code=code) for code in report.codes]
    assert (drill.name, drill.category, drill.replacement_value_pence, drill.parts) == (
        "Drill",
        "Tools › Drills",
        1250,
        ["Drill", "Charger"],
    )
    assert (saw.name, saw.category, saw.replacement_value_pence) == ("Saw; hand", "Tools › Drills", 300)


def test_decode_takes_utf8_with_or_without_a_bom_and_refuses_others():
    assert transfer.decode("name\r\nCafé £5\r\n".encode()) == "name\r\nCafé £5\r\n"
    assert transfer.decode(b"\xef\xbb\xbfname\r\n") == "name\r\n"
    with pytest.raises(errors.InvalidInput) as raised:
        transfer.decode("name\r\nok\r\nCaf\xe9\r\n".encode("cp1252"))
    assert raised.value.code == "not_utf8" and "Line 3" in str(raised.value.detail)


async def test_categories_and_sites_by_name_path_or_new(venue):
    text = csv_text(
        ["name", "category", "site"],
        ["A", "drills", "MAIN  hall"],
        ["B", "tools › drills", ""],
        ["C", "Garden > Hoses", ""],
        ["D", "Hoses", ""],
        ["E", "Kitchen", ""],
        ["F", "Tools > Drills > Cordless", "The Shed"],
    )
    refused = await transfer.check_import(text)
    assert [(p.line, p.column) for p in refused.problems] == [
        (4, "category"),
        (5, "category"),
        (6, "category"),
        (7, "category"),
    ]
    report = await transfer.import_items(text, dry_run=False, create_categories=True)
    assert report.new_categories == ("Garden > Hoses", "Kitchen", "Tools > Drills > Cordless")
    found = [await catalog.get_item(code=code) for code in report.codes]
    assert [(i.category, i.site) for i in found] == [
        ("Tools › Drills", "Main Hall"),
        ("Tools › Drills", None),
        ("Garden › Hoses", None),
        ("Garden › Hoses", None),
        ("Kitchen", None),
        ("Tools › Drills › Cordless", "The Shed"),
    ]
    assert await Category.count().run() == 6


async def test_ten_thousand_rows(venue):
    text = csv_text(
        ["name", "category", "parts", "replacement_value", "site"],
        *([f"Thing {n}", "Tools > Drills", "Drill|Case", f"{n % 300}.25", "Main Hall"] for n in range(10_000)),
    )
    seen: list[tuple[int, int]] = []
    report = await transfer.import_items(text, dry_run=False, progress=lambda done, total: seen.append((done, total)))
    assert report.rows == report.items == 10_000 and len(set(report.codes)) == 10_000
    assert await Item.count().run() == 10_000
    assert seen[-1] == (10_000, 10_000) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert transfer.count_rows(await transfer.export_items()) == 10_000


def documented(kind: str) -> str:
    """The first ```kind block of docs/catalogue-csv.md."""
    from tests.conftest import ROOT

    page = (ROOT / "docs" / "catalogue-csv.md").read_text()
    return page.split(f"```{kind}\n", 1)[1].split("```", 1)[0]


async def test_the_documented_example_imports_and_its_mistakes_read_as_documented(database):
    from lending import clock

    example = documented("csv")
    await catalog.create_site(name="Main Hall")
    tools = await catalog.create_category(name="Tools")
    await catalog.create_category(name="Drills", parent_id=tools.id)
    await catalog.create_category(name="Garden")
    with pytest.raises(transfer.ImportRejected) as raised:
        await transfer.import_items(
            example.replace(",60,", ",sixty,").replace('\nExtends to 4 m.",Tools,', '\nExtends to 4 m.",Tols,'),
            dry_run=False,
        )
    shown = documented("text").splitlines()
    assert shown[1] == f"lending: error: {raised.value.detail}"
    assert shown[2:] == [str(problem) for problem in raised.value.report.problems]

    await Sticker.insert(Sticker(code="M7K42QXD", printed_at=clock.now())).run()
    report = await transfer.import_items(example, dry_run=False)
    assert (report.rows, report.items, report.groups, report.claimed_stickers) == (3, 5, 3, 1)
    ladder = await catalog.get_item(code=report.codes[-1])
    assert (ladder.description, ladder.loan_days, ladder.category) == ("Three sections.\nExtends to 4 m.", 14, "Tools")
