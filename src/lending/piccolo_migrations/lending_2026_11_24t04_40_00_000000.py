"""Catalogue search: each item group's words in the database's own full-text index, and the
vocabulary the spelling correction looks words up in.

SQLite: an FTS5 table ``item_group_search`` (rowid = item_group.id; columns name and body;
unicode61 without diacritics; prefix indexes for 2 and 3 letters). PostgreSQL: a table
``item_group_search`` (item_group, document tsvector) with a GIN index. Both engines:
``search_word`` (every indexed word) and ``search_word_variant`` (each word's deletion
neighbourhood, for finding the words within an edit or two of a mistyped one).

The service layer writes these rows in the transaction of each item change
(``lending.catalog.search.index_group``): a group's text includes its category path and parts,
which live in other rows, and its words are normalised in Python the same way on both engines.
A deleted item group leaves the index through a trigger (SQLite) or a cascading foreign key
(PostgreSQL). None of these structures is a Piccolo table: they are engine-specific, and the
schema check in tests/services/test_migrations.py compares only the table classes.

The backfill below carries its own copy of the word rules as they are at this migration:
a migration must not depend on application code that will change after it.
``lending.catalog.search.rebuild_index()`` re-derives everything with the current code.
"""

import json
import re
import unicodedata

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.querystring import QueryString

ID = "2026-11-24T04:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "catalogue full-text search and its vocabulary"

SQLITE_FORWARDS = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS item_group_search USING fts5("
    "name, body, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')",
    "CREATE TRIGGER IF NOT EXISTS item_group_search_forget AFTER DELETE ON item_group "
    "BEGIN DELETE FROM item_group_search WHERE rowid = old.id; END",
    "CREATE TABLE IF NOT EXISTS search_word (word TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS search_word_variant (variant TEXT NOT NULL, word TEXT NOT NULL, "
    "PRIMARY KEY (variant, word)) WITHOUT ROWID",
]
SQLITE_BACKWARDS = [
    "DROP TRIGGER IF EXISTS item_group_search_forget",
    "DROP TABLE IF EXISTS item_group_search",
    "DROP TABLE IF EXISTS search_word_variant",
    "DROP TABLE IF EXISTS search_word",
]
POSTGRES_FORWARDS = [
    "CREATE TABLE IF NOT EXISTS item_group_search ("
    "item_group integer PRIMARY KEY REFERENCES item_group (id) ON DELETE CASCADE, "
    "document tsvector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS item_group_search_document ON item_group_search USING gin (document)",
    "CREATE TABLE IF NOT EXISTS search_word (word text PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS search_word_variant (variant text NOT NULL, word text NOT NULL, "
    "PRIMARY KEY (variant, word))",
]
POSTGRES_BACKWARDS = [
    "DROP TABLE IF EXISTS item_group_search",
    "DROP TABLE IF EXISTS search_word_variant",
    "DROP TABLE IF EXISTS search_word",
]

# --- the word rules as of this migration (see lending.catalog.search) ---------------------------

_WORD = re.compile(r"[^\W_]+")
MAX_WORD_LENGTH = 40


def _words(text):
    found = []
    for token in _WORD.findall(unicodedata.normalize("NFC", text or "")):
        folded = "".join(c for c in unicodedata.normalize("NFKD", token.casefold()) if not unicodedata.combining(c))
        found.extend(w for w in _WORD.findall(folded) if len(w) <= MAX_WORD_LENGTH)
    return found


def _deletions(word, depth):
    found, layer = {word}, {word}
    for _ in range(depth):
        layer = {w[:i] + w[i + 1:] for w in layer if len(w) > 1 for i in range(len(w))}
        found |= layer
    return found


def _variant_depth(word):
    return 2 if 6 <= len(word) <= 24 else 1 if 3 <= len(word) <= 24 else 0


def _parts_text(parts):
    if isinstance(parts, str):
        try:
            parts = json.loads(parts or "[]")
        except ValueError:
            return parts
    return " ".join(str(p) for p in parts or [])


async def _insert(engine, head, row, rows, tail=""):
    """INSERT ``rows`` a batch at a time: ``head`` + one ``row`` template per row + ``tail``."""
    if not rows:
        return
    batch = max(1, 900 // len(rows[0]))
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        await engine.run_querystring(QueryString(head + ", ".join([row] * len(chunk)) + tail,
                                                 *[value for values in chunk for value in values]))


async def _backfill(engine, postgres):
    categories = {r["id"]: r for r in await engine.run_ddl("SELECT id, name, parent FROM category")}

    def path(category_id):
        names, seen = [], set()
        while category_id in categories and category_id not in seen:
            seen.add(category_id)
            names.append(categories[category_id]["name"])
            category_id = categories[category_id]["parent"]
        return " ".join(reversed(names))

    documents, vocabulary = [], set()
    for group in await engine.run_ddl("SELECT id, name, description, category, parts FROM item_group"):
        name = _words(group["name"])
        body = _words(" ".join([group["description"] or "", path(group["category"]), _parts_text(group["parts"])]))
        vocabulary.update(name, body)
        if postgres:
            documents.append((group["id"], sorted(set(name)), sorted(set(body) - set(name))))
        else:
            documents.append((group["id"], " ".join(name), " ".join(body)))
    if postgres:
        await _insert(engine, "INSERT INTO item_group_search (item_group, document) VALUES ",
                      "({}, setweight(array_to_tsvector({}::text[]), 'A') || array_to_tsvector({}::text[]))",
                      documents, " ON CONFLICT (item_group) DO NOTHING")
    else:
        await _insert(engine, "INSERT INTO item_group_search (rowid, name, body) VALUES ", "({}, {}, {})", documents)
    insert, tail = ("INSERT INTO ", " ON CONFLICT DO NOTHING") if postgres else ("INSERT OR IGNORE INTO ", "")
    words = sorted(vocabulary)
    await _insert(engine, insert + "search_word (word) VALUES ", "({})", [(w,) for w in words], tail)
    await _insert(engine, insert + "search_word_variant (variant, word) VALUES ", "({}, {})",
                  [(v, w) for w in words for v in sorted(_deletions(w, _variant_depth(w)))], tail)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lending", description=DESCRIPTION)

    async def create_search():
        engine = engine_finder()
        postgres = engine.engine_type == "postgres"
        for statement in POSTGRES_FORWARDS if postgres else SQLITE_FORWARDS:
            await engine.run_ddl(statement)
        await _backfill(engine, postgres)

    async def drop_search():
        engine = engine_finder()
        for statement in POSTGRES_BACKWARDS if engine.engine_type == "postgres" else SQLITE_BACKWARDS:
            await engine.run_ddl(statement)

    manager.add_raw(create_search)
    manager.add_raw_backwards(drop_search)
    return manager
