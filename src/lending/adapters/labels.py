"""Printable item stickers as a PDF: A4 label sheets and single labels for a thermal printer.

Each sticker carries what a person needs to reach the item page with or without a phone: the QR
code, the item code in large type (read aloud at the desk, typed into the search box), the item
name so the right sticker goes on the right thing, and the short URL.

The layouts are data (:data:`TEMPLATES`), so another sheet is one more entry. Measurements are
in millimetres, as printed on the sheet's packet. The QR is drawn as vector rectangles, so it is
sharp at any printer resolution and the PDF stays small. Rendering is CPU-bound: web handlers
call :func:`render_labels_async`, which keeps it off the event loop.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.prefs import ViewerPreferences

from lending import codes, i18n
from lending.adapters.qr import QUIET_ZONE, dark_runs, qr_matrix
from lending.errors import InvalidInput
from lending.i18n import lazy_gettext as _l
from lending.paths import fonts_dir

MM_PER_PT = 25.4 / 72
FONT_FAMILY = "DejaVuSansCondensed"
FONT_FILES = {"": "DejaVuSansCondensed.ttf", "B": "DejaVuSansCondensed-Bold.ttf"}
# DejaVu's vertical metrics as fractions of the font size: where to put a baseline so that
# capitals (the code) or descenders (the name and URL) stay inside the space given to them.
CAP_HEIGHT = 0.73
DESCENT = 0.24
LINE_HEIGHT = 1.2
ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"


@dataclass(frozen=True)
class Template:
    """One label layout. Sizes in mm; pitch is the distance from one label's corner to the next.

    ``padding`` is left blank inside every label edge so that a sheet fed a millimetre askew
    does not cut into the QR's quiet zone. The ``*_pt`` sizes are type sizes in points: the
    code and URL shrink from theirs until they fit, and never go below ``smallest_pt`` unless
    the alternative is a URL that does not fit at all.
    """

    name: str
    page_width: float
    page_height: float
    label_width: float
    label_height: float
    columns: int
    rows: int
    left_margin: float
    top_margin: float
    column_pitch: float
    row_pitch: float
    padding: float
    code_pt: float
    name_pt: float
    name_lines: int
    url_pt: float
    smallest_pt: float

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    def corner(self, slot: int) -> tuple[float, float]:
        """Top-left corner of a slot; slots run along each row, then down the sheet."""
        row, column = divmod(slot, self.columns)
        return self.left_margin + column * self.column_pitch, self.top_margin + row * self.row_pitch


@dataclass(frozen=True)
class Label:
    code: str
    name: str
    url: str


TEMPLATES: dict[str, Template] = {
    template.name: template
    for template in (
        # Avery L7160 (and compatibles such as LP21/63): A4, 21 labels, 3 x 7.
        Template(
            name="L7160",
            page_width=210,
            page_height=297,
            label_width=63.5,
            label_height=38.1,
            columns=3,
            rows=7,
            left_margin=7.21,
            top_margin=15.15,
            column_pitch=66.04,
            row_pitch=38.1,
            padding=1.5,
            code_pt=16,
            name_pt=8,
            name_lines=3,
            url_pt=6.5,
            smallest_pt=5,
        ),
        # Avery L7651 (LP65/38): A4, 65 labels, 5 x 13. Small, so the URL may take two lines.
        Template(
            name="L7651",
            page_width=210,
            page_height=297,
            label_width=38.1,
            label_height=21.2,
            columns=5,
            rows=13,
            left_margin=4.75,
            top_margin=10.7,
            column_pitch=40.6,
            row_pitch=21.2,
            padding=1.0,
            code_pt=11,
            name_pt=6,
            name_lines=2,
            url_pt=5,
            smallest_pt=4.5,
        ),
        # Die-cut 62 x 29 mm thermal labels (Brother DK-11209 and the like): one label a page.
        Template(
            name="thermal-62x29",
            page_width=62,
            page_height=29,
            label_width=62,
            label_height=29,
            columns=1,
            rows=1,
            left_margin=0,
            top_margin=0,
            column_pitch=62,
            row_pitch=29,
            padding=1.5,
            code_pt=18,
            name_pt=8,
            name_lines=2,
            url_pt=6.5,
            smallest_pt=5,
        ),
    )
}


def render_labels(labels: list[Label], template: str, *, start_position: int = 0) -> bytes:
    """A PDF with one sticker per label, in order, starting at slot ``start_position`` (counted
    from 0, along the rows) of the first sheet so a part-used sheet can go back in the printer.

    Print it at actual size: the PDF asks viewers not to scale it, but a print dialog's
    "fit to page" would still move every label.
    """
    layout = find_template(template)
    if not labels:
        raise InvalidInput(_l("Choose at least one item to print a label for."), code="no_labels")
    if not 0 <= start_position < layout.per_page:
        raise InvalidInput(
            _l("Start at a label between 1 and %(count)s.", count=layout.per_page),
            code="invalid_start_position",
            field="start_position",
        )
    pdf = _new_document(layout)
    for slot, label in enumerate(labels, start=start_position):
        if slot == start_position or slot % layout.per_page == 0:
            pdf.add_page()
        _draw_label(pdf, layout, label, *layout.corner(slot % layout.per_page))
    return bytes(pdf.output())


async def render_labels_async(labels: list[Label], template: str, *, start_position: int = 0) -> bytes:
    """:func:`render_labels` in a worker thread, so the server keeps answering while a batch
    of a thousand renders (a second or more of CPU). The thread still shares the GIL, so the
    loop waits up to a switch interval (5 ms) for its turn: ``bench/labels.py`` measured a
    worst lateness of about 14 ms during 1,000 labels, against seconds if run on the loop."""
    return await asyncio.to_thread(render_labels, labels, template, start_position=start_position)


def find_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise InvalidInput(
            _l("There is no label layout called %(name)s.", name=name), code="unknown_label_template", field="template"
        ) from None


class _LabelDocument(FPDF):
    """fpdf2's document with one addition: many rectangles filled as a single path."""

    def fill_rectangles(self, rectangles: list[tuple[float, float, float, float]]) -> None:
        """Fill ``(x, y, width, height)`` rectangles (mm, from the top left) as one path.

        fpdf2's ``rect()`` fills each rectangle on its own. PDF renderers (pdfium: Chrome's
        viewer and print preview) then snap every rectangle to the pixel grid separately, so
        modules come out a pixel wider or narrower: on L7651 labels at 100 dpi, half the codes
        stopped decoding. One path is rasterised as a whole, decodes down to 72 dpi there, and
        is about two and a half times quicker to write. ``_out`` is fpdf2's way to add content
        operators; its own table drawing uses it.
        """
        # PDF measures in points from the bottom left; fpdf2 keeps the scale in ``k``.
        k, page_height = self.k, self.h
        operators = [
            f"{x * k:.2f} {(page_height - y) * k:.2f} {width * k:.2f} {-height * k:.2f} re"
            for x, y, width, height in rectangles
        ]
        operators.append("f")
        self._out("\n".join(operators))


