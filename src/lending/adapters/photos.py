"""Item photos: a phone camera's upload made safe and small enough for the catalogue.

A pure adapter (bytes in, bytes out; no web framework, no database) so the desk, the JSON API,
the admin and ``lending demo`` all get the same photo. It refuses anything that is not a real,
reasonably sized picture, and for the rest it returns an upright, metadata-free JPEG of at most
``FULL_SIZE`` pixels on its longest side plus a thumbnail.

Decisions:

* Accepted: JPEG (including the multi-picture "MPO" JPEGs many phones write), PNG, WebP, and
  GIF (first frame only: a catalogue photo does not move, and a product picture saved from a
  website is sometimes a GIF). Pillow is the judge of what a file is, never its name or declared
  content type, and it is only offered those four parsers.
* Refused as "unsupported": HEIC/HEIF, AVIF, TIFF, BMP and JPEG XL, recognised by their first
  bytes so the volunteer is told to pick another format rather than that the file is not a
  photo. Pillow cannot open HEIC without the ``pillow-heif`` plugin, which we do not ship. AVIF
  is left out because not every Pillow the project allows (>=11) can read it and no phone
  camera saves it by default. Phones' browsers usually convert HEIC to JPEG on upload when the
  file input's ``accept`` names JPEG/PNG/WebP.
* Output is always a progressive, optimised JPEG at quality 82: every browser, e-mail client
  and PDF (label sheets embed JPEG as is) shows it, and at 1600 px it is small enough for a
  phone on a slow connection. WebP would save about a quarter of the bytes, which matters less
  than working everywhere.
* Colour: an embedded ICC profile (iPhones shoot Display P3) is applied to convert the pixels to
  sRGB, then dropped; the untagged result is read as sRGB everywhere. Dropping the profile
  without converting would make such photos look dull. A broken profile is ignored.
* Privacy: the output is rebuilt from bare pixels, so no EXIF (GPS location, camera serial,
  time), XMP, comment or ICC data can be carried over. EXIF orientation is applied first, so
  phone photos are upright.
* Memory and time: the upload size is capped, the pixel count is read from the header and
  refused before any pixel is decoded, and large JPEGs are decoded at a reduced scale
  (libjpeg's DCT scaling), so a 48 MP photo never becomes a 48 MP bitmap. At most
  ``DECODE_SLOTS`` photos are decoded at once in a process.
* Pillow's own decompression-bomb check (``Image.MAX_IMAGE_PIXELS``) is left as configured:
  changing it, or the warning filters, would change every other user of Pillow in the process,
  and ``warnings.catch_warnings`` is not thread-safe while photos are decoded in worker threads.
  Our limit is never above Pillow's, so whenever Pillow warns the photo is refused anyway; if
  warnings are turned into errors, the raised ``DecompressionBombWarning`` becomes the same
  refusal, and so does Pillow's ``DecompressionBombError``.
* Truncated files are refused because Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is False by
  default; nothing in this project may set it.
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import unicodedata
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageCms, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from lending import errors
from lending.i18n import lazy_gettext as _l
from lending.paths import fonts_dir

MAX_UPLOAD_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 50_000_000
FULL_SIZE = 1600
THUMB_SIZE = 400
JPEG_QUALITY = 82
CONTENT_TYPE = "image/jpeg"
PLACEHOLDER_SIZE = (1200, 900)
# Each decode may hold a few hundred MB at MAX_PIXELS; a small venue server has little memory.
DECODE_SLOTS = 2

# Pillow plugin names. "JPEG" also opens MPO files (their Image.format is then "MPO").
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
FORM_FIELD = "photo"

# Errors Pillow's parsers and decoders raise on bad input; anything else is a bug to see.
_DAMAGED = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error, zlib.error)
_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_FONT_FILE = "DejaVuSans-Bold.ttf"
# The app's own copy first (static/fonts), then the system's.
_FONT_PATHS = (fonts_dir() / "DejaVuSansCondensed-Bold.ttf", Path("/usr/share/fonts/truetype/dejavu") / _FONT_FILE)
# Mid-dark colours: white text on each has a contrast ratio of at least 4.5:1.
PLACEHOLDER_PALETTE = ("#2E6B5E", "#1F5F8B", "#8A3B5C", "#A14A1F", "#5B4B8A", "#3C6E2F", "#8B3A3A", "#2F5D6E")


@dataclass(frozen=True)
class ProcessedPhoto:
    """The photo to store and show: two JPEGs and their sizes (for width/height attributes)."""

    full: bytes
    thumbnail: bytes
    width: int
    height: int
    thumb_width: int
    thumb_height: int
    content_type: str = CONTENT_TYPE


# --- refusals ---------------------------------------------------------------------------------


def _refusal(message: str, code: str) -> errors.InvalidInput:
    return errors.InvalidInput(message, code=code, field=FORM_FIELD)


def _not_a_photo() -> errors.InvalidInput:
    return _refusal(_l("That file is not a photo. Choose a JPEG, PNG or WebP image."), "photo_not_an_image")


def _unsupported() -> errors.InvalidInput:
    return _refusal(
        _l("Photos of that type can't be used here. Choose a JPEG, PNG or WebP image."), "photo_unsupported_format"
    )


def _corrupt() -> errors.InvalidInput:
    return _refusal(_l("That photo is damaged or incomplete. Try uploading it again."), "photo_corrupt")


def _too_many_pixels() -> errors.InvalidInput:
    megapixels = max(1, _pixel_limit() // 1_000_000)
    return _refusal(
        _l("That photo has too many pixels. Choose one of at most %(megapixels)d megapixels.", megapixels=megapixels),
        "photo_too_many_pixels",
    )


def _check_upload_size(data: bytes) -> None:
    """Refuse before Pillow sees anything: the cheap checks first."""
    if not data:
        raise _refusal(_l("That file is empty. Choose a photo to upload."), "photo_empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise _refusal(
            _l(
                "That file is too big. Choose a photo smaller than %(megabytes)d MB.",
                megabytes=MAX_UPLOAD_BYTES // (1024 * 1024),
            ),
            "photo_too_large",
        )


def _pixel_limit() -> int:
    """Ours, or Pillow's if someone set it lower, so a Pillow bomb warning always means refusal."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return min(MAX_PIXELS, pillow_limit) if pillow_limit else MAX_PIXELS


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise _corrupt()
    if width * height > _pixel_limit():
        raise _too_many_pixels()


