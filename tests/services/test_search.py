"""Catalogue search (FTS5 on SQLite, tsvector on PostgreSQL) through the services, on every
database engine: words, prefixes, spelling, Welsh letters, categories, filters, pages, and
input that tries to be SQL or full-text syntax."""

from __future__ import annotations

import importlib

import pytest

from lending import db
from lending.catalog import search
from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.catalog.tables import Category, ItemGroup

HOSTILE = [
    "' OR 1=1 --",
    'drill" OR "',
    "NEAR(a b)",
    "*",
    "^",
    "a:b",
    "\x00",
    "x" * 5000,
    "%",
    "_",
    "'; DROP TABLE item; --",
    "drill AND NOT saw",
    '"unbalanced',
    "(((",
    "{}",
    "$1",
    "col:drill",
    "-drill",
    "dri*",
    "\\",
    "\u202e\u0000\ud800",
    "drill\x00saw",
    "drill\x00",
    "name:drill",
    "body",
    "{name}: drill",
    "drill:*",
    "!drill",
    "drill & saw",
    "drill | saw",
    "<-> drill",
]


# --- words, without a database -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "terms"),
    [
        ("Cordless  DRILL", ["cordless", "drill"]),
        ("' OR 1=1 --", ["1"]),
        ('drill" OR "', ["drill"]),
        ("NEAR(a b)", ["a", "b"]),
        ("*", []),
        ("^", []),
        ("a:b", ["a", "b"]),
        ("\x00", []),
        ("drill*", ["drill"]),
        ("-saw +drill", ["saw", "drill"]),
        ("hedge-trimmer's", ["hedge", "trimmer", "s"]),
        ("Peiriant GWNÏO", ["peiriant", "gwnïo"]),
        ("ŵyn tŷ â ê î ô û ŷ", ["ŵyn", "tŷ", "â", "ê", "î", "ô", "û", "ŷ"]),
        ("drill drill DRILL", ["drill"]),
        (
            "one two three four five six seven eight nine ten",
            ["one", "two", "three", "four", "five", "six", "seven", "eight"],
        ),
        ("not a drill or saw", ["not", "a", "drill", "or", "saw"]),  # only upper-case operators go
    ],
)
def test_query_terms_are_safe_words(typed, terms):
    assert search.query_terms(typed) == terms


def test_query_terms_of_huge_input_are_bounded():
    assert search.query_terms("x" * 5000) == []  # one 1,000-letter "word" is not a word anyone indexed
    terms = search.query_terms("ab " * 2000 + "cd")
    assert terms == ["ab"]  # only the first 1,000 characters are read
    many = search.query_terms(" ".join(f"w{n}" for n in range(3000)))
    assert len(many) == 8 and all(len(t) <= search.MAX_WORD_LENGTH for t in many)


def test_words_fold_case_and_diacritics_the_same_way_for_text_and_queries():
    assert search.words("Peiriant gwnïo: ŵyn, TŶ") == ["peiriant", "gwnio", "wyn", "ty"]
    assert [search.fold(t) for t in search.query_terms("GWNÏO ŵyn")] == ["gwnio", "wyn"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("drill", "drill", 0),
        ("drlil", "drill", 1),
        ("dril", "drill", 1),
        ("drills", "drill", 1),
        ("trimer", "trimmer", 1),
        ("hegde", "hedge", 1),
        ("drill", "grill", 1),
        ("drill", "frills", 2),
        ("abc", "xyz", 3),
        ("ca", "abc", 3),
    ],
)
def test_damerau_levenshtein_distance(a, b, expected):
    assert search.distance(a, b, 5) == expected
    assert search.distance(a, b, 0) == min(expected, 1)


# --- the catalogue ------------------------------------------------------------------------------


async def names(**kwargs) -> list[str]:
    items, _ = await catalog.list_items(**kwargs)
    return [item.name for item in items]


@pytest.fixture
async def shelf(database):
    tools = await catalog.create_category(name="Tools")
    drills = await catalog.create_category(name="Power drills", parent_id=tools.id)
    garden = await catalog.create_category(name="Garden")
    crafts = await catalog.create_category(name="Crefftau")
    items = {}
    for name, description, category, parts in [
        ("Cordless drill", "18V with two batteries", drills, "Charger\nBattery"),
        ("Hammer drill", "For masonry and concrete", drills, ""),
        ("Hedge trimmer", "Petrol, for big hedges", garden, "Blade guard"),
        ("Lawn mower", "Electric, with a grass box", garden, ""),
        ("Peiriant gwnïo", "Sewing machine (Singer)", crafts, "Pedal"),
    ]:
        items[name] = await catalog.add_item(
            details=ItemDetails(name=name, description=description, category_id=category.id, parts=parts)
        )
    return {"items": items, "tools": tools, "drills": drills, "garden": garden, "crafts": crafts}


async def test_one_word(shelf):
    assert await names(query="drill") == ["Cordless drill", "Hammer drill"]
    assert await names(query="MASONRY") == ["Hammer drill"]  # the description
    assert await names(query="charger") == ["Cordless drill"]  # a part
    assert await names(query="saw") == []


