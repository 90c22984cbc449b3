"""QR codes for item stickers: the matrix, a PNG for pages and an SVG for vector use.

Every item sticker encodes ``{BASE_URL}/i/{CODE}`` so that a phone's own camera opens the item
page; nobody needs an app. Pure functions: no web framework, no database, no clock.

Two choices keep a batch of a thousand stickers quick and the symbols small:

* Error correction M with a **fixed mask pattern**. ``qrcode`` otherwise builds the symbol eight
  times and scores each mask; fixing it is about six times faster (``bench/labels.py`` prints
  the figures). Every mask is valid; decoders read them all alike.
* The URL is left exactly as given (an upper-cased path would be a different URL), but the
  upper-case code at its end goes in the QR alphanumeric mode (5.5 bits a character instead of
  8), so a longer ``BASE_URL`` fits before the symbol grows a version.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

import qrcode
from PIL import Image
from qrcode import constants
from qrcode.util import MODE_8BIT_BYTE, MODE_ALPHA_NUM, QRData

from lending import codes
from lending.errors import InvalidInput
from lending.i18n import lazy_gettext as _l

ERROR_CORRECTION = constants.ERROR_CORRECT_M
# Mask 2 had the lowest worst-case penalty score (qrcode's own readability measure) over 300
# random item URLs, and the second-lowest mean; see the module docstring for why it is fixed.
MASK_PATTERN = 2
# The quiet zone the QR specification asks for around a symbol, in modules.
QUIET_ZONE = 4

_ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
# An alphanumeric segment costs 13 bits of header (versions 1-9), so a run must be at least
# this long before 5.5 bits a character beats staying in byte mode at 8.
_SHORTEST_WORTH_SPLITTING = 6

Matrix = list[list[bool]]


def item_url(base_url: str, code: str) -> str:
    """The address printed on an item's sticker, with the code in its canonical upper case.

    A code in canonical form is what the item page looks up, and upper case is what lets the
    code ride in the compact alphanumeric mode.
    """
    canonical = codes.normalise(code)
    if not canonical:
        raise InvalidInput(_l("That is not an item code."), code="invalid_item_code")
    return f"{base_url.rstrip('/')}/i/{canonical}"


def qr_matrix(data: str) -> Matrix:
    """The symbol's modules, ``True`` for dark, row by row, without the quiet zone.

    The caller leaves :data:`QUIET_ZONE` light modules around it: on a label the label itself is
    that margin, so adding it here would only make the caller subtract it again.
    """
    return [[bool(module) for module in row] for row in _symbol(data).modules]


def dark_runs(matrix: Matrix) -> list[tuple[int, int, int]]:
    """``(row, first column, length)`` for each horizontal run of dark modules.

    Drawing one rectangle per run rather than per module is about a third as many shapes,
    which keeps both the PDF and the SVG small and quick to draw.
    """
    runs = []
    for row_index, row in enumerate(matrix):
        start = None
        for column, dark in enumerate([*row, False]):
            if dark and start is None:
                start = column
            elif not dark and start is not None:
                runs.append((row_index, start, column - start))
                start = None
    return runs


def qr_png(data: str, *, box_size: int = 10, border: int = QUIET_ZONE) -> bytes:
    """A black-on-white 1-bit PNG, ``box_size`` pixels a module, with ``border`` modules of
    quiet zone. Scaled up with nearest-neighbour so module edges stay sharp."""
    matrix = qr_matrix(data)
    side = len(matrix) + 2 * border
    image = Image.new("1", (side, side), 1)
    image.putdata([0 if dark else 1 for row in _with_border(matrix, border) for dark in row])
    if box_size != 1:
        image = image.resize((side * box_size, side * box_size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def qr_svg(data: str, *, border: int = QUIET_ZONE) -> bytes:
    """A scalable SVG measured in modules (the ``viewBox``), with a white background so it
    still scans when placed on a dark page. The page sets its display size with CSS."""
    matrix = qr_matrix(data)
    side = len(matrix) + 2 * border
    path = "".join(
        f"M{column + border} {row + border}h{length}v1h-{length}z" for row, column, length in dark_runs(matrix)
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        f'shape-rendering="crispEdges"><title>{escape(data)}</title>'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path d="{path}" fill="#000"/></svg>'
    )
    return svg.encode()


def _symbol(data: str) -> qrcode.QRCode:
    symbol = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=0, mask_pattern=MASK_PATTERN)
    for segment in _segments(data):
        symbol.add_data(segment)
    # fit=False: reading ``version`` already fits the smallest one; fit=True would fit twice.
    symbol.make(fit=False)
    return symbol


def _segments(data: str) -> list[QRData]:
    """Byte mode for the URL, alphanumeric mode for the upper-case run at its end (the code)."""
    split = len(data)
    while split and data[split - 1] in _ALPHANUMERIC:
        split -= 1
    if len(data) - split < _SHORTEST_WORTH_SPLITTING:
        return [QRData(data.encode(), mode=MODE_8BIT_BYTE)]
    segments = [QRData(data[split:].encode(), mode=MODE_ALPHA_NUM)]
    if split:
        segments.insert(0, QRData(data[:split].encode(), mode=MODE_8BIT_BYTE))
    return segments


def _with_border(matrix: Matrix, border: int) -> Matrix:
    side = len(matrix) + 2 * border
    blank = [False] * side
    padding = [False] * border
    return [*([blank] * border), *([*padding, *row, *padding] for row in matrix), *([blank] * border)]
