"""The Welsh catalogue keeps up with the code: every message is translated, translations keep
their placeholders, and Welsh really is served.

Messages are extracted here exactly as ``make messages`` extracts them: the mapping file
(``-F``) and keywords (``-k``) are read from the Makefile's ``pybabel extract`` line, and the
sources are walked from the repository root with Babel's ``extract_from_dir``.

Decisions:

* A message counts as translated only when every msgstr (all six Welsh plural forms for a
  plural message) is non-empty and the entry is not marked fuzzy.
* Stale entries fail the run. An active entry whose msgid no longer appears in the code is
  still compiled and shown to translators as current work; an obsolete (``#~``) entry, which
  ``pybabel update`` keeps when a message is removed or reworded, offers a translator an old
  wording to copy. Both mislead, so the catalogue must match the code exactly: delete them
  (``pybabel update --ignore-obsolete`` drops the ``#~`` ones).
* A plural form may leave out ``%(num)d`` (Welsh sometimes spells out "one"); no other
  placeholder may be dropped, added or change type, and a translation may not add a bare
  ``%``: templates use newstyle gettext, which always %-formats the text.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.pofile import read_po

from lending import i18n

ROOT = Path(__file__).resolve().parents[2]
LANGUAGE = "cy"
PLURAL_FORMS = "nplurals=6; plural=(n==0) ? 0 : (n==1) ? 1 : (n==2) ? 2 : (n==3) ? 3 : (n==6) ? 4 : 5;"
# Babel's (CLDR's) Welsh plural categories, in the order of the msgstr[] indexes above.
PLURAL_CATEGORIES = ("zero", "one", "two", "few", "many", "other")
HOW_TO_FIX = (
    "Run `make messages`, then translate every empty or fuzzy entry in "
    "src/lending/locale/cy/LC_MESSAGES/messages.po (remove the fuzzy flag once checked)."
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)[#0 +\-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa]")


# --- helpers ---------------------------------------------------------------------------------


@cache
def extract_command() -> tuple[Path, dict, Path]:
    """The mapping file, keywords and template path of the Makefile's ``pybabel extract``."""
    lines = [line for line in (ROOT / "Makefile").read_text().splitlines() if "pybabel extract" in line]
    assert lines, "The Makefile has no `pybabel extract` command for `make messages`."
    words = []
    for word in shlex.split(lines[0].split("pybabel extract", 1)[1]):
        words.extend(word.split("=", 1) if word.startswith("--") else [word])
    mapping, output, extra, defaults = None, None, [], True
    for word, following in zip(words, [*words[1:], ""]):
        if word in ("-F", "--mapping-file", "--mapping"):
            mapping = following
        elif word in ("-o", "--output-file", "--output"):
            output = following
        elif word in ("-k", "--keyword", "--keywords"):
            extra.append(following)
        elif word == "--no-default-keywords":
            defaults = False
    assert mapping and output, f"Could not read -F and -o from the Makefile line: {lines[0].strip()}"
    keywords = {**(DEFAULT_KEYWORDS if defaults else {}), **parse_keywords(extra)}
    return ROOT / mapping, keywords, ROOT / output


@cache
def source_messages() -> Catalog:
    """Every message the code and templates mark, with where each is used."""
    mapping_file, keywords, _ = extract_command()
    with mapping_file.open() as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(mapping_file))
    catalog = Catalog(locale=LANGUAGE)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def read_catalogue(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=LANGUAGE)


@cache
def welsh() -> Catalog:
    return read_catalogue(i18n.catalogue_path(LANGUAGE))


def describe(message: Message) -> str:
    text = " / ".join(message.id) if message.pluralizable else message.id
    if message.context:
        text = f"[{message.context}] {text}"
    where = ", ".join(f"{name}:{line}" for name, line in message.locations[:3])
    return f"{text!r}" + (f"  ({where})" if where else "")


def describe_key(message: Message) -> str:
    """A message's identity (context, msgid, plural msgid) without where it is used."""
    return describe(Message(message.id, context=message.context))