def _sniffed_family(data: bytes) -> str | None:
    """What the first bytes claim, to word a refusal only; Pillow decides what is accepted."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}:
            return "HEIF"
        if brand in {b"avif", b"avis"}:
            return "AVIF"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JXL"
    return None


def _unidentified(data: bytes) -> errors.InvalidInput:
    """Pillow could not read it: a damaged photo, another image format, or not an image at all."""
    family = _sniffed_family(data)
    if family in ACCEPTED_FORMATS:
        return _corrupt()
    if family is not None:
        return _unsupported()
    return _not_a_photo()


@contextmanager
def _refusing_bad_input(data: bytes):
    """Turn whatever Pillow raises on hostile or broken input into one of our refusals."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels() from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc
    except _DAMAGED as exc:
        raise _corrupt() from exc


# --- decoding ---------------------------------------------------------------------------------


def _opened(data: bytes) -> Image.Image:
    """Read the header only; the pixel count is known here, before any pixel is decoded."""
    image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    _check_pixels(image.size)
    return image


def _decoded(data: bytes) -> Image.Image:
    """The first frame, fully decoded, or a refusal. Nothing half-read gets through."""
    with _refusing_bad_input(data):
        # verify() checks what it can without decoding (chunk CRCs for PNG) and leaves the
        # image unusable, hence the second open.
        _opened(data).verify()
        image = _opened(data)
        target = _fitted(image.size, FULL_SIZE)
        # JPEG only: decode at 1/2, 1/4 or 1/8 scale while keeping twice the target size
        # for a sharp final resample.
        image.draft(None, (target[0] * 2, target[1] * 2))
        image.load()
        return image


def _upright(image: Image.Image) -> Image.Image:
    """Phones store pixels as the sensor saw them and an EXIF tag saying how to turn them.
    Broken EXIF should not cost a volunteer the photo: it is then kept as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except _DAMAGED:
        return image


def _eight_bit_grey(image: Image.Image) -> Image.Image:
    """16-bit greyscale PNGs: scale down; a plain convert would clip nearly everything to white."""
    return image.convert("I").point(lambda value: value / 256).convert("L")


def _working_mode(image: Image.Image) -> Image.Image:
    """RGB, RGBA (any transparency kept for flattening) or CMYK (so a CMYK profile applies)."""
    if image.mode in _SIXTEEN_BIT_GREY:
        image = _eight_bit_grey(image)
    if image.mode in ("RGB", "RGBA", "CMYK"):
        return image
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _fitted(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """The size with the longest side at most ``longest``; never larger than it was."""
    width, height = size
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resized(image: Image.Image, longest: int) -> Image.Image:
    target = _fitted(image.size, longest)
    if target == image.size:
        return image
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _srgb() -> ImageCms.ImageCmsProfile:
    """Made per call (it takes microseconds) so no LittleCMS handle is shared between threads."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _in_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Apply the camera's colour profile so the untagged output shows the colours it meant."""
    if not icc_profile:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, source, _srgb(), outputMode=output_mode)
    except (ImageCms.PyCMSError, *_DAMAGED):
        # A broken profile, or one for another colour space than the pixels.
        return image


