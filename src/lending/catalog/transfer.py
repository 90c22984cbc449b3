"""The catalogue in and out of CSV files: a coordinator's spreadsheet of things to add, and an
export of every item in the same format (docs/catalogue-csv.md describes it; keep the two in
step).

An import is all or nothing. Every row is checked first and every problem reported with its
line in the file; only a file without problems is written, in one transaction, so a failure
half-way (a sticker claimed at the desk meanwhile, the disk filling up, Ctrl+C) leaves the
catalogue as it was. An import only adds items: it never changes or removes existing ones.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from piccolo.table import Table

from lending import clock, codes, db, errors, i18n
from lending.audit import services as audit
from lending.audit.tables import AuditEvent
from lending.catalog import search
from lending.catalog import services as catalog
from lending.catalog.rules import CONDITIONS, Status
from lending.catalog.tables import Item, ItemGroup, Sticker
from lending.i18n import lazy_gettext as _l
from lending.i18n import lazy_ngettext

# The columns of an export, in this order. An import takes them in any order, plus ``copies``.
COLUMNS = (
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
    "status",
    "notes",
    "group",
)
IMPORT_ONLY_COLUMNS = ("copies",)
KNOWN_COLUMNS = frozenset(COLUMNS + IMPORT_ONLY_COLUMNS)
REQUIRED_COLUMNS = ("name",)

PART_SEPARATOR = "|"
CATEGORY_SEPARATOR = " > "
DELIMITERS = (",", ";", "\t")
MAX_ROWS = 100_000
MAX_COPIES = 100
# Fields the item form leaves open; a file gets a bound, as a stray quote can pull pages into one cell.
MAX_LENGTHS = {"description": 10_000, "safety_notes": 5_000, "notes": 5_000, "group": 100}
MAX_CATEGORY_NAME = 100
# Statuses an import keeps. Loans and reservations are not part of a catalogue file, so items
# exported on loan or reserved come in available.
IMPORTED_STATUSES = (Status.available.value, Status.maintenance.value, Status.retired.value, Status.missing.value)
LOAN_STATUSES = (Status.on_loan.value, Status.reserved.value)

CHUNK_ROWS = 100  # rows written (and progress reported) at a time
MAX_INSERT_ROWS = 200  # rows in one INSERT statement, well under both engines' parameter limits
_LOOKUP_BATCH = 500
# Spreadsheets run a cell starting with one of these as a formula; an export guards it with a
# quote (OWASP's advice for CSV files) and an import takes the guard off again.
_FORMULA_STARTS = ("=", "+", "-", "@")
_DECIMAL_COMMA = re.compile(r"^£?\s*\d+,\d{1,2}$")


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowProblem:
    """Something wrong (or, as a warning, worth knowing) about one line of the file; line 1
    is the header. ``column`` is empty for a problem with the line as a whole."""

    line: int
    reason: str
    column: str = ""

    def __str__(self) -> str:
        reason = f"{self.column}: {self.reason}" if self.column else str(self.reason)
        return i18n.gettext("line %(line)d: %(reason)s", line=self.line, reason=reason)


@dataclass(frozen=True)
class ImportReport:
    """What an import found and did. ``rows`` counts the file's item rows (blank lines are
    skipped), ``items`` the items they make (a row can ask for several copies)."""

    rows: int = 0
    items: int = 0
    groups: int = 0
    problems: tuple[RowProblem, ...] = ()
    warnings: tuple[RowProblem, ...] = ()
    new_categories: tuple[str, ...] = ()  # paths created (or, before writing, to be created)
    claimed_stickers: int = 0
    kept_codes: int = 0
    written: bool = False
    codes: tuple[str, ...] = field(default=(), repr=False)  # the new items' codes, in file order

    @property
    def ok(self) -> bool:
        return not self.problems


class ImportRejected(errors.InvalidInput):
    """The file has problems; nothing was written. ``report`` lists every one."""

    code = "import_has_errors"

    def __init__(self, report: ImportReport) -> None:
        count = len(report.problems)
        super().__init__(
            lazy_ngettext(
                "The file has %(num)d problem; nothing was imported.",
                "The file has %(num)d problems; nothing was imported.",
                count,
            ),
            reasons=[str(problem) for problem in report.problems[:100]],
        )
        self.report = report


# --- reading a file ------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """A file's bytes as text: UTF-8, with or without the byte order mark Excel writes. Other
    encodings (Excel's older "CSV (Comma delimited)" writes Windows-1252) are refused rather
    than guessed, so a '£' or an accent never turns into something else."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise errors.InvalidInput(
            _l('Line %(line)d is not UTF-8 text. Save the file as "CSV UTF-8" and try again.', line=line),
            code="not_utf8",
        ) from exc