def missing_translations(source: Catalog, translations: Catalog) -> list[str]:
    """The source messages without a complete, checked translation, described for a person."""
    missing = []
    for message in source:
        if not message.id:
            continue
        entry = translations.get(message.id, message.context)
        if entry is None:
            reason = "not in the catalogue"
        elif entry.fuzzy:
            reason = "marked fuzzy"
        elif message.pluralizable != entry.pluralizable:
            reason = "singular in one place and plural in the other; run `make messages`"
        elif message.pluralizable and len(entry.string) != translations.num_plurals:
            reason = f"needs {translations.num_plurals} plural forms"
        elif not all(entry.string if entry.pluralizable else [entry.string]):
            reason = "not translated"
        else:
            continue
        missing.append(f"{describe(message)}: {reason}")
    return missing


def placeholders(text: str) -> set[str]:
    return {match.group(0) for match in _PLACEHOLDER.finditer(text)}


def stray_percent(text: str) -> bool:
    """A % that is neither a named placeholder nor an escaped %%."""
    return "%" in _PLACEHOLDER.sub("", text).replace("%%", "")


def placeholder_problems(catalog: Catalog) -> list[str]:
    problems = []
    for entry in catalog:
        if not entry.id or entry.fuzzy:
            continue
        if entry.pluralizable:
            expected = placeholders(entry.id[1])
            pairs = [
                (f"form {index}", form, (expected, expected - {"%(num)d"}))
                for index, form in enumerate(entry.string)
                if form
            ]
            source_text = entry.id[1]
        else:
            pairs = [("", entry.string, (placeholders(entry.id),))] if entry.string else []
            source_text = entry.id
        for label, text, allowed in pairs:
            where = describe(entry) + (f" {label}" if label else "")
            found = placeholders(text)
            if found not in allowed:
                problems.append(f"{where}: has {sorted(found)}, expected {sorted(allowed[0])}")
            if stray_percent(text) and not stray_percent(source_text):
                problems.append(f"{where}: a bare % (write %% for a percent sign)")
    return problems


# --- the catalogue ----------------------------------------------------------------------------


def test_every_message_has_a_welsh_translation():
    missing = missing_translations(source_messages(), welsh())
    assert not missing, (
        f"{len(missing)} message(s) have no Welsh translation:\n  " + "\n  ".join(missing) + f"\n{HOW_TO_FIX}"
    )


def test_translations_keep_their_placeholders():
    problems = placeholder_problems(welsh())
    assert not problems, (
        "Translations must keep every %(name)s placeholder of the English, unchanged:\n  " + "\n  ".join(problems)
    )


def test_the_catalogue_holds_no_stale_entries():
    source = source_messages()
    catalogue = welsh()
    stale = [describe(entry) for entry in catalogue if entry.id and source.get(entry.id, entry.context) is None]
    obsolete = [describe(entry) for entry in catalogue.obsolete.values()]
    assert not stale and not obsolete, (
        "The Welsh catalogue holds messages the code no longer uses, which mislead translators.\n"
        + ("Not in the code any more:\n  " + "\n  ".join(stale) + "\n" if stale else "")
        + ("Obsolete (#~) entries:\n  " + "\n  ".join(obsolete) + "\n" if obsolete else "")
        + "Run `make messages` and delete them (`pybabel update --ignore-obsolete` drops the #~ ones)."
    )


def test_the_template_matches_the_code():
    *_, template_path = extract_command()
    template = read_catalogue(template_path)
    extracted = {describe_key(m) for m in source_messages() if m.id}
    in_template = {describe_key(m) for m in template if m.id}
    new, gone = sorted(extracted - in_template), sorted(in_template - extracted)
    assert not new and not gone, (
        f"{template_path.relative_to(ROOT)} is out of date (new: {new}, gone: {gone}). Run `make messages`."
    )


def test_the_header_declares_welsh_and_its_six_plural_forms():
    headers = dict(welsh().mime_headers)
    assert headers.get("Language") == LANGUAGE
    assert headers.get("Plural-Forms") == PLURAL_FORMS
    assert not welsh().fuzzy, "The catalogue header is marked fuzzy."


def test_no_compiled_catalogue_is_kept():
    """The app compiles the .po in memory; a .mo beside it would only go stale."""
    assert not list(i18n.LOCALE_DIR.rglob("*.mo"))