def _on_white(image: Image.Image) -> Image.Image:
    """JPEG has no transparency; a cut-out product shot looks right on white, not black."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    background = Image.new("RGB", image.size, "white")
    background.paste(image, mask=image.getchannel("A"))
    return background


def _encoded(image: Image.Image) -> bytes:
    """A JPEG built from bare pixels: no EXIF, GPS, XMP, comment or ICC can ride along."""
    bare = Image.new("RGB", image.size)
    bare.paste(image)
    buffer = io.BytesIO()
    bare.save(buffer, "JPEG", quality=JPEG_QUALITY, progressive=True, optimize=True)
    return buffer.getvalue()


# --- the adapter --------------------------------------------------------------------------------


def process_photo(data: bytes) -> ProcessedPhoto:
    """Check an uploaded photo and return it upright, in sRGB, stripped of metadata, at most
    FULL_SIZE on its longest side, with a THUMB_SIZE thumbnail.

    Raises ``InvalidInput`` with code ``photo_empty``, ``photo_too_large``,
    ``photo_too_many_pixels``, ``photo_not_an_image``, ``photo_unsupported_format`` or
    ``photo_corrupt``. CPU-bound: from async code call ``process_photo_async``.
    """
    _check_upload_size(data)
    image = _decoded(data)
    icc_profile = image.info.get("icc_profile")
    # From here the pixels are in memory and sound; an error now would be ours, not the file's.
    image = _working_mode(_upright(image))
    full = _on_white(_in_srgb(_resized(image, FULL_SIZE), icc_profile))
    thumbnail = _resized(full, THUMB_SIZE)
    return ProcessedPhoto(
        full=_encoded(full),
        thumbnail=_encoded(thumbnail),
        width=full.width,
        height=full.height,
        thumb_width=thumbnail.width,
        thumb_height=thumbnail.height,
    )


LOGO_SIZE = 480  # the longest side of a venue's logo; it shows at most 48 px high


def logo_png(data: bytes) -> bytes:
    """A venue's logo: checked like a photo, upright, in sRGB, at most LOGO_SIZE on its
    longest side, transparency kept, as a PNG with no metadata. Same refusals as
    ``process_photo``."""
    _check_upload_size(data)
    image = _decoded(data)
    icc_profile = image.info.get("icc_profile")
    image = _in_srgb(_resized(_working_mode(_upright(image)), LOGO_SIZE), icc_profile)
    mode = "RGBA" if image.mode == "RGBA" else "RGB"
    bare = Image.new(mode, image.size)
    bare.paste(image.convert(mode))
    buffer = io.BytesIO()
    bare.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)


def _process_in_a_slot(data: bytes) -> ProcessedPhoto:
    with _decode_slots:
        return process_photo(data)


async def process_photo_async(data: bytes) -> ProcessedPhoto:
    """``process_photo`` in a worker thread: decoding takes tens to hundreds of milliseconds
    of CPU, which would stall every other request on the event loop."""
    return await asyncio.to_thread(_process_in_a_slot, data)


# --- placeholders for the demo catalogue ----------------------------------------------------------


@cache
def _font(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    """DejaVu Sans Bold (it has Welsh ŵ and ŷ), and whether it was found. Pillow's built-in
    font is the fallback; it has ASCII only, so text drawn with it is folded to ASCII first."""
    for candidate in (*_FONT_PATHS, _FONT_FILE):  # the bare name searches the system's font folders
        try:
            return ImageFont.truetype(str(candidate), size), True
        except OSError:
            continue
    return ImageFont.load_default(size=size), False


def _ascii(text: str) -> str:
    """'Ŵy' -> 'Wy', '…' -> '...': readable with a font that lacks accented letters."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii())


def _placeholder_word(name: str) -> str:
    """The item's first word, capitalised, or '?' for a name with no letters or digits."""
    for word in name.split():
        word = word.strip("()[]{}\"'“”‘’.,;:!?-–—")
        if word:
            return word[:1].upper() + word[1:]
    return "?"


def _largest_fitting_font(
    draw: ImageDraw.ImageDraw, text: str, max_width: int
) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, str]:
    """The biggest font (down to a readable minimum) in which the word fits across the card."""
    for size in range(300, 71, -12):
        font, has_welsh = _font(size)
        shown = text if has_welsh else _ascii(text)
        if draw.textlength(shown, font=font) <= max_width:
            return font, shown
    font, has_welsh = _font(72)
    shown = text if has_welsh else _ascii(text)
    while len(shown) > 1 and draw.textlength(shown + "...", font=font) > max_width:
        shown = shown[:-1]
    return font, shown + "..."


def placeholder_photo(name: str, *, seed: int) -> bytes:
    """A plain coloured card with the item's first word in large white letters, for a demo
    catalogue that looks lived-in. The same name and seed always give the same JPEG."""
    width, height = PLACEHOLDER_SIZE
    colour = PLACEHOLDER_PALETTE[seed % len(PLACEHOLDER_PALETTE)]
    card = Image.new("RGB", PLACEHOLDER_SIZE, colour)
    draw = ImageDraw.Draw(card)
    font, shown = _largest_fitting_font(draw, _placeholder_word(name), int(width * 0.8))
    draw.text((width / 2, height / 2), shown, font=font, fill="white", anchor="mm")
    return _encoded(card)
