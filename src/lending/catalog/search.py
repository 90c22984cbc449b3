"""Catalogue search: the words of every item group in the database's own full-text index, and
what a person types turned into a safe query over it.

How it works, and why:

- **One word rule for both engines.** Text is split into words of letters and digits (any
  script; apostrophes, hyphens and every other symbol separate words), lower-cased, and
  stripped of diacritics ("gwnïo" is found by "gwnio" and the other way round). Python does
  this, for the index and for queries, so SQLite and PostgreSQL find exactly the same things;
  PostgreSQL's ``unaccent`` is not always installed. No stemming: the catalogue is bilingual
  (English and Welsh) and an English stemmer mangles Welsh words; PostgreSQL's lexemes are
  our words as they are (``array_to_tsvector``, the same as the ``simple`` configuration).
- **The index is written by the services** (``index_group``) in the transaction that changes
  the item, not by triggers: a group's text includes its category path and its parts list,
  which live in other rows, and the vocabulary below needs Python. Whatever changes a group,
  its category's name or place in the tree, or adds groups in bulk must call ``index_group``,
  ``index_category`` or ``index_groups``. ``rebuild_index`` re-derives everything. A deleted
  group leaves the index by itself (a trigger on SQLite, a cascading foreign key on PostgreSQL).
  The search tables are not Piccolo tables: they differ between the engines (an FTS5 virtual
  table; a tsvector with a GIN index) and are created by a raw migration.
- **Matching**: every word must match (AND); the last one also matches as the start of a word,
  so type-ahead works ("dri" finds "drill"). Results come back in the catalogue's own order
  (name, then id) with keyset pages: no ranking, which is the expensive part of full-text
  search (docs/performance.md). The database finds the matching groups
  through its full-text index and sorts their items by name, so a query costs in proportion
  to its matches; bench/search.py measures it at 100,000 groups.
- **Spelling**: when nothing matches, each word that occurs nowhere in the index is replaced
  by the commonest indexed word within a Damerau-Levenshtein distance of 1 (words of 4-7
  letters) or 2 (8 or more), and the search runs again. Candidates come from the table of
  every indexed word's deletion neighbourhood (``search_word_variant``, the "symmetric
  delete" method), an index lookup on both engines, so neither ``pg_trgm`` nor a scan of the
  vocabulary is needed. The vocabulary only grows (``rebuild_index`` prunes it); words no
  longer in any item are skipped because their count in the index is nought. ``list_items``
  corrects silently; a page says "Showing results for ..." with ``correction(text)``.
- **Hostile input** never reaches the query language: only words of letters and digits
  survive ``query_terms``, and each is quoted as a literal term (FTS5 ``"word"``, tsquery
  ``'word'``), passed as a bound parameter.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from piccolo.columns.combination import WhereRaw
from piccolo.querystring import QueryString

from lending import db
from lending.catalog.rules import Status
from lending.catalog.tables import Category, Item, ItemGroup
from lending.i18n import lazy_gettext as _l

MAX_TERMS = 8
MAX_WORD_LENGTH = 40  # longer "words" (serial numbers, URLs run together) are not indexed
MAX_QUERY_CHARACTERS = 1000  # the rest of a longer query is ignored
MIN_PREFIX_LENGTH = 2  # a one-letter prefix matches most of the catalogue and helps nobody
MAX_VARIANT_WORD_LENGTH = 24  # longer words are not corrected towards

_WORD = re.compile(r"[^\W_]+")
_LAST_WORD = re.compile(r"[^\W_]+\Z")
# FTS5's operators are upper-case words; people type them hoping for logic we do not offer.
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})


# --- words --------------------------------------------------------------------------------------


def fold(word: str) -> str:
    """A word as the index holds it: lower-case, without diacritics."""
    if word.isascii():
        return word.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", word.casefold()) if not unicodedata.combining(c))


@functools.lru_cache(maxsize=65536)
def _token_words(token: str) -> tuple[str, ...]:
    return tuple(w for w in _WORD.findall(fold(token)) if len(w) <= MAX_WORD_LENGTH)


def words(text: str) -> list[str]:
    """The index words of a text, in order."""
    found: list[str] = []
    for token in _WORD.findall(unicodedata.normalize("NFC", text or "")):
        found.extend(_token_words(token))
    return found


def query_terms(text: str) -> list[str]:
    """What a person typed, as at most eight distinct lower-case words of letters and digits
    (Welsh ŵ ŷ â ê î ô û and other accented letters kept as typed). Quotes, ``*``, ``:``,
    ``^``, brackets, hyphens and every other symbol separate words; the operators AND, OR,
    NOT and NEAR are dropped."""
    return _all_terms(text)[:MAX_TERMS]


def _all_terms(text: str) -> list[str]:
    terms: list[str] = []
    keys: set[str] = set()
    text = text or ""
    head = text[:MAX_QUERY_CHARACTERS]
    if _WORD.match(text, MAX_QUERY_CHARACTERS):  # the cut fell inside a word: leave that word out
        head = _LAST_WORD.sub("", head)
    for token in _WORD.findall(unicodedata.normalize("NFC", head)):
        if token in _OPERATORS:
            continue
        lowered = token.casefold()
        folded = words(lowered)
        # A few letters fold into more than one word (some ligatures and symbols): use the pieces.
        for term in [lowered] if folded == [fold(lowered)] else folded:
            key = fold(term)
            if key in keys:
                continue
            keys.add(key)
            terms.append(term)
    return terms


def _deletions(word: str, depth: int) -> set[str]:
    """The word and every string made by deleting up to ``depth`` of its letters."""
    found, layer = {word}, {word}
    for _ in range(depth):
        layer = {w[:i] + w[i + 1 :] for w in layer if len(w) > 1 for i in range(len(w))}
        found |= layer
    return found


def _variant_depth(word: str) -> int:
    """How many deletions of an indexed word are stored: enough to find it from any word that
    may be corrected to it (≤1 edit for 4-7 letters, ≤2 for 8 or more, so a word of 6 or more
    letters can be two edits away)."""
    if len(word) > MAX_VARIANT_WORD_LENGTH:
        return 0
    return 2 if len(word) >= 6 else 1 if len(word) >= 3 else 0


def allowed_distance(word: str) -> int:
    return 0 if len(word) < 4 else 1 if len(word) <= 7 else 2


def distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (optimal string alignment: an adjacent swap is one edit),
    or ``limit + 1`` once it is known to be larger than ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)


# --- the index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    group_id: int
    name: list[str]
    body: list[str]


def _parts_text(parts: object) -> str:
    if isinstance(parts, str):
        try:
            parts = json.loads(parts or "[]")
        except ValueError:
            return parts
    return " ".join(str(part) for part in parts or []) if isinstance(parts, list) else ""


async def _category_paths() -> dict[int, str]:
    rows = {row["id"]: row for row in await Category.select(Category.id, Category.name, Category.parent).run()}
    paths: dict[int, str] = {}
    for category_id in rows:
        names, current, seen = [], category_id, set()
        while current in rows and current not in seen:
            seen.add(current)
            names.append(rows[current]["name"])
            current = rows[current]["parent"]
        paths[category_id] = " ".join(reversed(names))
    return paths


def document(group: dict, paths: dict[int, str]) -> Document:
    """The words a group is found by: its name, and in the body its description, its
    category with every category above it, and its parts."""
    name = words(group["name"])
    body = words(" ".join([group["description"] or "", paths.get(group["category"], ""), _parts_text(group["parts"])]))
    return Document(group_id=group["id"], name=name, body=body)


async def _run(sql: str, *args: object) -> list[dict]:
    return await db.engine().run_querystring(QueryString(sql, *args))


MAX_PARAMETERS = 30_000  # per statement: SQLite allows 32,766 and asyncpg 32,767


async def _insert_rows(head: str, row: str, rows: Sequence[tuple], tail: str = "") -> None:
    """INSERT many rows in few statements: ``head`` + one ``row`` template per row + ``tail``."""
    if not rows:
        return
    batch = max(1, MAX_PARAMETERS // len(rows[0]))
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        await _run(head + ", ".join([row] * len(chunk)) + tail, *[value for values in chunk for value in values])


async def _write_documents(documents: Sequence[Document], forget: Sequence[int] = (), *, replace: bool = True) -> None:
    if db.is_postgres():
        if forget:
            await _run("DELETE FROM item_group_search WHERE item_group = ANY({}::integer[])", list(forget))
        await _insert_rows(
            "INSERT INTO item_group_search (item_group, document) VALUES ",
            "({}, setweight(array_to_tsvector({}::text[]), 'A') || array_to_tsvector({}::text[]))",
            [(d.group_id, sorted(set(d.name)), sorted(set(d.body) - set(d.name))) for d in documents],
            " ON CONFLICT (item_group) DO UPDATE SET document = excluded.document",
        )
        return
    stale = ([d.group_id for d in documents] if replace else []) + list(forget)
    for start in range(0, len(stale), MAX_PARAMETERS):
        chunk = stale[start : start + MAX_PARAMETERS]
        await _run(f"DELETE FROM item_group_search WHERE rowid IN ({', '.join(['{}'] * len(chunk))})", *chunk)  # nosec B608: placeholders only; values bound
    await _insert_rows(
        "INSERT INTO item_group_search (rowid, name, body) VALUES ",
        "({}, {}, {})",
        [(d.group_id, " ".join(d.name), " ".join(d.body)) for d in documents],
    )


async def _add_to_vocabulary(found: set[str], *, empty: bool = False) -> None:
    """Add the words not yet in the vocabulary, with their deletion neighbourhoods."""
    candidates = sorted(found)
    known: set[str] = set()
    for start in range(0, 0 if empty else len(candidates), MAX_PARAMETERS):
        chunk = candidates[start : start + MAX_PARAMETERS]
        rows = await _run(f"SELECT word FROM search_word WHERE word IN ({', '.join(['{}'] * len(chunk))})", *chunk)  # nosec B608: placeholders only; values bound
        known.update(row["word"] for row in rows)
    new = [w for w in candidates if w not in known]
    insert, tail = ("INSERT INTO ", " ON CONFLICT DO NOTHING") if db.is_postgres() else ("INSERT OR IGNORE INTO ", "")
    await _insert_rows(insert + "search_word (word) VALUES ", "({})", [(w,) for w in new], tail)
    await _insert_rows(
        insert + "search_word_variant (variant, word) VALUES ",
        "({}, {})",
        [(v, w) for w in new for v in sorted(_deletions(w, _variant_depth(w)))],
        tail,
    )


_GROUP_COLUMNS = (ItemGroup.id, ItemGroup.name, ItemGroup.description, ItemGroup.category, ItemGroup.parts)


async def index_groups(group_ids: Iterable[int]) -> None:
    """Bring these groups' index entries up to date (and forget groups that no longer exist).
    Call it inside the transaction that changed them."""
    wanted = sorted(set(group_ids))
    if not wanted:
        return
    async with db.transaction(write=True):
        paths = await _category_paths()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = await ItemGroup.select(*_GROUP_COLUMNS).where(ItemGroup.id.is_in(chunk)).run()
            found = {row["id"] for row in rows}
            documents = [document(row, paths) for row in rows]
            await _write_documents(documents, forget=[g for g in chunk if g not in found])
            await _add_to_vocabulary({w for d in documents for w in (*d.name, *d.body)})


async def index_group(group_id: int) -> None:
    """Bring one group's index entry up to date; call it in the transaction that changed it."""
    await index_groups([group_id])