def _column_name(text: str) -> str:
    return "_".join(text.strip().lower().replace("-", " ").split())


def _delimiter(header_line: str) -> str:
    """Comma, semicolon (Excel where the decimal mark is a comma) or tab: whichever splits
    the header into the most known column names."""

    def known(delimiter: str) -> int:
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        return sum(_column_name(cell) in KNOWN_COLUMNS for cell in cells)

    return max(DELIMITERS, key=known)  # ties go to the first: comma


def _cell(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if text[:1] == "'" and text[1:2] in _FORMULA_STARTS:
        return text[1:]
    return text


def _shown(value: str, limit: int = 40) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _lower(key: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return None if key is None else tuple(part.lower() for part in key)


def _category_key(text: str) -> tuple[str, ...]:
    """'Tools > Drills', 'tools›drills' and 'Tools  >  Drills' name the same category."""
    return tuple(_collapse(part) for part in text.replace("›", ">").split(">"))


# --- checking ------------------------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    group_key: str
    group_fields: dict
    item_fields: dict
    category: tuple[str, ...] | None
    site: str
    status: str
    copies: int
    sound: bool  # no problem with its own values (the database's are checked later)
    code: str = ""
    code_kind: str = ""  # "sticker" (claim a pre-printed sticker) or "keep" (register the code)


@dataclass
class _Plan:
    rows: list[_Row] = field(default_factory=list)
    # Lower-cased category paths to their ids; the ones to create map to None until written.
    category_ids: dict[tuple[str, ...], int | None] = field(default_factory=dict)
    new_categories: dict[tuple[str, ...], str] = field(default_factory=dict)  # lower path -> name to create
    shown: dict[tuple[str, ...], str] = field(default_factory=dict)  # lower path -> 'Tools > Drills'
    category_of: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)  # file key -> lower path
    site_ids: dict[str, int] = field(default_factory=dict)


class _Problems:
    def __init__(self) -> None:
        self.found: list[RowProblem] = []
        self.warnings: list[RowProblem] = []

    def add(self, line: int, reason: str, column: str = "") -> None:
        self.found.append(RowProblem(line=line, reason=reason, column=column))

    def warn(self, line: int, reason: str, column: str = "") -> None:
        self.warnings.append(RowProblem(line=line, reason=reason, column=column))


_FIELD_MESSAGES = {
    "name": lambda row: (
        _l("at most 200 characters (this has %(count)d).", count=len(row["name"]))
        if row.get("name")
        else _l("every item needs a name.")
    ),
    "parts": lambda row: _l('list at most 50 parts, separated by "|", each under 200 characters.'),
    "loan_days": lambda row: _l(
        'a loan period is between 1 and 365 days, not "%(value)s".', value=_shown(row["loan_days"])
    ),
    "condition": lambda row: _l(
        '"%(value)s" is not a condition; use one of: %(choices)s.',
        value=_shown(row["condition"]),
        choices=", ".join(CONDITIONS),
    ),
    "replacement_value": lambda row: _l(
        '"%(value)s" is not an amount in pounds, like 45 or 12.50.', value=_shown(row["replacement_value"])
    ),
    "donor": lambda row: _l("the donor's name can be at most 200 characters."),
}


def _check_values(line: int, values: dict[str, str], problems: _Problems) -> _Row:
    """One row's own values (nothing that needs the database)."""
    before = len(problems.found)
    for column, limit in MAX_LENGTHS.items():
        if len(values.get(column, "")) > limit:
            problems.add(
                line,
                _l(
                    "at most %(limit)s characters (this has %(count)s).",
                    limit=format(limit, ","),
                    count=format(len(values[column]), ","),
                ),
                column,
            )
    loan_days: int | None = None
    if text := values.get("loan_days", ""):
        if text.isascii() and text.isdigit():
            loan_days = int(text)
        else:
            problems.add(line, _l('"%(value)s" is not a whole number of days.', value=_shown(text)), "loan_days")
    copies = 1
    if text := values.get("copies", ""):
        if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_COPIES:
            copies = int(text)
        else:
            problems.add(
                line,
                _l('"%(value)s" is not a number of copies from 1 to %(max)d.', value=_shown(text), max=MAX_COPIES),
                "copies",
            )
    value = values.get("replacement_value", "")
    if _DECIMAL_COMMA.match(value):
        problems.add(
            line,
            _l('write pounds and pence with a point, like 12.50, not "%(value)s".', value=value),
            "replacement_value",
        )
        value = ""
    status = values.get("status", "").lower().replace(" ", "_") or Status.available.value
    if status in LOAN_STATUSES:
        problems.warn(
            line, _l('"%(value)s" in the file: imported as available (loans are not imported).', value=status), "status"
        )
        status = Status.available.value
    elif status not in IMPORTED_STATUSES:
        problems.add(
            line,
            _l(
                '"%(value)s" is not a status; use one of: %(choices)s.',
                value=_shown(values["status"]),
                choices=", ".join(IMPORTED_STATUSES),
            ),
            "status",
        )
    parts = [piece for chunk in values.get("parts", "").split(PART_SEPARATOR) for piece in chunk.splitlines()]
    details = catalog.ItemDetails(
        name=values.get("name", ""),
        description=values.get("description", ""),
        safety_notes=values.get("safety_notes", ""),
        parts=parts,
        loan_days=loan_days,
        condition=values.get("condition", "").lower() or "good",
        replacement_value=value,
        donor=values.get("donor", ""),
        notes=values.get("notes", ""),
    )
    # The item form's own checks, so a file and the form accept the same things.
    group_fields, item_fields, found = catalog._checked_details(details)
    for column in found:
        problems.add(line, _FIELD_MESSAGES[column](values), column)
    category = _category_key(values["category"]) if values.get("category") else None
    if category is not None and any(not part for part in category):
        problems.add(
            line,
            _l('"%(value)s" has an empty part; write a path like Tools > Drills.', value=_shown(values["category"])),
            "category",
        )
        category = None
    group_key = values.get("group", "")
    return _Row(
        line=line,
        group_key=f"group:{group_key}" if group_key else f"line:{line}",
        group_fields=group_fields,
        item_fields=item_fields,
        category=category,
        site=_collapse(values.get("site", "")),
        status=status,
        copies=copies,
        sound=len(problems.found) == before,
    )


async def _check(text: str, *, create_categories: bool, keep_codes: bool) -> tuple[ImportReport, _Plan]:
    problems = _Problems()
    plan = _Plan()
    text = text.removeprefix("\ufeff")
    if not text.strip():
        problems.add(1, _l("The file is empty: its first line must name the columns, like name,category,condition."))
        return _report(problems, plan), plan
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text[:65536].splitlines()[0]), strict=True)
    try:
        header = [_column_name(cell) for cell in next(reader)]
    except csv.Error as exc:
        problems.add(1, _l("The header line cannot be read: %(error)s.", error=str(exc)))
        return _report(problems, plan), plan
    columns: dict[str, int] = {}
    blank_columns: list[int] = []
    for index, name in enumerate(header):
        if not name:
            blank_columns.append(index)
        elif name in columns:
            problems.add(1, _l('The column "%(name)s" appears twice.', name=name))
        elif name not in KNOWN_COLUMNS:
            problems.add(
                1,
                _l(
                    '"%(name)s" is not a column. The columns are: %(columns)s.',
                    name=name,
                    columns=", ".join((*COLUMNS, *IMPORT_ONLY_COLUMNS)),
                ),
            )
        else:
            columns[name] = index
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            problems.add(1, _l('The file has no "%(name)s" column; the first line must name the columns.', name=name))
    if problems.found:
        return _report(problems, plan), plan

    rows: list[_Row] = []
    groups: dict[str, _Row] = {}
    codes_at: dict[str, int] = {}
    rows_read = 0
    last_line = reader.line_num
    while True:
        start = last_line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            last_line = reader.line_num
            problems.add(
                start, _l("This row cannot be read as CSV (%(error)s); check for an unclosed quote.", error=str(exc))
            )
            rows_read += 1
            continue
        last_line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # blank lines (and Excel's rows of empty cells) are not items
        rows_read += 1
        if rows_read > MAX_ROWS:
            problems.add(start, _l("A file can hold at most %(max)d rows; split it into several files.", max=MAX_ROWS))
            break
        if len(record) != len(header):
            if last_line > start:
                problems.add(
                    start,
                    _l(
                        "This row has %(count)d values but the header has %(columns)d columns. A quoted "
                        "value spans lines %(first)d to %(last)d: check its quotes.",
                        count=len(record),
                        columns=len(header),
                        first=start,
                        last=last_line,
                    ),
                )
            else:
                problems.add(
                    start,
                    _l(
                        "This row has %(count)d values but the header has %(columns)d columns.",
                        count=len(record),
                        columns=len(header),
                    ),
                )
            continue
        if stray := [index for index in blank_columns if record[index].strip()]:
            problems.add(start, _l("Column %(position)d has a value but no name in the header.", position=stray[0] + 1))
        values = {name: _cell(record[index]) for name, index in columns.items()}
        row = _check_values(start, values, problems)
        if raw := values.get("code", ""):
            code = codes.normalise(raw)
            if len(code) != catalog.CODE_LENGTH:
                problems.add(
                    start,
                    _l('"%(value)s" is not an item code (8 letters and digits, like M7K4-2QXD).', value=_shown(raw)),
                    "code",
                )
            elif code in codes_at:
                problems.add(
                    start,
                    _l(
                        "%(code)s is also on line %(line)d; each item needs its own code.",
                        code=codes.display(code),
                        line=codes_at[code],
                    ),
                    "code",
                )
            else:
                codes_at[code] = start
                row.code = code
            if row.copies > 1:
                problems.add(start, _l("a row with a code makes one item: leave copies empty, or the code."), "code")
                row.sound = False
        rows.append(row)
        if not row.sound:
            continue
        first = groups.setdefault(row.group_key, row)
        if first is not row:
            for column in ("name", "description", "safety_notes", "parts", "loan_days"):
                if first.group_fields[column] != row.group_fields[column]:
                    problems.add(
                        start,
                        _l(
                            "this %(column)s differs from line %(line)d, which has the same group: "
                            "copies share their name, description, category, safety_notes, parts "
                            "and loan_days.",
                            column=column,
                            line=first.line,
                        ),
                        "group",
                    )
            if _lower(first.category) != _lower(row.category):
                problems.add(
                    start,
                    _l(
                        "this category differs from line %(line)d, which has the same group: "
                        "copies share their name, description, category, safety_notes, parts "
                        "and loan_days.",
                        line=first.line,
                    ),
                    "group",
                )

    await _check_codes(rows, codes_at, problems, keep_codes=keep_codes)
    await _check_categories(rows, plan, problems, create_categories=create_categories)
    await _check_sites(rows, plan, problems)
    plan.rows = rows
    return _report(problems, plan, rows_read=rows_read), plan


