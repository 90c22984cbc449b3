"""A fake camera for browser tests: pictures turned into the video file Chromium plays as a webcam.

Chromium started with ``--use-fake-ui-for-media-stream --use-fake-device-for-media-stream
--use-file-for-fake-video-capture=FILE.y4m`` answers ``getUserMedia`` with FILE, looped, and no
permission prompt. The file is YUV4MPEG2 (y4m): a text header line, then each frame as ``FRAME\\n``
followed by the raw Y plane and the Cb and Cr planes at half width and half height (4:2:0).

Pillow only (numpy is not a dependency): ``Image.convert("YCbCr")`` gives full-range BT.601, which
is what ``C420jpeg`` declares, and the chroma planes are halved with ``Image.resize``.

Camera access needs a secure context: serve the page from ``http://127.0.0.1`` or
``http://localhost`` (or https).
"""

from __future__ import annotations

from pathlib import Path

import qrcode
from PIL import Image

WHITE = (255, 255, 255)


def qr_image(text: str, box_size: int = 8) -> Image.Image:
    """A black-on-white QR code for ``text`` with the standard four-module quiet zone, in RGB."""
    code = qrcode.QRCode(box_size=box_size, border=4, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")


def _frame(image: Image.Image, size: tuple[int, int], margin: float) -> Image.Image:
    """``image`` scaled to fit inside ``size`` less a margin on every side, centred on white."""
    width, height = size
    image = image.convert("RGB")
    room_w = max(1, round(width * (1 - 2 * margin)))
    room_h = max(1, round(height * (1 - 2 * margin)))
    scale = min(room_w / image.width, room_h / image.height)
    fitted = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Enlarging: keep module edges sharp, as a printed label is. Shrinking: average properly.
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    scaled = image.resize(fitted, resample)
    canvas = Image.new("RGB", size, WHITE)
    canvas.paste(scaled, ((width - fitted[0]) // 2, (height - fitted[1]) // 2))
    return canvas


def write_y4m(
    image: Image.Image, path: str | Path, *, size: tuple[int, int] = (640, 480), frames: int = 20, margin: float = 0.1
) -> Path:
    """Write ``image``, centred on white and scaled to fit ``size`` with ``margin`` (a fraction of
    each side) all round, as ``frames`` identical frames of a 10 fps y4m video; return the path."""
    width, height = size
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise ValueError(f"4:2:0 video needs an even, positive width and height, not {size}")
    if frames < 1:
        raise ValueError("a video needs at least one frame")
    y, cb, cr = _frame(image, size, margin).convert("YCbCr").split()
    half = (width // 2, height // 2)
    # BOX averages each 2x2 block, the usual way to subsample chroma.
    frame = b"".join(
        [
            b"FRAME\n",
            y.tobytes(),
            cb.resize(half, Image.Resampling.BOX).tobytes(),
            cr.resize(half, Image.Resampling.BOX).tobytes(),
        ]
    )
    path = Path(path)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for _ in range(frames):
            out.write(frame)
    return path