async def index_category(category_id: int) -> None:
    """Re-index every group in a category or below it: after a category is renamed or moved."""
    rows = await Category.select(Category.id, Category.parent).run()
    below, frontier = {category_id}, {category_id}
    while frontier:
        frontier = {row["id"] for row in rows if row["parent"] in frontier} - below
        below |= frontier
    groups = await ItemGroup.select(ItemGroup.id).where(ItemGroup.category.is_in(sorted(below))).run()
    await index_groups(row["id"] for row in groups)


async def rebuild_index(*, batch: int = 10_000) -> int:
    """Index every group again from scratch (and drop words no longer used); returns how many.
    For bulk loads and repairs: it holds the write lock for the whole rebuild."""
    async with db.transaction(write=True):
        for table in ("item_group_search", "search_word_variant", "search_word"):
            await db.engine().run_ddl(f"DELETE FROM {table}")  # nosec B608: our own table names
        paths = await _category_paths()
        count, last_id, vocabulary = 0, 0, set()
        while (
            rows := await ItemGroup.select(*_GROUP_COLUMNS)
            .where(ItemGroup.id > last_id)
            .order_by(ItemGroup.id)
            .limit(batch)
            .run()
        ):
            documents = [document(row, paths) for row in rows]
            await _write_documents(documents, replace=False)
            vocabulary.update(w for d in documents for w in (*d.name, *d.body))
            count += len(rows)
            last_id = rows[-1]["id"]
        await _add_to_vocabulary(vocabulary, empty=True)
        return count