async def _check_codes(rows: list[_Row], codes_at: dict[str, int], problems: _Problems, *, keep_codes: bool) -> None:
    """A code in the file must be an unclaimed sticker printed here or, with ``keep_codes``,
    a code nothing here uses yet."""
    wanted = list(codes_at)
    items: dict[str, str] = {}
    stickers: dict[str, int | None] = {}
    for start in range(0, len(wanted), _LOOKUP_BATCH):
        batch = wanted[start : start + _LOOKUP_BATCH]
        for found in (
            await Item.select(Item.code, Item.item_group.name.as_alias("name")).where(Item.code.is_in(batch)).run()
        ):
            items[found["code"]] = found["name"]
        for found in await Sticker.select(Sticker.code, Sticker.item).where(Sticker.code.is_in(batch)).run():
            stickers[found["code"]] = found["item"]
    for code, line in codes_at.items():
        if code in items:
            problems.add(
                line,
                _l('%(code)s is already the code of "%(name)s".', code=codes.display(code), name=_shown(items[code])),
                "code",
            )
        elif stickers.get(code) is not None:
            problems.add(line, _l("the sticker %(code)s is already on another item.", code=codes.display(code)), "code")
        elif code not in stickers and not keep_codes:
            problems.add(
                line,
                _l(
                    "no sticker with the code %(code)s was printed here. Leave the code empty for a new "
                    "one, or import with the keep-codes option to keep codes from another catalogue.",
                    code=codes.display(code),
                ),
                "code",
            )
    for row in rows:
        if row.code:
            row.code_kind = "sticker" if row.code in stickers else "keep"