def test_extraction_reads_the_code_and_templates_but_not_the_tests():
    files = {name for message in source_messages() for name, _ in message.locations}
    assert any(name.startswith("src/lending/") and name.endswith(".py") for name in files)
    assert any(name.startswith("templates/") and name.endswith(".html") for name in files)
    assert not [name for name in files if not name.startswith(("src/lending/", "templates/"))]
    # Keyword arguments of newstyle gettext in templates, and the lazy keyword in Python.
    assert source_messages().get("Signed in as %(name)s") is not None
    assert source_messages().get("Page not found") is not None


# --- Welsh at run time ---------------------------------------------------------------------------


def test_lending_i18n_speaks_welsh():
    token = i18n.set_language(LANGUAGE)
    try:
        assert i18n.gettext("Sign in") == "Mewngofnodi"
        assert i18n.gettext("Signed in as %(name)s", name="Siân").endswith("Siân")
        assert str(i18n.lazy_gettext("Sign out")) == "Allgofnodi"
    finally:
        i18n.reset_language(token)
    assert i18n.gettext("Sign in") == "Sign in"


def test_welsh_plural_forms_follow_babels_rules():
    """The compiled header picks msgstr[i] for CLDR category i, so every form is reachable."""
    plural = i18n.translations(LANGUAGE).plural
    rule = Locale.parse(LANGUAGE).plural_form
    for n in range(250):
        assert PLURAL_CATEGORIES[plural(n)] == rule(n), n


def test_templates_render_welsh():
    from lending.web.templating import build_environment

    page = build_environment().from_string(
        '{{ _("Sign in") }}|{{ ngettext("%(num)d link worker", "%(num)d link workers", 2) }}'
    )
    token = i18n.set_language(LANGUAGE)
    try:
        signed_in, workers = page.render().split("|")
    finally:
        i18n.reset_language(token)
    assert signed_in == "Mewngofnodi"
    assert workers.startswith("2 ") and "worker" not in workers


# --- the checks can fail ---------------------------------------------------------------------------


def test_a_message_missing_from_the_catalogue_is_reported():
    source = Catalog(locale=LANGUAGE)
    source.add("Sign in", locations=[("templates/web/login.html", 5)])
    source.add("A made-up message nobody translated", locations=[("src/lending/example.py", 1)])
    source.add(("%(num)d made-up thing", "%(num)d made-up things"), locations=[("templates/example.html", 2)])
    missing = missing_translations(source, welsh())
    assert len(missing) == 2
    assert "A made-up message nobody translated" in missing[0] and "src/lending/example.py:1" in missing[0]
    assert "%(num)d made-up thing" in missing[1]


def test_fuzzy_and_incomplete_translations_are_reported():
    source = Catalog(locale=LANGUAGE)
    source.add("Guessed")
    source.add(("%(num)d cat", "%(num)d cats"))
    translations = read_catalogue(i18n.catalogue_path(LANGUAGE))
    translations.add("Guessed", "Dyfalu", flags=["fuzzy"])
    translations.add(("%(num)d cat", "%(num)d cats"), ("%(num)d cath", "%(num)d gath", "", "", "", ""))
    assert [line.rsplit(": ", 1)[1] for line in missing_translations(source, translations)] == [
        "marked fuzzy",
        "not translated",
    ]


def test_broken_placeholders_are_reported():
    catalog = Catalog(locale=LANGUAGE)
    catalog.add("Hello %(name)s", "Helo %(enw)s")
    catalog.add("Wait %(minutes)s minutes", "Arhoswch %(minutes)d munud")
    catalog.add("100 per cent", "100 y cant")
    catalog.add("Done", "Wedi 100% gorffen")
    catalog.add(
        ("%(num)d cat", "%(num)d cats"),
        ("dim cathod", "un gath", "%(num)d gath", "%(num)d chath", "%(num)d chath", "%(num)d cath %(extra)s"),
    )
    problems = placeholder_problems(catalog)
    assert len(problems) == 4, problems
    assert "Hello %(name)s" in problems[0]
    assert "Wait %(minutes)s minutes" in problems[1]
    assert "bare %" in problems[2]
    assert "form 5" in problems[3]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("%(num)d of %(total)s", {"%(num)d", "%(total)s"}),
        ("100%% sure, %(name)-10s", {"%(name)-10s"}),
        ("no placeholders", set()),
    ],
)
def test_placeholders_are_recognised(text, expected):
    assert placeholders(text) == expected
