"""PDF loader: one unit per page, rendered and read page by page with pypdfium2.

The document is opened from its path, so pdfium reads the file lazily; each page is loaded,
rendered, read and closed before its unit is yielded, so a 1,000-page PDF costs one page of memory.
pdfium is not thread-safe: run PDF loaders in one thread per process.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from core.errors import (
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    InvalidInputError,
    MediaNotFoundError,
)
from core.media import describe_source, resize_to_budget
from indexer import ocr
from indexer.loaders.base import LoadOptions
from indexer.units import PAGE, Unit, Word

logger = logging.getLogger(__name__)

EXTENSIONS = (".pdf",)
# Resolution of the render OCR reads (a scanned page's own render is sized for the reranker).
OCR_DPI = 200

# Titles that PDF writers fill in by default (reportlab writes "untitled"); they name nothing.
_PLACEHOLDER_TITLE = re.compile(r"^(untitled|no title|none|null)([\s_-]*\d*)?$", re.IGNORECASE)
# Control characters pdfium may leave in a text layer (e.g. \x02 for a soft hyphen), except \t and \n.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A word of the text layer: a run of characters that are neither white space nor control characters.
_LAYER_WORD = re.compile(r"[^\s\x00-\x1f\x7f]+")
# The page is mapped onto a square of this many device pixels to read its transform precisely.
_DEVICE = 1_000_000


def _open(path: Path, label: str) -> Any:
    """Open ``path`` with pdfium, mapping its load errors to typed document errors.

    ``pypdfium2.PdfDocument(path)`` treats a valid 0-page file as a failure and reports pdfium's *last*
    error, which is stale (a 0-page PDF opened after an encrypted one reads "Incorrect password") and
    leaks the loaded handle. So the raw loader is called (it is what ``PdfDocument(path)`` calls, and
    reads the file just as lazily) and the handle is wrapped only once it is known to be good.
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    if not path.is_file():
        raise MediaNotFoundError(f"PDF file not found: {label}")
    # The same path encoding pypdfium2 uses: pdfium wants UTF-8 on Windows, raw bytes elsewhere.
    encoded = str(path).encode("utf-8") if sys.platform == "win32" else os.fsencode(path)
    handle = pdfium_c.FPDF_LoadDocument(encoded + b"\x00", None)
    if not handle:
        # Only a failed load sets the last error, so here it is current.
        code = pdfium_c.FPDF_GetLastError()
        if code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise EncryptedDocumentError(
                f"{label}: the PDF is password protected; decrypt it first (e.g. `qpdf --decrypt "
                f"--password=... in.pdf out.pdf`) and index the decrypted copy"
            )
        if code == pdfium_c.FPDF_ERR_FILE:
            raise MediaNotFoundError(f"{label}: the PDF file cannot be opened or read")
        reason = "not a PDF, or damaged beyond repair" if code == pdfium_c.FPDF_ERR_FORMAT else "unreadable"
        raise CorruptDocumentError(f"{label}: cannot read the PDF ({reason}; pdfium error {code})")
    return pdfium.PdfDocument(handle)


def _title(pdf: Any, path: Path) -> str:
    title = " ".join(pdf.get_metadata_value("Title").split())
    if title and not _PLACEHOLDER_TITLE.match(title):
        return title
    return path.stem


def _render_scale(width_pt: float, height_pt: float, max_pixels: int) -> float:
    """The scale at which a page of this size in points renders to at most ``max_pixels`` pixels.

    pypdfium2 renders ``ceil(side * scale)`` pixels per side; the scale is fitted to whole pixel
    counts that fit the budget, so the render is never bigger than the budget.
    """
    ideal = math.sqrt(max_pixels / (width_pt * height_pt))
    width, height = max(1, math.floor(width_pt * ideal)), max(1, math.floor(height_pt * ideal))
    # A hair below the exact ratio so floating-point noise cannot make ceil() round up a pixel.
    return min(width / width_pt, height / height_pt) * (1 - 1e-9)


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def _page_unit(pdf: Any, index: int, title: str, options: LoadOptions, label: str) -> Unit:
    from pypdfium2 import PdfiumError

    number = index + 1
    try:
        page = pdf.get_page(index)
    except PdfiumError as exc:
        raise CorruptDocumentError(f"{label}: page {number} cannot be read ({exc})") from exc
    try:
        width_pt, height_pt = page.get_size()  # in points, after the page's /Rotate
        if not (width_pt > 0 and height_pt > 0 and math.isfinite(width_pt * height_pt)):
            raise CorruptDocumentError(f"{label}: page {number} has no size ({width_pt}x{height_pt} pt)")
        scale = _render_scale(width_pt, height_pt, options.image_max_pixels)
        bitmap = page.render(scale=scale)
        try:
            rendered = bitmap.to_pil()  # BGR bitmap: PIL converts into its own buffer, nothing is shared
        finally:
            bitmap.close()
        textpage = page.get_textpage()
        try:
            # Bounded to the page box: text placed off the visible page is left out, and unlike
            # get_text_range() characters outside the BMP (emoji, rare CJK) survive.
            text = _clean_text(textpage.get_text_bounded())
            layer_words = layer_words_of(page, textpage) if text else ()
        finally:
            textpage.close()
        scan = None
        if options.ocr == "always" or (options.ocr == "auto" and not ocr.usable_text_layer(text)):
            # OCR reads a render of its own at OCR_DPI (bounded by OCR_MAX_PIXELS): small print
            # read at the reranker's budget (about 140 dpi for A4) loses the spaces between words.
            ocr_scale = min(OCR_DPI / 72, _render_scale(width_pt, height_pt, ocr.OCR_MAX_PIXELS))
            if ocr_scale <= scale * 1.05:
                scan = rendered
            else:
                bitmap = page.render(scale=ocr_scale)
                try:
                    scan = bitmap.to_pil()
                finally:
                    bitmap.close()
    except PdfiumError as exc:
        raise CorruptDocumentError(f"{label}: page {number} cannot be rendered ({exc})") from exc
    finally:
        page.close()
    try:
        image = resize_to_budget(
            rendered, min_pixels=options.image_min_pixels, max_pixels=options.image_max_pixels, factor=32
        )
    except InvalidInputError as exc:  # e.g. a 1 x 300 inch banner page: over the aspect ratio limit
        raise DocumentError(f"{label}: page {number} cannot be indexed: {exc}") from exc
    words: tuple[Word, ...] = layer_words
    if scan is not None:
        read = ocr.recognize(scan)
        del scan
        if read.lines:
            if options.ocr == "always":  # the layer's words, then those of the lines it lacks
                words = layer_words + tuple(w for line in ocr.new_lines(text, read) for w in line.words)
                text = ocr.merge_text(text, read)
            else:
                text, words = read.text, read.words
            logger.debug("%s: page %d: OCR read %d words", label, number, len(read.words))
    return Unit(index=index, modality=PAGE, title=title, text=text, image=image, page=number, words=words)


def layer_words_of(page: Any, textpage: Any) -> tuple[Word, ...]:
    """The words of a page's text layer with their boxes, normalised to the rendered page.

    A word is a run of characters between white space (pdfium inserts the spaces and line breaks a
    layout implies); its box is the union of its characters' loose boxes (the font's full height, so
    the words of a line share a height), mapped the way the page is rendered (crop box, ``/Rotate``)
    to 0..1 with the origin top left. Words whose centre lies off the page are left out, like the
    text ``get_text_bounded`` leaves out.
    """
    import ctypes

    import pypdfium2.raw as pdfium_c

    count = textpage.count_chars()
    if count <= 0:
        return ()
    text, exact = _layer_chars(textpage, count)
    a, b, c, d, e, f = _page_transform(page)
    rect = pdfium_c.FS_RECTF()
    get_box = pdfium_c.FPDFText_GetLooseCharBox
    raw = textpage.raw
    words: list[Word] = []
    for match in _LAYER_WORD.finditer(text):
        left = bottom = math.inf
        right = top = -math.inf
        for index in range(match.start(), match.end()):
            if not get_box(raw, index, ctypes.byref(rect)):
                continue
            left, right = min(left, rect.left), max(right, rect.right)
            bottom, top = min(bottom, rect.bottom), max(top, rect.top)
        if not (math.isfinite(left) and math.isfinite(top)):
            continue
        xs = [a * x + b * y + e for x, y in ((left, bottom), (right, top))]
        ys = [c * x + d * y + f for x, y in ((left, bottom), (right, top))]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        if not (0 <= (x0 + x1) / 2 <= 1 and 0 <= (y0 + y1) / 2 <= 1):
            continue
        word = match.group()
        if not exact:  # surrogate halves from pdfium, paired again
            word = word.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        words.append((word, *(round(min(1.0, max(0.0, v)), 4) for v in (x0, y0, x1, y1))))
    return tuple(words)