async def _check_categories(rows: list[_Row], plan: _Plan, problems: _Problems, *, create_categories: bool) -> None:
    """A category is a full path from the top ('Tools > Drills') or a name that only one
    category has, as ``find_category`` reads them."""
    paths: dict[int, tuple[str, ...]] = {}
    for node in await catalog.category_tree():  # parents come before children
        path = (*paths.get(node.parent_id, ()), node.name)
        paths[node.id] = path
        plan.category_ids[_lower(path)] = node.id
        plan.shown[_lower(path)] = CATEGORY_SEPARATOR.join(path)
    wanted: dict[tuple[str, ...], list[_Row]] = {}
    for row in rows:
        if row.category is not None:
            wanted.setdefault(row.category, []).append(row)
    # Full paths first, so a bare name can match a category the file itself creates.
    for key in sorted(wanted, key=lambda k: -len(k)):
        lower = _lower(key)
        if lower in plan.category_ids:
            plan.category_of[key] = lower
            continue
        if len(key) == 1:
            named = [path for path in plan.category_ids if path[-1] == lower[0]]
            if len(named) == 1:
                plan.category_of[key] = named[0]
                continue
            if len(named) > 1:
                for row in wanted[key]:
                    problems.add(
                        row.line,
                        _l(
                            'more than one category is called "%(name)s"; write its full path, like %(path)s.',
                            name=_shown(key[0]),
                            path=plan.shown[named[0]],
                        ),
                        "category",
                    )
                continue
        if not create_categories:
            for row in wanted[key]:
                problems.add(
                    row.line,
                    _l(
                        'there is no category "%(name)s". Add it first, or import with the create-categories option.',
                        name=CATEGORY_SEPARATOR.join(key),
                    ),
                    "category",
                )
            continue
        if too_long := [part for part in key if len(part) > MAX_CATEGORY_NAME]:
            for row in wanted[key]:
                problems.add(
                    row.line,
                    _l(
                        'a category name can be at most %(max)d characters: "%(name)s".',
                        max=MAX_CATEGORY_NAME,
                        name=_shown(too_long[0]),
                    ),
                    "category",
                )
            continue
        for depth in range(1, len(key) + 1):
            prefix = lower[:depth]
            if prefix not in plan.category_ids:
                plan.category_ids[prefix] = None
                plan.new_categories[prefix] = key[depth - 1]
                parent = plan.shown.get(prefix[:-1])
                plan.shown[prefix] = f"{parent}{CATEGORY_SEPARATOR}{key[depth - 1]}" if parent else key[depth - 1]
        plan.category_of[key] = lower
    # In the order the file first names them, parents before children.
    first_line = {
        path: min(rows[0].line for key, rows in wanted.items() if _lower(key)[: len(path)] == path)
        for path in plan.new_categories
    }
    plan.new_categories = dict(
        sorted(plan.new_categories.items(), key=lambda item: (first_line[item[0]], len(item[0])))
    )


