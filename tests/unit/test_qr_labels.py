"""QR codes and label sheets, checked the way a phone would: render, rasterise, decode.

Every sheet is rasterised with pypdfium2 (the PDF engine in Chrome, which also does its print
preview) and every QR on it is decoded with zxing-cpp. The decoded URLs must be exactly the
expected ones: none missing, none extra, none twice.

Each layout is decoded at print resolution (300 dpi) and again at a low resolution, as a margin
for worn printers, smudges and cheap cameras. Lowest resolution at which every code decoded,
measured for ``https://lib.example.org`` (QR version 3) over 1,300 random codes for L7651,
630 for L7160 and 100 for the thermal label:

    L7160  45 dpi     L7651  72 dpi (90 dpi with a 25-character host: version 4)
    thermal-62x29  50 dpi

The low passes below run at about twice those: 100 dpi for L7160 and the thermal label, 150 dpi
for L7651.
"""

from __future__ import annotations

import io
import random
import re
import threading
import warnings
from collections import Counter
from xml.etree import ElementTree

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from lending import codes
from lending.adapters import labels as labels_module
from lending.adapters.labels import TEMPLATES, Label, render_labels, render_labels_async
from lending.adapters.qr import QUIET_ZONE, dark_runs, item_url, qr_matrix, qr_png, qr_svg
from lending.errors import InvalidInput

BASE_URL = "https://lib.example.org"
PRINT_DPI = 300
LOW_DPI = {"L7160": 100, "L7651": 150, "thermal-62x29": 100}
# Enough labels to spill onto a second sheet; the thermal printer takes one label a page.
COUNTS = {"L7160": 21 + 5, "L7651": 65 + 3, "thermal-62x29": 3}
NAMES = [
    "Cordless drill, 18 V, two batteries and charger",
    "Peiriant gwnïo (ŵ, ŷ)",
    "Ladder",
    "Gazebo " * 12,
    "Pressure washer",
]


def make_labels(count: int, seed: int = 7) -> list[Label]:
    rng = random.Random(seed)
    made = []
    for index in range(count):
        code = "".join(rng.choice(codes.ALPHABET) for _ in range(8))
        made.append(Label(code=code, name=NAMES[index % len(NAMES)], url=item_url(BASE_URL, code)))
    return made


def pages(pdf: bytes, dpi: int) -> list[Image.Image]:
    document = pdfium.PdfDocument(pdf)
    return [page.render(scale=dpi / 72, grayscale=True).to_pil() for page in document]


def decode(image: Image.Image) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)


def page_text(pdf: bytes, index: int = 0) -> str:
    page = pdfium.PdfDocument(pdf)[index]
    return page.get_textpage().get_text_range()


# --- qr.py ---------------------------------------------------------------------------------


def test_item_url_keeps_the_base_and_canonicalises_the_code():
    assert item_url(BASE_URL, "K7Q2MX8P") == "https://lib.example.org/i/K7Q2MX8P"
    assert item_url(BASE_URL + "/", "k7q2-mx8p") == "https://lib.example.org/i/K7Q2MX8P"


def test_item_url_refuses_something_that_is_not_a_code():
    with pytest.raises(InvalidInput) as raised:
        item_url(BASE_URL, "not a code!")
    assert raised.value.code == "invalid_item_code"


def test_png_decodes_to_the_exact_url():
    url = item_url(BASE_URL, "K7Q2MX8P")
    image = Image.open(io.BytesIO(qr_png(url, box_size=6)))
    assert image.size[0] == (len(qr_matrix(url)) + 2 * QUIET_ZONE) * 6
    assert [result.text for result in decode(image)] == [url]


def test_svg_is_xml_with_a_module_viewbox_and_draws_the_same_code():
    url = item_url(BASE_URL, "0123ABCD")
    side = len(qr_matrix(url)) + 2 * QUIET_ZONE
    root = ElementTree.fromstring(qr_svg(url))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == f"0 0 {side} {side}"
    # Paint the path's rectangles (``Mx yhNv1h-Nz``) onto a raster and decode that.
    path = root.find("{http://www.w3.org/2000/svg}path").get("d")
    image = Image.new("L", (side, side), 255)
    for x, y, length in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", path):
        image.paste(0, (int(x), int(y), int(x) + int(length), int(y) + 1))
    assert [result.text for result in decode(image.resize((side * 8, side * 8), Image.Resampling.NEAREST))] == [url]


def test_dark_runs_cover_exactly_the_dark_modules():
    matrix = qr_matrix(item_url(BASE_URL, "K7Q2MX8P"))
    painted = {(row, column + step) for row, column, length in dark_runs(matrix) for step in range(length)}
    dark = {(row, column) for row, line in enumerate(matrix) for column, on in enumerate(line) if on}
    assert painted == dark


def test_the_code_rides_in_alphanumeric_mode_so_a_longer_host_keeps_version_3():
    # 24-character host: 43 bytes in byte mode alone would need version 4 (33 modules).
    url = item_url("https://" + "l" * 20 + ".org", "K7Q2MX8P")
    assert len(qr_matrix(url)) == 29


def test_the_symbol_is_the_same_every_time():
    url = item_url(BASE_URL, "K7Q2MX8P")
    assert qr_matrix(url) == qr_matrix(url)


# --- labels.py: layouts --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_label_lies_on_the_page(name):
    layout = TEMPLATES[name]
    for slot in range(layout.per_page):
        left, top = layout.corner(slot)
        assert 0 <= left and left + layout.label_width <= layout.page_width + 1e-9
        assert 0 <= top and top + layout.label_height <= layout.page_height + 1e-9