def _new_document(layout: Template) -> _LabelDocument:
    pdf = _LabelDocument(unit="mm", format=(layout.page_width, layout.page_height))
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.set_title(i18n.gettext("Item labels"))
    pdf.set_lang(i18n.current_language())
    pdf.set_creator("lending")
    # Labels only line up at 100 %; this stops viewers from defaulting to "fit to page".
    pdf.viewer_preferences = ViewerPreferences(print_scaling="None")
    fonts = fonts_dir()
    for style, filename in FONT_FILES.items():
        pdf.add_font(FONT_FAMILY, style, fonts / filename)
    pdf.set_fill_color(0)
    pdf.set_text_color(0)
    return pdf


def _draw_label(pdf: _LabelDocument, layout: Template, label: Label, left: float, top: float) -> None:
    """The QR square on the left, with its quiet zone inside the label; text to its right."""
    matrix = qr_matrix(label.url)
    box = layout.label_height - 2 * layout.padding
    module = box / (len(matrix) + 2 * QUIET_ZONE)
    symbol_left = left + layout.padding + QUIET_ZONE * module
    symbol_top = top + layout.padding + QUIET_ZONE * module
    _draw_qr(pdf, matrix, symbol_left, symbol_top, module)
    # The text column starts where the quiet zone ends and spans the symbol's height.
    column_left = left + layout.padding + box
    column_width = left + layout.label_width - layout.padding - column_left
    symbol_bottom = symbol_top + len(matrix) * module
    code_bottom = _draw_code(pdf, layout, label.code, column_left, column_width, symbol_top)
    url_top = _draw_url(pdf, layout, label.url, column_left, column_width, symbol_bottom)
    _draw_name(pdf, layout, label.name, column_left, column_width, code_bottom, url_top)