async def test_every_word_must_match(shelf):
    assert await names(query="cordless drill") == ["Cordless drill"]
    assert await names(query="drill cordless") == ["Cordless drill"]
    assert await names(query="hedge drill") == []  # both are words here, never together: no correction
    assert await search.correction("hedge drill") is None


async def test_the_last_word_matches_as_a_prefix(shelf):
    assert await names(query="dri") == ["Cordless drill", "Hammer drill"]
    assert await names(query="cordless dri") == ["Cordless drill"]
    assert await names(query="hed") == ["Hedge trimmer"]
    assert await names(query="dri cordless") == []  # only the last word is a prefix
    assert await names(query="d") == []  # a one-letter prefix would match everything


@pytest.mark.parametrize(
    ("typed", "found", "corrected"),
    [
        ("drlil", ["Cordless drill", "Hammer drill"], "drill"),
        ("dril", ["Cordless drill", "Hammer drill"], None),  # the prefix finds it as typed
        ("drills", ["Cordless drill", "Hammer drill"], None),  # in their category's name
        ("hamer", ["Hammer drill"], "hammer"),
        ("hedge trimer", ["Hedge trimmer"], "hedge trimmer"),
        ("hegde trimmer", ["Hedge trimmer"], "hedge trimmer"),
        ("Cordles drill", ["Cordless drill"], "cordless drill"),
        ("masnory", ["Hammer drill"], "masonry"),
        ("lawn mowre", ["Lawn mower"], "lawn mower"),
        ("hedgetrimmers", [], None),  # too far from any word
        ("xyzzy", [], None),
        ("drl", [], None),  # three letters are too few to guess from
        ("hamr", [], None),  # two edits from "hammer": one is the most for a word of 4-7 letters
        ("hammmerr", ["Hammer drill"], "hammer"),  # two are allowed from 8 letters
    ],
)
async def test_typos_are_corrected(shelf, typed, found, corrected):
    assert await names(query=typed) == found
    assert await search.correction(typed) == corrected


async def test_welsh_letters_and_diacritics(shelf):
    for typed in ("peiriant gwnio", "peiriant gwnïo", "PEIRIANT GWNÏO", "gwnio", "gwnï"):
        assert await names(query=typed) == ["Peiriant gwnïo"], typed
    await catalog.add_item(details=ItemDetails(name="Ŵy Pasg", description="Addurn tŷ"))
    assert await names(query="wy pasg") == ["Ŵy Pasg"]
    assert await names(query="ty") == ["Ŵy Pasg"]
    assert await names(query="tŷ") == ["Ŵy Pasg"]


async def test_category_names_and_their_parents_are_searched(shelf):
    assert await names(query="power drills") == ["Cordless drill", "Hammer drill"]
    assert await names(query="tools") == ["Cordless drill", "Hammer drill"]  # the parent's name too
    assert await names(query="garden") == ["Hedge trimmer", "Lawn mower"]
    assert await names(query="crefftau") == ["Peiriant gwnïo"]


async def test_a_renamed_category_is_found_by_its_new_name(shelf):
    await Category.update({Category.name: "Offer"}).where(Category.id == shelf["tools"].id).run()
    assert await names(query="offer") == []  # not yet re-indexed
    await search.index_category(shelf["tools"].id)
    assert await names(query="offer") == ["Cordless drill", "Hammer drill"]
    assert await names(query="tools") == []


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_input_is_only_ever_words(shelf, hostile):
    found = await names(query=hostile)
    expected = ["Cordless drill", "Hammer drill"] if search.query_terms(hostile) in (["drill"], ["dri"]) else []
    assert found == expected, hostile
    resolved = await search.resolve(hostile)
    assert resolved.corrected is None or resolved.corrected.replace(" ", "").isalnum()
    for kwargs in ({"available": True}, {"category_id": shelf["garden"].id}):
        await catalog.list_items(query=hostile, **kwargs)


async def test_hostile_input_explains_itself(shelf):
    assert (await search.resolve("*")).note is not None
    assert (await search.resolve("drill")).note is None
    assert (await search.resolve(" ".join(f"w{n}" for n in range(12)))).note is not None
    assert (await search.resolve("   ")).note is None


async def test_search_respects_filters_and_pages(shelf):
    garden = shelf["garden"].id
    for n in range(6):
        await catalog.add_item(
            details=ItemDetails(name=f"Drill {n}", category_id=shelf["drills"].id if n % 2 else garden)
        )
    every = await names(query="drill", limit=50)
    assert every == ["Cordless drill", "Drill 0", "Drill 1", "Drill 2", "Drill 3", "Drill 4", "Drill 5", "Hammer drill"]
    paged, cursor, pages = [], "", 0
    while True:
        items, cursor = await catalog.list_items(query="drill", limit=3, cursor=cursor or "")
        paged += [i.name for i in items]
        pages += 1
        if cursor is None:
            break
    assert paged == every and pages == 3
    assert await names(query="drill", category_id=garden) == ["Drill 0", "Drill 2", "Drill 4"]
    assert await names(query="drill", category_id=shelf["tools"].id) == [
        "Cordless drill",
        "Drill 1",
        "Drill 3",
        "Drill 5",
        "Hammer drill",
    ]
    busy = shelf["items"]["Hammer drill"]
    await catalog.set_status(code=busy.code, status="maintenance")
    assert await names(query="drill", available=True, category_id=shelf["tools"].id) == [
        "Cordless drill",
        "Drill 1",
        "Drill 3",
        "Drill 5",
    ]
    assert "Hammer drill" in await names(query="drill")


async def test_editing_an_item_re_indexes_it(shelf):
    drill = shelf["items"]["Cordless drill"]
    await catalog.update_item(
        code=drill.code,
        details=ItemDetails(name="Cordless screwdriver", description="12V", category_id=shelf["garden"].id),
    )
    assert await names(query="drill") == ["Hammer drill"]
    assert await names(query="screwdriver") == ["Cordless screwdriver"]
    assert await names(query="cordless") == ["Cordless screwdriver"]
    assert await names(query="charger") == []  # its parts list is empty now
    assert await names(query="garden") == ["Cordless screwdriver", "Hedge trimmer", "Lawn mower"]
    # "drill" is still in the vocabulary from before; a typo is still corrected to the words in use.
    assert await names(query="screwdrivr") == ["Cordless screwdriver"]


async def test_a_fixed_typo_in_a_name_is_still_corrected_towards(shelf):
    trimmer = shelf["items"]["Hedge trimmer"]
    await catalog.update_item(code=trimmer.code, details=ItemDetails(name="Hedge trimer"))
    await catalog.update_item(code=trimmer.code, details=ItemDetails(name="Hedge trimmer"))
    # "trimer" stays in the vocabulary, but no item has it any more: it is still a typo.
    assert await names(query="hedge trimer") == ["Hedge trimmer"]
    assert await search.correction("hedge trimer") == "hedge trimmer"


async def test_a_copy_is_found_with_its_group(shelf):
    drill = shelf["items"]["Cordless drill"]
    copy = await catalog.add_item(details=ItemDetails(name="ignored"), copy_of=drill.code)
    items, _ = await catalog.list_items(query="cordless")
    assert [i.code for i in items] == [drill.code, copy.code]


async def test_a_retired_item_never_appears(shelf):
    mower = shelf["items"]["Lawn mower"]
    await catalog.set_status(code=mower.code, status="retired", reason="Engine seized")
    assert await names(query="mower") == []
    assert await names(query="mowr") == []
    assert await search.correction("mowr") is None  # no "Showing results for mower" over nothing
    assert await names(query="garden") == ["Hedge trimmer"]
    assert await names(query="mow", available=True) == []


async def test_rebuilding_the_index_finds_the_same(shelf):
    before = {q: await names(query=q) for q in ("drill", "gwnio", "tools", "drlil", "hed")}
    assert await search.rebuild_index() == 5
    assert {q: await names(query=q) for q in before} == before


async def test_the_migration_indexes_existing_groups(database):
    """Groups written before the search existed are found once the migration has run, and
    the migration can be run backwards and forwards again."""
    migration = importlib.import_module("lending.piccolo_migrations.lending_2026_11_24t04_40_00_000000")
    manager = await migration.forwards()
    await manager.run(backwards=True)
    category = await catalog.create_category(name="Cegin")
    await ItemGroup.insert(
        ItemGroup(
            name="Bread maker",
            description="Makes a loaf",
            category=category.id,
            parts='["Paddle"]',
            created_at=db_now(),
            updated_at=db_now(),
        )
    ).run()
    group = await ItemGroup.select(ItemGroup.id).first().run()
    from lending.catalog.tables import Item

    await Item.insert(Item(item_group=group["id"], code="BREAD001", created_at=db_now(), updated_at=db_now())).run()
    await manager.run()
    for typed in ("bread", "loaf", "cegin", "paddle", "bred maker", "brea"):
        assert await names(query=typed) == ["Bread maker"], typed


def db_now():
    from lending import clock

    return clock.now()


async def test_search_tables_are_not_piccolo_tables(database):
    """They are engine-specific and kept out of the table classes (and so out of the
    migrations' schema check)."""
    from lending.piccolo_app import APP_CONFIG

    names_in_app = {table._meta.tablename for table in APP_CONFIG.table_classes}
    assert not names_in_app & {"item_group_search", "search_word", "search_word_variant"}
    if db.is_postgres():
        rows = await db.engine().run_ddl("SELECT indexdef FROM pg_indexes WHERE tablename = 'item_group_search'")
        assert any("gin" in row["indexdef"] for row in rows)
    else:
        rows = await db.engine().run_ddl("SELECT sql FROM sqlite_master WHERE name = 'item_group_search'")
        assert "fts5" in rows[0]["sql"] and "remove_diacritics 2" in rows[0]["sql"]