@pytest.mark.parametrize(
    ("name", "count", "size"),
    [("L7160", 21, (63.5, 38.1)), ("L7651", 65, (38.1, 21.2)), ("thermal-62x29", 1, (62, 29))],
)
def test_sheet_geometry_matches_the_packets(name, count, size):
    layout = TEMPLATES[name]
    assert (layout.per_page, (layout.label_width, layout.label_height)) == (count, size)


# --- labels.py: decoding whole sheets ------------------------------------------------------


@pytest.fixture(scope="module")
def sheets() -> dict[str, tuple[list[Label], bytes]]:
    rendered = {}
    for name, count in COUNTS.items():
        made = make_labels(count, seed=len(name))
        rendered[name] = (made, render_labels(made, name))
    return rendered


@pytest.mark.parametrize("name", sorted(COUNTS))
@pytest.mark.parametrize("resolution", ["print", "low"])
def test_every_qr_on_every_sheet_decodes_to_its_url(sheets, name, resolution):
    made, pdf = sheets[name]
    dpi = PRINT_DPI if resolution == "print" else LOW_DPI[name]
    per_page = TEMPLATES[name].per_page
    decoded_pages = [[result.text for result in decode(image)] for image in pages(pdf, dpi)]
    expected_pages = [
        [label.url for label in made[start : start + per_page]] for start in range(0, len(made), per_page)
    ]
    assert [Counter(found) for found in decoded_pages] == [Counter(expected) for expected in expected_pages]


def slot_of(result: zxingcpp.Barcode, name: str, dpi: int) -> int:
    """Which label slot a decoded QR sits in, from the centre of its corners."""
    layout = TEMPLATES[name]
    corners = (result.position.top_left, result.position.bottom_right)
    x_mm = sum(point.x for point in corners) / 2 * 25.4 / dpi
    y_mm = sum(point.y for point in corners) / 2 * 25.4 / dpi
    column = int((x_mm - layout.left_margin) // layout.column_pitch)
    row = int((y_mm - layout.top_margin) // layout.row_pitch)
    return row * layout.columns + column


def test_start_position_leaves_the_used_labels_blank_and_fills_the_rest_in_order():
    made = make_labels(21)
    pdf = render_labels(made, "L7160", start_position=5)
    first, second = pages(pdf, PRINT_DPI)
    on_first = decode(first)
    assert len(on_first) == 21 - 5
    assert {slot_of(result, "L7160", PRINT_DPI): result.text for result in on_first} == {
        slot: label.url for slot, label in zip(range(5, 21), made[:16], strict=True)
    }
    assert sorted(result.text for result in decode(second)) == sorted(label.url for label in made[16:])


# --- labels.py: text -----------------------------------------------------------------------


def test_welsh_letters_are_drawn_with_real_glyphs():
    label = Label(code="K7Q2MX8P", name="Peiriant gwnïo: ŵ ŷ Ŵ Ŷ", url=item_url(BASE_URL, "K7Q2MX8P"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fpdf2 warns when a font lacks a glyph
        pdf = render_labels([label], "thermal-62x29")
    text = page_text(pdf)
    assert "ŵ ŷ Ŵ Ŷ" in text
    assert "K7Q2-MX8P" in text
    assert "lib.example.org/i/K7Q2MX8P" in text
    assert [result.text for result in decode(pages(pdf, PRINT_DPI)[0])] == [label.url]


def test_a_decomposed_name_is_composed_before_drawing():
    label = Label(code="K7Q2MX8P", name="Bwrdd sme\u0301r w\u0302", url=item_url(BASE_URL, "K7Q2MX8P"))
    assert "ŵ" in page_text(render_labels([label], "thermal-62x29"))


def test_a_long_name_is_cut_with_an_ellipsis_and_the_url_is_never_cut():
    label = Label(code="K7Q2MX8P", name="Pressure washer " * 10, url=item_url(BASE_URL, "K7Q2MX8P"))
    text = page_text(render_labels([label], "L7651"))
    assert "…" in text
    assert "Pressure washer " * 10 not in text
    assert "lib.example.org" in text and "/i/K7Q2MX8P" in text


# --- labels.py: refusals and the async wrapper ---------------------------------------------


def test_an_unknown_layout_is_refused():
    with pytest.raises(InvalidInput) as raised:
        render_labels(make_labels(1), "L9999")
    assert raised.value.code == "unknown_label_template"


def test_an_empty_batch_is_refused():
    with pytest.raises(InvalidInput) as raised:
        render_labels([], "L7160")
    assert raised.value.code == "no_labels"


@pytest.mark.parametrize("start", [-1, 21])
def test_a_start_position_off_the_sheet_is_refused(start):
    with pytest.raises(InvalidInput) as raised:
        render_labels(make_labels(1), "L7160", start_position=start)
    assert raised.value.code == "invalid_start_position"


async def test_the_async_version_renders_in_a_worker_thread(monkeypatch):
    threads = []
    real = labels_module.render_labels

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(labels_module, "render_labels", spy)
    pdf = await render_labels_async(make_labels(2), "L7160", start_position=3)
    assert pdf.startswith(b"%PDF")
    assert threads and threads[0] != threading.get_ident()
    assert len(decode(pages(pdf, PRINT_DPI)[0])) == 2


async def test_the_async_version_refuses_like_the_sync_one():
    with pytest.raises(InvalidInput):
        await render_labels_async([], "L7160")