def _draw_qr(pdf: _LabelDocument, matrix: list[list[bool]], left: float, top: float, module: float) -> None:
    pdf.fill_rectangles(
        [
            (left + column * module, top + row * module, length * module, module)
            for row, column, length in dark_runs(matrix)
        ]
    )


def _draw_code(pdf: FPDF, layout: Template, code: str, left: float, width: float, top: float) -> float:
    """The code in bold, grouped in fours, as large as fits; returns where it ends."""
    text = codes.display(code)
    pdf.set_font(FONT_FAMILY, "B", layout.code_pt)
    size = _size_to_fit(pdf, [text], width, layout.code_pt)
    pdf.set_font_size(size)
    baseline = top + CAP_HEIGHT * size * MM_PER_PT
    pdf.text(left, baseline, text)
    return baseline


def _draw_url(pdf: FPDF, layout: Template, url: str, left: float, width: float, bottom: float) -> float:
    """The URL without its scheme, on one line if it fits at a readable size, else broken
    before the item path. Never truncated: a cut URL leads nowhere. Returns where it starts."""
    short = url.split("://", 1)[-1]
    pdf.set_font(FONT_FAMILY, "", layout.url_pt)
    lines = [short]
    if _size_to_fit(pdf, lines, width, layout.url_pt) < layout.smallest_pt:
        lines = _break_before_item_path(short)
    size = _size_to_fit(pdf, lines, width, layout.url_pt)
    pdf.set_font_size(size)
    step = LINE_HEIGHT * size * MM_PER_PT
    baseline = bottom - DESCENT * size * MM_PER_PT - (len(lines) - 1) * step
    first_baseline = baseline
    for line in lines:
        pdf.text(left, baseline, line)
        baseline += step
    return first_baseline - CAP_HEIGHT * size * MM_PER_PT


def _draw_name(pdf: FPDF, layout: Template, name: str, left: float, width: float, top: float, bottom: float) -> None:
    """As many lines of the name as the layout allows and the space between holds, centred in
    that space; the last line ends in an ellipsis if the name was longer."""
    pdf.set_font(FONT_FAMILY, "", layout.name_pt)
    size = layout.name_pt * MM_PER_PT
    step = LINE_HEIGHT * size
    # NFC: a name typed as w + combining circumflex is drawn with the font's own ŵ.
    text = unicodedata.normalize("NFC", " ".join(name.split()))
    lines = _wrap(pdf, text, width, min(layout.name_lines, int((bottom - top) // step)))
    baseline = top + (bottom - top - len(lines) * step) / 2 + (LINE_HEIGHT - DESCENT) * size
    for line in lines:
        pdf.text(left, baseline, line)
        baseline += step


def _size_to_fit(pdf: FPDF, lines: list[str], width: float, largest: float) -> float:
    """The largest size, up to ``largest``, at which every line fits ``width`` in the current
    font. Text width grows in proportion to size, so one measurement is enough."""
    widest = max(pdf.get_string_width(line) for line in lines) / pdf.font_size_pt
    return largest if widest * largest <= width else width / widest


def _break_before_item_path(short_url: str) -> list[str]:
    """``lib.example.org/i/K7Q2MX8P`` -> ``lib.example.org``, ``/i/K7Q2MX8P``."""
    cut = short_url.rfind("/", 0, short_url.rfind("/"))
    return [short_url[:cut], short_url[cut:]] if cut > 0 else [short_url]


def _wrap(pdf: FPDF, text: str, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines``; what is left over becomes an ellipsis."""
    lines: list[str] = []
    words = text.split(" ")
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and pdf.get_string_width(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words and lines:
        lines[-1] = f"{lines[-1]} {' '.join(words)}"
    return [_truncate(pdf, line, width) for line in lines]


def _truncate(pdf: FPDF, text: str, width: float) -> str:
    """``text`` if it fits, else its longest prefix that fits with an ellipsis after it."""
    if pdf.get_string_width(text) <= width:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if pdf.get_string_width(text[:middle].rstrip() + ELLIPSIS) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS
