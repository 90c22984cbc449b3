"""Label-sheet benchmark: 1,000 item stickers as an L7160 PDF, beside what the two libraries
underneath need for the same work, measured in the same run so the ratio survives a noisy
machine. In process, no network; the whole run stops itself after --budget seconds.

    python bench/labels.py [--count 1000] [--repeat 3] [--budget 180]

Prints, for --count codes (median of --repeat runs):
  * qrcode with automatic mask choice vs the fixed mask ``lending.adapters.qr`` uses;
  * the reference limit: raw qrcode matrices (same error correction and mask) plus a bare
    fpdf2 document drawing the same number of rectangles on the same number of pages;
    also a bare fpdf2 page with 1,000 rectangles, for scale;
  * ``render_labels`` for each layout, its PDF size, and the ratio to the limit;
  * the event loop's worst lateness while ``render_labels_async`` renders the batch (a 1 ms
    ticker), which shows the work is off the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import time
from collections.abc import Callable

import qrcode
from fpdf import FPDF
from fpdf.enums import RenderStyle

from lending import codes
from lending.adapters import qr
from lending.adapters.labels import TEMPLATES, Label, render_labels, render_labels_async

BASE_URL = "https://lib.example.org"


def median_seconds(work: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def sample_labels(count: int) -> list[Label]:
    rng = random.Random(1)
    made = []
    for index in range(count):
        code = "".join(rng.choice(codes.ALPHABET) for _ in range(8))
        made.append(Label(code=code, name=f"Cordless drill no. {index}", url=qr.item_url(BASE_URL, code)))
    return made


def raw_matrices(urls: list[str], mask_pattern: int | None) -> int:
    """qrcode alone, as its README shows it, with our error correction; returns dark runs."""
    runs = 0
    for url in urls:
        symbol = qrcode.QRCode(error_correction=qr.ERROR_CORRECTION, border=0, mask_pattern=mask_pattern)
        symbol.add_data(url)
        symbol.make()
        runs += len(qr.dark_runs(symbol.modules))
    return runs


def bare_fpdf(rectangles: int, pages: int) -> int:
    """fpdf2 alone: ``rectangles`` small filled rectangles spread over ``pages`` A4 pages."""
    pdf = FPDF(unit="mm", format="A4")
    per_page = -(-rectangles // pages)
    for index in range(rectangles):
        if index % per_page == 0:
            pdf.add_page()
        pdf.rect(10 + index % 150, 10 + (index // 150) % 270, 0.9, 0.9, style=RenderStyle.F)
    return len(pdf.output())


async def worst_loop_lateness(labels: list[Label]) -> tuple[float, float]:
    """Render in the worker thread while a 1 ms ticker runs; (render seconds, worst lateness)."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - before - 0.001)

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    await render_labels_async(labels, "L7160")
    elapsed = time.perf_counter() - start
    done.set()
    await task
    return elapsed, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget", type=int, default=180, help="stop after this many seconds")
    args = parser.parse_args()
    signal.alarm(args.budget)  # bounded: SIGALRM ends the run if the machine is far too slow

    labels = sample_labels(args.count)
    urls = [label.url for label in labels]
    n = args.count
    print(f"{n} item URLs like {urls[0]} (QR version {(len(qr.qr_matrix(urls[0])) - 17) // 4}-M)\n")

    auto, _ = median_seconds(lambda: raw_matrices(urls, None), args.repeat)
    fixed, runs = median_seconds(lambda: raw_matrices(urls, qr.MASK_PATTERN), args.repeat)
    ours_matrix, _ = median_seconds(lambda: [qr.qr_matrix(url) for url in urls], args.repeat)
    print("QR matrices")
    print(f"  qrcode, automatic mask      {auto:7.3f} s")
    print(f"  qrcode, fixed mask {qr.MASK_PATTERN}        {fixed:7.3f} s   ({auto / fixed:.1f}x faster)")
    print(f"  lending.adapters.qr.qr_matrix {ours_matrix:6.3f} s")

    layout = TEMPLATES["L7160"]
    sheets = -(-n // layout.per_page)
    same_work, _ = median_seconds(lambda: bare_fpdf(runs, sheets), args.repeat)
    thousand, _ = median_seconds(lambda: bare_fpdf(1000, 1), args.repeat)
    limit = fixed + same_work
    print("\nReference limit (same run)")
    print(f"  bare fpdf2, 1,000 rectangles on one page          {thousand:7.3f} s")
    print(f"  bare fpdf2, {runs} rectangles on {sheets} pages        {same_work:7.3f} s")
    print(f"  limit = fixed-mask matrices + bare fpdf2 same work {limit:7.3f} s")

    print("\nrender_labels")
    for name in TEMPLATES:
        seconds, pdf = median_seconds(lambda name=name: render_labels(labels, name), args.repeat)
        print(
            f"  {name:14s} {seconds:7.3f} s  {len(pdf) / 1024:8.0f} KiB  "
            f"{seconds / n * 1000:5.2f} ms/label  ratio to limit {seconds / limit:4.2f}"
        )

    elapsed, worst = asyncio.run(worst_loop_lateness(labels))
    print(f"\nrender_labels_async, L7160: {elapsed:.3f} s; worst event-loop lateness {worst * 1000:.1f} ms")


if __name__ == "__main__":
    main()
