"""Text people read goes through gettext, so the Welsh catalogue can cover it.

``test_translations`` checks that every *marked* message has Welsh; these checks find text that
was never marked, which that test cannot see:

* Templates: text between tags, and the attributes people read or hear (``alt``, ``title``,
  ``placeholder``, ``aria-label`` ..., a button's ``value``), must come from ``{{ _() }}`` or
  ``{{ ngettext() }}`` (or a variable), never be typed into the HTML. Jinja is lexed with the
  same options as ``babel.cfg``; everything inside ``{{ }}``, ``{% %}`` and ``{# #}`` is left out,
  as is the text of ``<script>`` and ``<style>``.
* Browser scripts: no words written into the page, a dialog or an ``aria-label`` as literals;
  they read them from the page.
* Python: a domain error's message, a form problem, a flash message or a borrowing reason given
  as a plain string (or f-string) instead of ``_()`` / ``_l()``.

Decisions: a few words read the same in English and Welsh (``PDF``) are allowed by name below,
so a new exception is a visible, reviewed change. Machine-facing text (API summaries, log lines,
the command line, audit details) is not checked.
"""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

from jinja2 import Environment

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
SOURCE = ROOT / "src" / "lending"

# Text that is the same in both languages.
SAME_IN_WELSH = {"(PDF)", "PDF", "QR", "CSV", "Stripe", "FHIR"}
READ_ATTRIBUTES = {
    "alt",
    "title",
    "placeholder",
    "aria-label",
    "aria-description",
    "aria-roledescription",
    "aria-valuetext",
    "label",
    "data-confirm",
}
WORD = re.compile(r"[^\W\d_]{2,}")


def _template_text(source: str) -> str:
    """The template's own text: Jinja constructs left out, and text inside ``{% trans %}``
    blocks, which gettext already covers."""
    env = Environment(extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    out: list[str] = []
    in_trans = False
    block_name_next = False
    for _, kind, value in env.lex(source):
        if kind == "whitespace":
            continue
        if block_name_next and kind == "name":
            in_trans = value == "trans" or (in_trans and value != "endtrans")
        block_name_next = kind == "block_begin"
        if kind == "data" and not in_trans:
            out.append(value)
        elif kind in ("variable_begin", "comment_begin"):
            # Text then a variable ("Hello {{ name }}") stays a text node; a block, which may
            # add an attribute inside a tag (<details{% if x %} open{% endif %}>), leaves nothing.
            out.append(" ")
    return "".join(out)


class _TextFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self.raw_depth = 0

    def _check(self, text: str) -> None:
        shown = " ".join(text.split())
        if WORD.search(shown) and shown not in SAME_IN_WELSH:
            self.found.append((self.getpos()[0], shown))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.raw_depth += 1
        attributes = dict(attrs)
        read = set(READ_ATTRIBUTES)
        if tag == "input" and (attributes.get("type") or "") in ("submit", "button", "reset"):
            read.add("value")
        for name, value in attrs:
            if name in read and value:
                self._check(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.raw_depth:
            self.raw_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.raw_depth:
            self._check(data)


def untranslated_in_template(source: str) -> list[tuple[int, str]]:
    finder = _TextFinder()
    finder.feed(_template_text(source))
    finder.close()
    return finder.found


def test_templates_type_no_text_outside_gettext():
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for line, text in untranslated_in_template(path.read_text(encoding="utf-8")):
            found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, (
        "Text in templates that gettext never sees, so it stays English for Welsh readers. "
        'Wrap it in {{ _("...") }}:\n  ' + "\n  ".join(found)
    )


def test_the_template_check_finds_typed_text():
    source = """{% extends "base/layout.html" %}
{% block content %}
  <h1>{{ _("Fine") }}</h1>
  <p>Hello {{ name }}</p>
  <img src="x.png" alt="A drill">
  <input type="submit" value="Save">
  <input type="hidden" name="what" value="codes">
  <a href="/x" aria-label="{{ _('Also fine') }}">{{ _("Link") }}</a> (PDF)
  <script>var words = "not for people";</script>
  {# a comment in English #}
  {% trans %}Already translated{% endtrans %}
{% endblock %}"""
    assert [text for _, text in untranslated_in_template(source)] == ["Hello", "A drill", "Save"]


# --- browser scripts -------------------------------------------------------------------------------

SCRIPTS = ROOT / "static" / "js"
# Words a script would show: text written into the page, a dialog, or a label read aloud.
SCRIPT_TEXT = re.compile(
    r"""(?:textContent|innerText|innerHTML|placeholder|title)\s*[+]?=\s*["'`][^"'`]*[^\W\d_]{2,}"""
    r"""|\b(?:alert|confirm|prompt)\s*\(\s*["'`]"""
    r"""|setAttribute\(\s*["'](?:aria-label|title|alt|placeholder)["']\s*,\s*["'`]"""
)


def untranslated_in_script(source: str) -> list[tuple[int, str]]:
    return [
        (number, line.strip())
        for number, line in enumerate(source.splitlines(), 1)
        if not line.strip().startswith("//") and SCRIPT_TEXT.search(line)
    ]


def test_scripts_take_their_words_from_the_page():
    """Scripts have no gettext: what they say comes from the page (data- attributes, live
    regions) that the template rendered in the reader's language."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in sorted(SCRIPTS.glob("*.js"))
        for line, text in untranslated_in_script(path.read_text(encoding="utf-8"))
    ]
    assert not found, "Scripts writing English words into the page:\n  " + "\n  ".join(found)


def test_the_script_check_finds_typed_words():
    source = """status.textContent = "Scanning";
status.textContent = box.getAttribute("data-msg-scanning");
// a comment: textContent = "fine"
alert("Oops");
button.setAttribute("aria-label", "Stop");
button.setAttribute("aria-pressed", "true");"""
    assert [line for line, _ in untranslated_in_script(source)] == [1, 4, 5]


# --- Python ---------------------------------------------------------------------------------------

GETTEXT = {"_", "_l", "gettext", "lazy_gettext", "ngettext", "lazy_ngettext"}
DOMAIN_ERRORS = {
    "DomainError",
    "InvalidInput",
    "NotSignedIn",
    "NotAllowed",
    "NotFound",
    "Conflict",
    "RuleViolation",
    "TooManyAttempts",
    "Unavailable",
}
PROBLEM_DICTS = {"problems", "found", "field_errors"}
# The command line, the demo and backups speak English only (docs/welsh.md).
COMMAND_LINE_ONLY = {"cli.py", "demo.py", "backup.py"}


def _called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _is_typed_text(node: ast.AST | None) -> bool:
    """A plain string or f-string with words in it (not a message passed through gettext)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(WORD.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.Constant) and WORD.search(str(part.value)) for part in node.values)
    return False


def untranslated_in_python(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _called(node)
            texts: list[ast.AST | None] = []
            if name in DOMAIN_ERRORS:
                texts.append(node.args[0] if node.args else None)
                texts += [k.value for k in node.keywords if k.arg == "detail"]
                for keyword in node.keywords:
                    if keyword.arg == "errors" and isinstance(keyword.value, ast.Dict):
                        texts += keyword.value.values
            elif (
                name == "add" and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") == "flash"
            ):
                texts.append(node.args[1] if len(node.args) > 1 else None)
            elif name == "Reason":
                texts.append(node.args[1] if len(node.args) > 1 else None)
            found += [(node.lineno, f"{name}(...)") for text in texts if _is_typed_text(text)]
        elif isinstance(node, ast.Assign) and _is_typed_text(node.value):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and getattr(target.value, "id", "") in PROBLEM_DICTS:
                    found.append((node.lineno, f"{target.value.id}[...] = ..."))
    return found


def test_python_gives_people_no_untranslated_messages():
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if "piccolo_migrations" in path.parts or path.name in COMMAND_LINE_ONLY:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{line}: {what}"
            for line, what in untranslated_in_python(path.read_text(encoding="utf-8"))
        ]
    assert not found, (
        "Messages for people written as plain strings, so they stay English for Welsh "
        "readers; use _() or _l():\n  " + "\n  ".join(found)
    )


def test_the_python_check_finds_typed_messages():
    source = """
raise errors.NotFound("No such thing.", code="nothing")
raise errors.NotFound(_l("Fine."), code="fine")
raise InvalidInput(_l("Check it."), errors={"name": "Enter a name."})
flash.add(request.scope, f"Saved {name}.")
flash.add(request.scope, _("Saved."))
problems["email"] = "Enter an email address."
reasons.append(Reason("blocked", "Not today."))
log.info("not for people")
"""
    assert sorted(line for line, _ in untranslated_in_python(source)) == [2, 4, 5, 7, 8]
