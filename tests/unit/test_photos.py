"""Uploaded photos: real pictures come out upright, in sRGB, small and without metadata; anything
else is refused with a stable code before it can cost memory or leak a location.

Every image is made here with Pillow or by hand (no binary fixtures), and each test first checks
that its input really has the property under test (GPS tags, a colour profile, a valid PNG...).
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import warnings
import zlib

import pytest
from PIL import ExifTags, Image, ImageFile, PngImagePlugin

from lending import errors
from lending.adapters import photos

SECRET = "SecretPhoneMaker"


# --- making images ------------------------------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(size: tuple[int, int]) -> Image.Image:
    """Noise compresses badly, so a truncated file is missing real image data."""
    return Image.merge("RGB", [Image.effect_noise(size, 80) for _ in range(3)])


def phone_exif() -> Image.Exif:
    """What a phone writes: the camera, where the photo was taken, and 'turn me 90° clockwise'."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = SECRET
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 28.0, 50.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (3.0, 10.0, 45.0)
    return exif


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def blank_bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of any size, built row by row: 20,000 x 20,000 is ~50 kB and never
    exists as a bitmap in the test."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then all-black pixels
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def swapped_primaries_profile() -> bytes:
    """A minimal ICC v2 RGB profile whose red primary is sRGB's green (and vice versa), with
    linear curves: after a correct conversion to sRGB, pure red pixels become green."""
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    white = (0.9642, 1.0, 0.8249)

    def xyz(values):
        return b"XYZ " + bytes(4) + b"".join(s15fixed16(v) for v in values)

    linear = b"curv" + bytes(4) + struct.pack(">IH", 1, 256) + bytes(2)
    tags = [
        (b"wtpt", xyz(white)),
        (b"rXYZ", xyz(green)),
        (b"gXYZ", xyz(red)),
        (b"bXYZ", xyz(blue)),
        (b"rTRC", linear),
        (b"gTRC", linear),
        (b"bTRC", linear),
    ]
    table, body = struct.pack(">I", len(tags)), b""
    offset = 128 + 4 + 12 * len(tags)
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    header = (
        struct.pack(">I", offset + len(body))
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(24)
        + bytes(4)
        + b"".join(s15fixed16(v) for v in white)
        + bytes(48)
    )
    assert len(header) == 128
    return header + table + body


def jpeg_markers(data: bytes) -> list[int]:
    """The segment markers of a JPEG up to the start of the image data."""
    assert data[:2] == b"\xff\xd8"
    markers, at = [], 2
    while True:
        assert data[at] == 0xFF
        marker = data[at + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: the compressed pixels follow
            return markers
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def close_to(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def refusal(data: bytes) -> errors.InvalidInput:
    with pytest.raises(errors.InvalidInput) as caught:
        photos.process_photo(data)
    return caught.value


@pytest.fixture
def decoding_calls(monkeypatch):
    """Records every attempt to verify or decode pixel data."""
    calls = []

    def spy(original, name):
        def recorded(self, *args, **kwargs):
            calls.append(name)
            return original(self, *args, **kwargs)

        return recorded

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy(ImageFile.ImageFile.load, "load"))
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "verify", spy(PngImagePlugin.PngImageFile.verify, "verify"))
    return calls


# --- photos that are accepted -------------------------------------------------------------------


@pytest.fixture(scope="module")
def phone_photo() -> bytes:
    """Stored sideways as the sensor saw it, 2400 x 1800, the top strip red, with EXIF, GPS,
    XMP and a comment naming the phone."""
    image = Image.new("RGB", (2400, 1800), (30, 60, 200))
    image.paste((220, 20, 20), (0, 0, 2400, 300))
    return encoded(
        image,
        "JPEG",
        exif=phone_exif(),
        comment=SECRET.encode(),
        xmp=f"<x:xmpmeta><maker>{SECRET}</maker></x:xmpmeta>".encode(),
    )


def test_the_phone_photo_really_carries_location_and_orientation(phone_photo):
    image = opened(phone_photo)
    exif = image.getexif()
    assert exif[ExifTags.Base.Orientation] == 6
    assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == (51.0, 28.0, 50.0)
    assert {"exif", "xmp", "comment"} <= image.info.keys()
    assert 0xE1 in jpeg_markers(phone_photo)


def test_a_phone_photo_comes_out_upright_and_smaller(phone_photo):
    photo = photos.process_photo(phone_photo)
    # Orientation 6 turns the 2400 x 1800 sensor image into a 1800 x 2400 portrait.
    assert (photo.width, photo.height) == (1200, 1600)
    assert (photo.thumb_width, photo.thumb_height) == (300, 400)
    full = opened(photo.full)
    assert full.size == (1200, 1600)
    assert opened(photo.thumbnail).size == (300, 400)
    # The sensor's top row is the right-hand edge once turned 90° clockwise.
    assert close_to(full.getpixel((1150, 800)), (220, 20, 20))
    assert close_to(full.getpixel((50, 800)), (30, 60, 200))


@pytest.mark.parametrize("which", ["full", "thumbnail"])
def test_no_metadata_survives(phone_photo, which):
    data = getattr(photos.process_photo(phone_photo), which)
    image = opened(data)
    assert dict(image.getexif()) == {}
    assert image.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert not {"exif", "xmp", "comment", "icc_profile"} & image.info.keys()
    assert b"Exif" not in data and b"http://ns.adobe.com/xap" not in data and SECRET.encode() not in data
    markers = jpeg_markers(data)
    # Only the JFIF header (APP0); no APP1-APP15 (EXIF, XMP, ICC, maker data) and no comment.
    assert [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE] == []


def test_the_output_is_a_progressive_rgb_jpeg(phone_photo):
    photo = photos.process_photo(phone_photo)
    assert photo.content_type == "image/jpeg"
    for data in (photo.full, photo.thumbnail):
        image = opened(data)
        assert (image.format, image.mode) == ("JPEG", "RGB")
        assert 0xC2 in jpeg_markers(data)  # SOF2: progressive


def test_a_large_jpeg_is_decoded_at_reduced_scale_yet_keeps_its_picture(monkeypatch):
    image = Image.new("RGB", (6400, 4800), (220, 20, 20))
    image.paste((30, 60, 200), (3200, 0, 6400, 4800))
    resized_from = []
    resize = Image.Image.resize

    def recording(self, *args, **kwargs):
        resized_from.append(self.size)
        return resize(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", recording)
    photo = photos.process_photo(encoded(image, "JPEG", quality=90))
    # libjpeg decoded it at half scale: still twice the output size, a quarter of the memory.
    assert resized_from[0] == (3200, 2400)
    full = opened(photo.full)
    assert full.size == (1600, 1200)
    assert close_to(full.getpixel((100, 600)), (220, 20, 20))
    assert close_to(full.getpixel((1500, 600)), (30, 60, 200))


def test_a_transparent_png_is_flattened_onto_white():
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (100, 50, 200, 150))
    photo = photos.process_photo(encoded(image, "PNG"))
    full = opened(photo.full)
    assert full.mode == "RGB"
    assert close_to(full.getpixel((5, 5)), (255, 255, 255), tolerance=8)
    assert close_to(full.getpixel((150, 100)), (200, 0, 0))


@pytest.mark.parametrize(
    ("size", "full", "thumbnail"),
    [
        ((120, 80), (120, 80), (120, 80)),
        ((1000, 500), (1000, 500), (400, 200)),
        ((600, 3200), (300, 1600), (75, 400)),
        ((1, 9000), (1, 1600), (1, 400)),
    ],
)
def test_sizes_shrink_to_fit_and_never_grow(size, full, thumbnail):
    photo = photos.process_photo(encoded(Image.new("RGB", size, (90, 140, 60)), "PNG"))
    assert (photo.width, photo.height) == full
    assert (photo.thumb_width, photo.thumb_height) == thumbnail
    assert opened(photo.full).size == full
    assert opened(photo.thumbnail).size == thumbnail


def test_a_colour_profile_is_applied_then_dropped():
    profile = swapped_primaries_profile()
    data = encoded(Image.new("RGB", (64, 64), (255, 0, 0)), "JPEG", icc_profile=profile, quality=95)
    assert opened(data).info["icc_profile"] == profile
    full = opened(photos.process_photo(data).full)
    assert "icc_profile" not in full.info
    assert close_to(full.getpixel((32, 32)), (0, 255, 0))


def test_a_broken_colour_profile_is_ignored():
    data = encoded(Image.new("RGB", (64, 64), (255, 0, 0)), "JPEG", icc_profile=b"not a profile" * 20)
    full = opened(photos.process_photo(data).full)
    assert close_to(full.getpixel((32, 32)), (255, 0, 0))


@pytest.mark.parametrize(
    ("fmt", "options"), [("WEBP", {"quality": 90}), ("GIF", {}), ("JPEG", {}), ("PNG", {"bits": 4})]
)
def test_each_accepted_format_is_read(fmt, options):
    data = encoded(Image.new("RGB", (90, 60), (200, 30, 30)), fmt, **options)
    assert opened(data).format == fmt
    full = opened(photos.process_photo(data).full)
    assert full.size == (90, 60)
    assert close_to(full.getpixel((45, 30)), (200, 30, 30))


def test_a_multi_picture_jpeg_from_a_phone_is_read_by_its_first_picture():
    first, second = Image.new("RGB", (80, 60), (200, 30, 30)), Image.new("RGB", (80, 60), (30, 30, 200))
    data = encoded(first, "MPO", save_all=True, append_images=[second])
    assert opened(data).format == "MPO"
    assert close_to(opened(photos.process_photo(data).full).getpixel((40, 30)), (200, 30, 30))


def test_an_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (80, 60), (200, 30, 30)), Image.new("RGB", (80, 60), (30, 30, 200))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert opened(data).n_frames == 2
    assert close_to(opened(photos.process_photo(data).full).getpixel((40, 30)), (200, 30, 30))


def test_a_cmyk_jpeg_comes_out_rgb():
    data = encoded(Image.new("CMYK", (80, 60), (0, 255, 255, 0)), "JPEG")
    full = opened(photos.process_photo(data).full)
    assert full.mode == "RGB"
    assert close_to(full.getpixel((40, 30)), (255, 0, 0))


def test_a_sixteen_bit_grey_png_keeps_its_tones():
    data = encoded(Image.new("I;16", (80, 60), 32768), "PNG")
    assert opened(data).mode == "I;16"
    assert close_to(opened(photos.process_photo(data).full).getpixel((40, 30)), (128, 128, 128), tolerance=4)


async def test_process_photo_async_works_off_the_event_loop(phone_photo, monkeypatch):
    threads = []
    process = photos.process_photo

    def recording(data):
        threads.append(threading.get_ident())
        return process(data)

    monkeypatch.setattr(photos, "process_photo", recording)
    photo = await photos.process_photo_async(phone_photo)
    assert (photo.width, photo.height) == (1200, 1600)
    assert threads and threads[0] != threading.get_ident()
    several = await asyncio.gather(*(photos.process_photo_async(phone_photo) for _ in range(3)))
    assert all(result == photo for result in several)


# --- refusals -----------------------------------------------------------------------------------


def test_empty_bytes_are_refused():
    problem = refusal(b"")
    assert problem.code == "photo_empty"
    assert problem.errors == {"photo": problem.detail}


def test_a_file_over_the_upload_limit_is_refused_before_reading_it(decoding_calls):
    problem = refusal(b"\xff\xd8\xff" + bytes(photos.MAX_UPLOAD_BYTES))
    assert problem.code == "photo_too_large"
    assert "15 MB" in str(problem.detail)
    assert decoding_calls == []


def test_the_upload_limit_is_where_it_says(monkeypatch):
    data = encoded(noise((64, 64)), "PNG")
    assert photos.process_photo(data).width == 64
    monkeypatch.setattr(photos, "MAX_UPLOAD_BYTES", len(data))
    assert photos.process_photo(data).width == 64
    monkeypatch.setattr(photos, "MAX_UPLOAD_BYTES", len(data) - 1)
    assert refusal(data).code == "photo_too_large"


def test_a_text_file_posing_as_a_jpeg_is_not_a_photo():
    problem = refusal(b"Dear volunteers,\nthe drill is back on the shelf.\n" * 20)
    assert problem.code == "photo_not_an_image"
    assert str(problem.detail) == "That file is not a photo. Choose a JPEG, PNG or WebP image."


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200), id="heic"),
        pytest.param(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(200), id="avif"),
        pytest.param(encoded(Image.new("RGB", (40, 30), "red"), "TIFF"), id="tiff"),
        pytest.param(encoded(Image.new("RGB", (40, 30), "red"), "BMP"), id="bmp"),
    ],
)
def test_other_image_formats_are_refused_as_unsupported(data):
    assert refusal(data).code == "photo_unsupported_format"


def test_the_bilevel_png_builder_makes_real_pngs():
    """So the refusals below are about size, not a malformed file."""
    data = blank_bilevel_png(64, 48)
    assert opened(data).size == (64, 48)
    assert photos.process_photo(data).width == 64


def test_too_many_pixels_are_refused_from_the_header_alone(decoding_calls):
    # 8,000 x 7,000 = 56 MP: over our limit, under Pillow's own bomb check.
    data = blank_bilevel_png(8000, 7000)
    assert 8000 * 7000 < Image.MAX_IMAGE_PIXELS
    problem = refusal(data)
    assert problem.code == "photo_too_many_pixels"
    assert "50 megapixels" in str(problem.detail)
    assert decoding_calls == []


def test_a_decompression_bomb_is_refused_without_decoding(decoding_calls):
    # 20,000 x 20,000 = 400 MP; decoded it would need 400 MB. The file is about 50 kB.
    data = blank_bilevel_png(20_000, 20_000)
    assert len(data) < 200_000
    assert refusal(data).code == "photo_too_many_pixels"
    assert decoding_calls == []


def test_a_pillow_bomb_warning_becomes_a_refusal(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    data = encoded(Image.new("RGB", (120, 100), "red"), "PNG")  # 12,000 px: Pillow warns
    with pytest.warns(Image.DecompressionBombWarning):
        assert refusal(data).code == "photo_too_many_pixels"
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert refusal(data).code == "photo_too_many_pixels"


@pytest.mark.parametrize(
    ("fmt", "options"), [("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}), ("WEBP", {}), ("GIF", {})]
)
def test_a_truncated_photo_is_refused_as_corrupt(fmt, options):
    data = encoded(noise((400, 300)), fmt, **options)
    assert photos.process_photo(data).width == 400
    assert refusal(data[: len(data) * 6 // 10]).code == "photo_corrupt"


def test_a_photo_cut_off_inside_its_header_is_corrupt_not_a_non_photo():
    data = encoded(noise((400, 300)), "PNG")
    assert refusal(data[:20]).code == "photo_corrupt"


def test_a_png_failing_its_checksums_is_refused_though_its_pixels_decode():
    data = bytearray(encoded(noise((200, 100)), "PNG"))
    chunk = data.index(b"IDAT")
    data[chunk + 4 + int.from_bytes(data[chunk - 4 : chunk], "big")] ^= 0xFF  # the chunk's CRC
    assert opened(bytes(data)).size == (200, 100)  # Pillow decodes it without complaint
    assert refusal(bytes(data)).code == "photo_corrupt"  # verify() does not


def test_a_damaged_png_chunk_is_refused():
    data = bytearray(encoded(noise((200, 100)), "PNG"))
    data[60] ^= 0xFF  # inside the image data: its checksum no longer matches
    assert refusal(bytes(data)).code == "photo_corrupt"


# --- placeholders ---------------------------------------------------------------------------------


def test_a_placeholder_is_a_jpeg_of_the_catalogue_size():
    image = opened(photos.placeholder_photo("Cordless drill", seed=3))
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (1200, 900))
    # The word is drawn in white across the middle of a coloured card.
    centre = image.crop((200, 350, 1000, 550)).convert("L")
    assert centre.getextrema()[1] > 240
    assert not close_to(image.getpixel((10, 10)), (255, 255, 255))


def test_placeholders_differ_by_seed_and_repeat_for_the_same_seed():
    assert photos.placeholder_photo("Ysgol", seed=0) != photos.placeholder_photo("Ysgol", seed=1)
    assert photos.placeholder_photo("Ysgol", seed=0) == photos.placeholder_photo("Ysgol", seed=0)
    corners = {opened(photos.placeholder_photo("Ysgol", seed=s)).getpixel((5, 5)) for s in range(8)}
    assert len(corners) == 8


@pytest.mark.parametrize(
    "name", ["Peiriant torri gwair", "Ŵy Pasg", "", "!!!", "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"]
)
def test_placeholders_cope_with_any_name(name):
    assert opened(photos.placeholder_photo(name, seed=1)).size == (1200, 900)


def test_the_placeholder_word_and_its_ascii_fallback():
    assert photos._placeholder_word("cordless drill") == "Cordless"
    assert photos._placeholder_word("(large) tent") == "Large"
    assert photos._placeholder_word("  ") == "?"
    assert photos._ascii("Ŵy Pasg…") == "Wy Pasg..."


def test_welsh_letters_are_drawn_not_replaced_by_boxes():
    font, has_welsh = photos._font(100)
    # With DejaVu Sans ŵ is drawn as is; with Pillow's ASCII-only font it is folded to w.
    shown = "ŵ" if has_welsh else photos._ascii("ŵ")
    # A missing glyph draws the same box as any other missing glyph.
    assert bytes(font.getmask(shown)) != bytes(font.getmask("\U0010fffd"))


def relative_luminance(hex_colour: str) -> float:
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


@pytest.mark.parametrize("colour", photos.PLACEHOLDER_PALETTE)
def test_white_text_is_readable_on_every_placeholder_colour(colour):
    assert 1.05 / (relative_luminance(colour) + 0.05) >= 4.5