async def _check_sites(rows: list[_Row], plan: _Plan, problems: _Problems) -> None:
    plan.site_ids = {_collapse(site.name).lower(): site.id for site in await catalog.list_sites()}
    for row in rows:
        if row.site and row.site.lower() not in plan.site_ids:
            problems.add(
                row.line,
                _l(
                    'there is no site called "%(name)s"; add it under Manage, Categories and sites first.',
                    name=_shown(row.site),
                ),
                "site",
            )


def _report(problems: _Problems, plan: _Plan, *, rows_read: int = 0) -> ImportReport:
    ordered = sorted(problems.found, key=lambda problem: problem.line)  # stable: a line's problems keep their order
    return ImportReport(
        rows=rows_read,
        items=sum(row.copies for row in plan.rows),
        groups=len({row.group_key for row in plan.rows}),
        problems=tuple(ordered),
        warnings=tuple(sorted(problems.warnings, key=lambda problem: problem.line)),
        new_categories=tuple(plan.shown[path] for path in plan.new_categories),
        claimed_stickers=sum(row.code_kind == "sticker" for row in plan.rows),
        kept_codes=sum(row.code_kind == "keep" for row in plan.rows),
    )


async def check_import(text: str, *, create_categories: bool = False, keep_codes: bool = False) -> ImportReport:
    """Every problem with a file, each with its line (the header is line 1), writing nothing."""
    report, _ = await _check(text, create_categories=create_categories, keep_codes=keep_codes)
    return report


# --- writing -----------------------------------------------------------------------------------


async def import_items(
    text: str,
    *,
    dry_run: bool,
    create_categories: bool = False,
    keep_codes: bool = False,
    progress: Callable[[int, int], None] | None = None,
    actor_id: int | None = None,
) -> ImportReport:
    """Add every row of a CSV file to the catalogue, or nothing: a file with any problem
    raises ``ImportRejected`` (with the report of every problem) and writes nothing; a
    ``dry_run`` stops after the check. The check runs again inside the one write
    transaction, so what was checked is what is written; a change that slips in between
    (PostgreSQL) ends in a unique-constraint error, rolls everything back and is reported as
    a conflict. ``progress(done, total)`` is called in rows as they are written."""
    if dry_run:
        report = await check_import(text, create_categories=create_categories, keep_codes=keep_codes)
        if report.problems:
            raise ImportRejected(report)
        return report
    raced = errors.Conflict(
        _l(
            "Something in the file was added here while it was being imported (a code or a "
            "category); nothing was imported. Run the import again."
        ),
        code="import_conflict",
    )
    with db.unique_violation_as(lambda: raced):
        async with db.transaction(write=True):
            report, plan = await _check(text, create_categories=create_categories, keep_codes=keep_codes)
            if report.problems:
                raise ImportRejected(report)
            created = await _write(plan, report, progress=progress, actor_id=actor_id)
    return dataclasses.replace(report, written=True, codes=tuple(created))


def _chunks(rows: list, size: int) -> Iterable[list]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def _write(
    plan: _Plan, report: ImportReport, *, progress: Callable[[int, int], None] | None, actor_id: int | None
) -> list[str]:
    now = clock.now()
    for path, name in plan.new_categories.items():
        parent_id = plan.category_ids[path[:-1]] if len(path) > 1 else None
        node = await catalog.create_category(name=name, parent_id=parent_id, actor_id=actor_id)
        plan.category_ids[path] = node.id
    taken = {row["code"] for row in await Item.select(Item.code).run()}
    taken |= {row["code"] for row in await Sticker.select(Sticker.code).run()}
    taken |= {row.code for row in plan.rows if row.code}
    group_ids: dict[str, int] = {}
    created: list[str] = []
    total, done = len(plan.rows), 0
    for chunk in _chunks(plan.rows, CHUNK_ROWS):
        new_groups: dict[str, _Row] = {}
        for row in chunk:
            if row.group_key not in group_ids:
                new_groups.setdefault(row.group_key, row)
        for batch in _chunks(list(new_groups.items()), MAX_INSERT_ROWS):
            inserted = await _insert(
                ItemGroup,
                [
                    {**row.group_fields, "category": _category_id(plan, row), "created_at": now, "updated_at": now}
                    for _, row in batch
                ],
                returning="id",
            )
            # Ids come from one sequence, in the order of the VALUES list, whatever order
            # RETURNING gives them back in.
            for (key, _), new_id in zip(batch, sorted(found["id"] for found in inserted), strict=True):
                group_ids[key] = new_id
        await search.index_groups(group_ids[key] for key in new_groups)
        items: list[dict] = []
        claims: list[str] = []
        for row in chunk:
            for _ in range(row.copies):
                if row.code:
                    code = row.code
                    if row.code_kind == "sticker":
                        claims.append(code)
                else:
                    code = _new_code(taken)
                items.append(
                    {
                        **row.item_fields,
                        "site": plan.site_ids.get(row.site.lower()),
                        "item_group": group_ids[row.group_key],
                        "code": code,
                        "status": row.status,
                        "status_reason": "",
                        "labelled_at": now if row.code else None,  # its label is already stuck on the thing
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                created.append(code)
        ids: dict[str, int] = {}
        for batch in _chunks(items, MAX_INSERT_ROWS):
            for found in await _insert(Item, batch, returning="id, code"):
                ids[found["code"]] = found["id"]
        for code in claims:
            claimed = (
                await Sticker.update({Sticker.item: ids[code]})
                .where(Sticker.code == code, Sticker.item.is_null())
                .returning(Sticker.id)
                .run()
            )
            if not claimed:  # claimed at the desk since the check
                raise catalog._sticker_used(code)
        for batch in _chunks(items, MAX_INSERT_ROWS):
            await _insert(
                AuditEvent,
                [
                    {
                        "at": now,
                        "actor": actor_id,
                        "action": "item.create",
                        "subject": f"item:{item['code']}",
                        "detail": "import",
                    }
                    for item in batch
                ],
            )
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    await audit.record(
        action="item.import", actor_id=actor_id, detail=f"rows={report.rows} items={len(created)}", at=now
    )
    return created


async def _insert(table: type[Table], rows: list[dict], *, returning: str = "") -> list[dict]:
    """Many rows in one INSERT, without a Piccolo object per row (which takes most of the
    time of a large import). Every column is given: the tables' defaults live in Python."""
    columns = list(rows[0])
    names = ", ".join(f'"{column}"' for column in columns)
    placeholders = "(" + ", ".join("{}" for _ in columns) + ")"
    sql = f'INSERT INTO "{table._meta.tablename}" ({names}) VALUES {", ".join(placeholders for _ in rows)}'  # nosec B608: our own table and column names; values bound
    if returning:
        sql += f" RETURNING {returning}"
    return await table.raw(sql, *[row[column] for row in rows for column in columns]).run()


def _category_id(plan: _Plan, row: _Row) -> int | None:
    return plan.category_ids[plan.category_of[row.category]] if row.category is not None else None


def _new_code(taken: set[str]) -> str:
    while True:
        code = codes.new_code(catalog.CODE_LENGTH)
        if code not in taken:
            taken.add(code)
            return code


# --- export ------------------------------------------------------------------------------------


def _guarded(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


async def export_items() -> str:
    """Every item (retired ones too), one row per item, copies of one thing sharing a
    ``group`` number, in the import's format: importing it into an empty catalogue and
    exporting again gives the same file (with ``keep_codes``, the same codes too)."""
    paths: dict[int, str] = {}
    for node in await catalog.category_tree():  # parents come before children
        parent = paths.get(node.parent_id) if node.parent_id is not None else None
        paths[node.id] = f"{parent}{CATEGORY_SEPARATOR}{node.name}" if parent else node.name
    rows = (
        await Item.select(
            Item.code,
            Item.status,
            Item.condition,
            Item.replacement_value_pence,
            Item.donor,
            Item.site.name.as_alias("site"),
            Item.notes,
            Item.item_group,
            Item.item_group.name.as_alias("name"),
            Item.item_group.description.as_alias("description"),
            Item.item_group.category.as_alias("category"),
            Item.item_group.safety_notes.as_alias("safety_notes"),
            Item.item_group.parts.as_alias("parts"),
            Item.item_group.loan_days.as_alias("loan_days"),
        )
        .order_by(Item.item_group)
        .order_by(Item.id)
        .run()
    )
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    group_numbers: dict[int, int] = {}
    for row in rows:
        parts = row["parts"]
        parts = json.loads(parts) if isinstance(parts, str) else list(parts or [])
        pence = row["replacement_value_pence"]
        pounds = "" if pence is None else f"{pence // 100}.{pence % 100:02d}"
        number = group_numbers.setdefault(row["item_group"], len(group_numbers) + 1)
        writer.writerow(
            [
                _guarded(str(cell))
                for cell in (
                    row["code"],
                    row["name"],
                    row["description"],
                    paths.get(row["category"], ""),
                    row["safety_notes"],
                    f" {PART_SEPARATOR} ".join(parts),
                    row["condition"],
                    pounds,
                    "" if row["loan_days"] is None else row["loan_days"],
                    row["donor"],
                    row["site"] or "",
                    row["status"],
                    row["notes"],
                    number,
                )
            ]
        )
    return out.getvalue()


def count_rows(text: str) -> int:
    """The item rows in a CSV text (its records, less the header)."""
    count = 0
    try:
        for record in csv.reader(io.StringIO(text, newline="")):
            count += bool(record)
    except csv.Error:
        pass  # the import says what is wrong; this is only a count
    return max(count - 1, 0)