# --- queries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """A person's search, made safe. ``keys`` are the index words searched for (after any
    spelling correction); ``corrected`` is what to show as "Showing results for ...", set only
    when a correction found something; ``note`` explains a query that was changed or unusable."""

    text: str
    terms: tuple[str, ...]
    keys: tuple[str, ...]
    corrected: str | None = None
    note: str | None = None

    @property
    def usable(self) -> bool:
        return bool(self.keys)


def _prefix(keys: Sequence[str]) -> bool:
    return len(keys[-1]) >= MIN_PREFIX_LENGTH


def match_expression(keys: Sequence[str], *, prefix: bool | None = None) -> str:
    """The engine's own query for these words (every word; the last one as a prefix too).
    Safe only for words from ``query_terms`` or ``words``: letters and digits."""
    if not keys or not all(_WORD.fullmatch(key) for key in keys):
        raise ValueError(f"not index words: {keys!r}")
    prefix = _prefix(keys) if prefix is None else prefix
    if db.is_postgres():
        return " & ".join(f"'{key}'" for key in keys) + (":*" if prefix else "")
    return " ".join(f'"{key}"' for key in keys) + (" *" if prefix else "")


def group_ids_sql(expression: str) -> QueryString:
    """SELECT the ids of the item groups matching a ``match_expression``."""
    if db.is_postgres():
        return QueryString("SELECT item_group FROM item_group_search WHERE document @@ {}::tsquery", expression)
    return QueryString("SELECT rowid FROM item_group_search WHERE item_group_search MATCH {}", expression)


async def _exists(expressions: Sequence[str]) -> list[bool]:
    """Whether any group matches each of these expressions, in one round trip."""
    # PostgreSQL plans a bare EXISTS as a sequential scan that stops at the first match, which
    # reads the whole table when there is none (the misspelt case); a materialised CTE is
    # planned for all its rows, through the GIN index.
    template = (
        "EXISTS (WITH m AS MATERIALIZED ({{}}) SELECT 1 FROM m) AS e{n}"
        if db.is_postgres()
        else "EXISTS ({{}}) AS e{n}"
    )
    columns = ", ".join(template.format(n=n) for n in range(len(expressions)))
    row = (await _run(f"SELECT {columns}", *[group_ids_sql(e) for e in expressions]))[0]
    return [bool(row[f"e{n}"]) for n in range(len(expressions))]


async def _any_listed(keys: Sequence[str]) -> bool:
    """Whether an item that is not retired matches these words."""
    rows = await _run(
        "SELECT 1 AS found FROM item WHERE item.status != {} AND {} LIMIT 1",
        Status.retired.value,
        item_condition(Search(text="", terms=tuple(keys), keys=tuple(keys))).querystring,
    )
    return bool(rows)


async def _frequencies(candidates: Sequence[str]) -> dict[str, int]:
    """How many groups each word is in (words left in the vocabulary by old edits count 0)."""
    columns = ", ".join(f"(SELECT count(*) FROM ({{}}) AS m{n}) AS n{n}" for n in range(len(candidates)))  # nosec B608: placeholders only; values bound
    row = (
        await _run(f"SELECT {columns}", *[group_ids_sql(match_expression([word], prefix=False)) for word in candidates])
    )[0]
    return {word: row[f"n{n}"] for n, word in enumerate(candidates)}


async def closest_words(keys: Sequence[str]) -> dict[str, str]:
    """For each mistyped word, the indexed word it most likely meant: the fewest edits, then
    the most groups, then the first in alphabetical order. Words with no such neighbour are
    left out."""
    neighbourhoods = {
        key: _deletions(key, allowed_distance(key))
        for key in keys
        if allowed_distance(key) and len(key) <= MAX_VARIANT_WORD_LENGTH + 2
    }
    variants = sorted(set().union(*neighbourhoods.values())) if neighbourhoods else []
    if not variants:
        return {}
    rows = await _run(
        f"SELECT variant, word FROM search_word_variant WHERE variant IN "  # nosec B608: placeholders only; values bound
        f"({', '.join(['{}'] * len(variants))})",
        *variants,
    )
    best: dict[str, list[str]] = {}
    for key, neighbourhood in neighbourhoods.items():
        limit = allowed_distance(key)
        by_distance: dict[int, set[str]] = {}
        for row in rows:
            if row["variant"] in neighbourhood and row["word"] != key:
                if (found := distance(key, row["word"], limit)) <= limit:
                    by_distance.setdefault(found, set()).add(row["word"])
        if by_distance:
            best[key] = sorted(by_distance[min(by_distance)])[:20]
    if not best:
        return {}
    counts = await _frequencies(sorted(set().union(*best.values())))
    chosen = {}
    for key, candidates in best.items():
        word = min(candidates, key=lambda w: (-counts[w], w))
        if counts[word]:
            chosen[key] = word
    return chosen


async def resolve(text: str) -> Search:
    """Turn a query into index words, correcting spelling when nothing matches: each word
    found nowhere in the index is replaced by its closest indexed word, and the correction is
    kept only if the corrected words find something."""
    terms = tuple(query_terms(text))
    keys = tuple(fold(term) for term in terms)
    note = None
    if not keys:
        if (text or "").strip():
            note = _l("Search with words of letters and numbers: symbols are left out.")
        return Search(text=text, terms=terms, keys=keys, note=note)
    if len(_all_terms(text)) > MAX_TERMS:
        note = _l("Only the first %(count)s words were searched for.", count=MAX_TERMS)
    as_typed = Search(text=text, terms=terms, keys=keys, note=note)
    if (await _exists([match_expression(keys)]))[0]:
        return as_typed
    if len(keys) == 1:
        missing = list(keys)
    else:
        known = await _exists(
            [match_expression([key], prefix=_prefix(keys) and n == len(keys) - 1) for n, key in enumerate(keys)]
        )
        missing = [key for key, found in zip(keys, known, strict=True) if not found]
        if not missing:
            return as_typed  # every word is in the catalogue, just never all together
    replacements = await closest_words(missing)
    if len(replacements) < len(missing):
        return as_typed
    fixed = tuple(replacements.get(key, key) for key in keys)
    if not await _any_listed(fixed):
        return as_typed  # never "Showing results for ..." above an empty page
    shown = " ".join(replacements.get(key, term) for term, key in zip(terms, keys, strict=True))
    return Search(text=text, terms=terms, keys=fixed, corrected=shown, note=note)


def item_condition(search: Search):
    """A WHERE condition for ``Item`` selects: the item's group matches the search."""
    if not search.usable:
        return WhereRaw("1 = 0")
    matching = group_ids_sql(match_expression(search.keys))
    if db.is_postgres():
        # An array of the matching ids is computed once and looked up through item's index on
        # item_group: work in proportion to the matches. (With IN, the planner hash-joins
        # against a scan of every item.)
        return WhereRaw('"item"."item_group" = ANY(ARRAY({}))', matching)
    return Item.item_group.is_in(matching)


async def correction(text: str) -> str | None:
    """What to show as "Showing results for ...", or None when the words were searched for as
    typed. (``list_items`` corrects the same way; its return value has no room for this.)"""
    return (await resolve(text)).corrected if (text or "").strip() else None
