"""Render a PDF's pages to PNG images: ``python -m rooms.render SRC.pdf OUTDIR [--width 1280]``.

Runs as its own process, started by :mod:`rooms.uploads`: PDFium's rendering is CPU-bound C
that would stall the web process's event loop. It imports no Flask and no app code.

Output, one line each, flushed as it happens (the parent reads it as progress)::

    pages N        once the document is open
    page I         after OUTDIR/I.png is complete (I counts from 1)

On failure it prints one line saying why on stderr and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import resource
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

DEFAULT_WIDTH = 1280
MAX_PAGES = 500
CPU_SECONDS = 300  # a PDF that takes longer is hostile or broken
MAX_ASPECT = 4  # a page at most 4 times taller than wide; taller ones render narrower

# PDFium's document-loading error codes -> what to tell the presenter
LOAD_ERRORS = {
    pdfium_c.FPDF_ERR_PASSWORD: "the PDF is password-protected; upload an unprotected copy",
    pdfium_c.FPDF_ERR_SECURITY: "the PDF uses an unsupported security handler",
}
UNREADABLE = "the file is damaged or not a PDF"


class RenderError(Exception):
    """The document cannot be rendered; the message is fit to show the presenter."""


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    """Encode 8-bit RGB ``rows`` (``height`` rows of ``width * 3`` bytes) as a PNG file."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    pixels = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every scanline
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels, 6))
        + chunk(b"IEND", b"")
    )


def open_pdf(src: Path) -> pdfium.PdfDocument:
    """Open ``src``, turning PDFium's load errors into a sentence for the presenter."""
    try:
        return pdfium.PdfDocument(src)
    except pdfium.PdfiumError as error:
        raise RenderError(LOAD_ERRORS.get(error.err_code, UNREADABLE)) from None
    except OSError:
        raise RenderError("the uploaded file could not be read") from None


def render_page(page: pdfium.PdfPage, width: int) -> bytes:
    """One page as PNG bytes, ``width`` pixels wide (narrower only for very tall pages)."""
    page_width, page_height = page.get_size()
    scale = min(width / page_width, width * MAX_ASPECT / page_height)
    bitmap = page.render(
        scale=scale, rev_byteorder=True, force_bitmap_format=pdfium_c.FPDFBitmap_BGR
    )  # 3 bytes per pixel, in RGB order
    data = memoryview(bitmap.buffer).cast("B")
    row = bitmap.width * 3
    rows = [bytes(data[y * bitmap.stride : y * bitmap.stride + row]) for y in range(bitmap.height)]
    return png(bitmap.width, bitmap.height, rows)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either absent or complete, never half-written."""
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)


def render(
    src: Path, outdir: Path, width: int, say: Callable[[str], None], max_pages: int = MAX_PAGES
) -> int:
    """Render every page of ``src`` to ``outdir/{i}.png``, reporting progress through ``say``.

    :returns: the number of pages.
    :raises RenderError: for an unreadable, protected, empty or too long document.
    """
    pdf = open_pdf(src)
    try:
        count = len(pdf)
        if count == 0:
            raise RenderError("the PDF has no pages")
        if count > max_pages:
            raise RenderError(f"the PDF has {count} pages; at most {max_pages} are allowed")
        say(f"pages {count}")
        outdir.mkdir(parents=True, exist_ok=True)
        for number in range(1, count + 1):
            try:
                image = render_page(pdf[number - 1], width)
            except pdfium.PdfiumError:
                raise RenderError(f"page {number} could not be rendered") from None
            write_atomically(outdir / f"{number}.png", image)
            say(f"page {number}")
        return count
    finally:
        pdf.close()


def limit_cpu(seconds: int) -> None:
    """Have the kernel stop this process if a document keeps it busy for too long."""
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))


def say(line: str) -> None:
    print(line, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rooms.render", description="Render a PDF's pages to PNG images."
    )
    parser.add_argument("src", type=Path, help="the PDF file")
    parser.add_argument("outdir", type=Path, help="where to write 1.png, 2.png, ...")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH, help="image width in pixels")
    parser.add_argument("--max-pages", type=int, default=MAX_PAGES)
    parser.add_argument("--cpu-seconds", type=int, default=CPU_SECONDS)
    args = parser.parse_args(argv)
    if not 16 <= args.width <= 8192:
        parser.error("--width must be between 16 and 8192")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_cpu(args.cpu_seconds)
    try:
        render(args.src, args.outdir, args.width, say, args.max_pages)
    except RenderError as error:
        print(error, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