def _layer_chars(textpage: Any, count: int) -> tuple[str, bool]:
    """The text page's characters, one per character index; and whether they came out exactly."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    buffer = ctypes.create_string_buffer((count + 1) * 2)
    written = pdfium_c.FPDFText_GetText(
        textpage.raw, 0, count, ctypes.cast(buffer, ctypes.POINTER(ctypes.c_ushort))
    )
    text = buffer.raw[: max(0, written - 1) * 2].decode("utf-16-le", "replace")
    if len(text) == count:
        return text, True
    # Characters outside the BMP take two UTF-16 units: read them one index at a time instead.
    codes = (pdfium_c.FPDFText_GetUnicode(textpage.raw, i) for i in range(count))
    return "".join(chr(u) if 0 < u < 0x110000 else "\ufffd" for u in codes), False


def _page_transform(page: Any) -> tuple[float, float, float, float, float, float]:
    """``(a, b, c, d, e, f)`` with ``nx = a*x + b*y + e``, ``ny = c*x + d*y + f``: page space (points,
    origin bottom left) to the rendered page normalised (0..1, origin top left), as pdfium renders it.
    """
    import ctypes

    import pypdfium2.raw as pdfium_c

    out_x, out_y = ctypes.c_int(), ctypes.c_int()

    def device(x: float, y: float) -> tuple[float, float]:
        pdfium_c.FPDF_PageToDevice(
            page.raw, 0, 0, _DEVICE, _DEVICE, 0, x, y, ctypes.byref(out_x), ctypes.byref(out_y)
        )
        return out_x.value / _DEVICE, out_y.value / _DEVICE

    span = 1000.0
    ox, oy = device(0.0, 0.0)
    xx, xy = device(span, 0.0)
    yx, yy = device(0.0, span)
    return (xx - ox) / span, (yx - ox) / span, (xy - oy) / span, (yy - oy) / span, ox, oy


def load_pdf(path: Path, options: LoadOptions, *, pages: Collection[int] | None = None) -> Iterator[Unit]:
    """Yield one unit per page of a PDF: the page rendered to the pixel budget, and its text layer.

    Each page is rendered at the scale that makes it fit ``options.image_max_pixels`` (computed from
    its size in points, so nothing is rendered big and shrunk), then sized with the reranker's rule
    (sides multiples of 32). Pages are read one at a time and the document is closed when the
    generator finishes or is closed.

    Args:
        path: the PDF file.
        options: pixel budget of a page render.
        pages: only these 1-based page numbers (those past the last page are ignored); None: all.

    Yields:
        Units of modality ``"page"``, with ``page`` 1-based, ``text`` the page's text layer (for a
        scan, what OCR read; see ``options.ocr``), ``words`` its words with their boxes (from the
        layer's character boxes, or from OCR) and ``title`` the PDF's metadata Title (else the file
        name without extension).

    Raises:
        EncryptedDocumentError: the PDF needs a password.
        CorruptDocumentError: not a PDF, damaged, or a page cannot be read.
        EmptyDocumentError: the PDF has no pages.
        MediaNotFoundError: the file does not exist or cannot be opened.
    """
    path = Path(path)
    label = describe_source(path)
    pdf = _open(path, label)
    try:
        count = len(pdf)
        if count == 0:
            raise EmptyDocumentError(f"{label}: the PDF has no pages")
        title = _title(pdf, path)
        logger.debug("%s: %d pages", label, count)
        chosen = range(count) if pages is None else sorted({p - 1 for p in pages if 1 <= p <= count})
        for index in chosen:
            yield _page_unit(pdf, index, title, options, label)
    finally:
        pdf.close()
