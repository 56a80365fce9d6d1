"""Office documents: ``.docx .pptx .xlsx`` (and ``.odt .odp .ods .rtf .doc .ppt .xls`` through LibreOffice).

Two ways to read one, chosen by ``options.office_converter``:

- **Pages** (LibreOffice's ``soffice`` found): the file is converted headless to PDF, in a throwaway
  user profile (``-env:UserInstallation``; a fresh profile trusts no macro location, so no macro
  runs), killed with its whole process group after ``options.office_timeout_s``, one conversion at a
  time per process; the PDF's pages are then indexed by the PDF loader (rendered pixels plus text
  layer, OCR where a page has none). A presentation's pages are titled by slide number.
- **Text** (no LibreOffice): the text is read with python-docx, python-pptx or openpyxl and indexed as
  text chunks, one section at a time, each titled ``"<document> — <heading | slide N: title | sheet
  name>"``. OpenDocument, RTF and the old binary formats (``.doc .ppt .xls``) need LibreOffice and
  are refused with a message that says so.

Whether LibreOffice was found is part of the load options and so of the index fingerprint: once it is
installed, office files are indexed again, as pages.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.errors import (
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    MediaNotFoundError,
    MediaTooLargeError,
    MMSearchError,
    UnsupportedFormatError,
)
from core.media import describe_source
from indexer.loaders.base import LoadOptions
from indexer.loaders.pdf import load_pdf
from indexer.loaders.text import chunk_spans
from indexer.units import TEXT, Unit

logger = logging.getLogger(__name__)

TEXT_EXTENSIONS = (".docx", ".pptx", ".xlsx")
CONVERT_ONLY_EXTENSIONS = (".odt", ".odp", ".ods", ".rtf", ".doc", ".ppt", ".xls")
# Converted pages of these are titled "<document> — slide N" (a slide is one PDF page).
PRESENTATION_EXTENSIONS = (".pptx", ".odp", ".ppt")
EXTENSIONS = TEXT_EXTENSIONS + CONVERT_ONLY_EXTENSIONS

INSTALL_HINT = (
    "install LibreOffice (e.g. `apt-get install libreoffice-core libreoffice-writer libreoffice-impress "
    "libreoffice-calc`) or set MMSEARCH_OFFICE_CONVERTER to its soffice program"
)
# OLE2 compound file: how a password-protected .docx/.pptx/.xlsx is stored (or an old .doc/.xls).
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_told_pages = False
# LibreOffice runs one conversion at a time per process: each start costs a few hundred MB and a
# second instance in parallel on a small machine only slows both.
_CONVERTING = threading.Lock()

# A section: its title ("" for text before the first heading) and its text.
Section = tuple[str, str]


def find_converter(name: str | None) -> str | None:
    """The full path of LibreOffice's ``soffice`` given as a name on PATH or a path; None if missing."""
    if not name:
        return None
    return shutil.which(name)


def load_office(path: Path, options: LoadOptions) -> Iterator[Unit]:
    """Yield an office document's units: PDF pages through LibreOffice, else text chunks.

    Args:
        path: the office file.
        options: ``office_converter`` (None: text only), ``office_timeout_s``, and what the PDF and
            text loaders take.

    Yields:
        Page units (converted) or text units titled by section.

    Raises:
        EncryptedDocumentError: password protected.
        CorruptDocumentError: damaged, not what its extension says, or the conversion failed.
        DocumentError: the conversion timed out.
        UnsupportedFormatError: an OpenDocument or RTF file without LibreOffice.
        EmptyDocumentError: no text.
        MediaTooLargeError: over the byte limit (or a zip that inflates past it many times).
    """
    path = Path(path)
    label = describe_source(path)
    if not path.is_file():
        raise MediaNotFoundError(f"office file not found: {label}")
    size = path.stat().st_size
    if size > options.policy.max_bytes:
        raise MediaTooLargeError(f"{label}: {size} bytes; the limit is {options.policy.max_bytes}")
    if options.office_converter:
        if path.suffix.lower() in TEXT_EXTENSIONS:
            _check_not_encrypted(path, label)  # LibreOffice would only say it cannot load it
        yield from _load_converted(path, options, label)
        return
    suffix = path.suffix.lower()
    if suffix in CONVERT_ONLY_EXTENSIONS:
        raise UnsupportedFormatError(
            f"{label}: '{suffix}' files are indexed through LibreOffice; {INSTALL_HINT}"
        )
    _tell_pages_once()
    _check_package(path, label, options)
    reader = _READERS[suffix]
    try:
        title, sections = reader(path)
    except MMSearchError:
        raise
    except Exception as exc:  # the parsers raise anything from KeyError to lxml errors on bad input
        raise CorruptDocumentError(
            f"{label}: cannot read the {suffix[1:]} file ({type(exc).__name__}: {exc})"
        ) from exc
    yield from _section_units(title or path.stem, sections, options, label)


def _tell_pages_once() -> None:
    global _told_pages
    if not _told_pages:
        logger.info(
            "LibreOffice not found: office files are indexed as text only, without their pages' "
            "pixels; to index their pages, %s",
            INSTALL_HINT,
        )
        _told_pages = True


def _check_not_encrypted(path: Path, label: str) -> None:
    """A .docx/.pptx/.xlsx is a zip; a password-protected one is an OLE2 container instead."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head == _OLE_MAGIC:
        raise EncryptedDocumentError(
            f"{label}: the file is password protected (or an old binary Office file renamed); "
            f"save an unprotected copy and index that"
        )


def _check_package(path: Path, label: str, options: LoadOptions) -> None:
    _check_not_encrypted(path, label)
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptDocumentError(f"{label}: not an Office file, or damaged ({exc})") from exc
    limit = 8 * options.policy.max_bytes
    if inflated > limit:
        raise MediaTooLargeError(f"{label}: inflates to {inflated} bytes; the limit is {limit}")


def _section_units(title: str, sections: list[Section], options: LoadOptions, label: str) -> Iterator[Unit]:
    # Spans index the document's text: the sections' texts joined by blank lines.
    index, offset = 0, 0
    for heading, text in sections:
        if text.strip():
            spans = chunk_spans(text, options.chunk_tokens, options.chunk_overlap, options.token_spans)
            unit_title = f"{title} — {heading}" if heading and heading != title else title
            for start, end in spans:
                yield Unit(
                    index=index,
                    modality=TEXT,
                    title=unit_title,
                    text=text[start:end],
                    char_start=offset + start,
                    char_end=offset + end,
                )
                index += 1
        offset += len(text) + 2
    if index == 0:
        raise EmptyDocumentError(f"{label}: the document has no text to index")


# --------------------------------------------------------------------------------------------------
# Text readers
# --------------------------------------------------------------------------------------------------


def _flat(text: str | None) -> str:
    return " ".join(str(text or "").split())


def _read_docx(path: Path) -> tuple[str, list[Section]]:
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    title = _flat(document.core_properties.title)
    sections: list[Section] = []
    heading, lines = "", []

    def flush() -> None:
        if lines or heading:
            sections.append((heading, "\n".join(lines)))

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:  # a merged cell comes once per grid column it spans
                    text = _flat(cell.text)
                    if text and (not cells or cells[-1] != text):
                        cells.append(text)
                if cells:
                    lines.append(" | ".join(cells))
            continue
        text = block.text.strip()
        style = (block.style.name if block.style is not None else "") or ""
        if text and (style.startswith("Heading") or style == "Title"):
            flush()
            heading, lines = _flat(text), [text]
            if style == "Title" and not title:
                title = heading
        elif text:
            lines.append(text)
    flush()
    return title, sections


def _shape_texts(shapes: Any) -> Iterator[str]:
    for shape in shapes:
        if getattr(shape, "shape_type", None) is not None and hasattr(shape, "shapes"):  # a group
            yield from _shape_texts(shape.shapes)
        if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
            yield shape.text_frame.text.strip()
        if getattr(shape, "has_table", False):
            for row in shape.table.rows:
                cells = [_flat(cell.text) for cell in row.cells if _flat(cell.text)]
                if cells:
                    yield " | ".join(cells)


def _read_pptx(path: Path) -> tuple[str, list[Section]]:
    import pptx

    deck = pptx.Presentation(str(path))
    title = _flat(deck.core_properties.title)
    sections: list[Section] = []
    for number, slide in enumerate(deck.slides, start=1):
        heading_shape = slide.shapes.title
        heading = _flat(heading_shape.text_frame.text) if heading_shape is not None else ""
        parts = list(_shape_texts(slide.shapes))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                parts.append(notes)
        sections.append((f"slide {number}: {heading}" if heading else f"slide {number}", "\n".join(parts)))
    return title, sections


def _read_xlsx(path: Path) -> tuple[str, list[Section]]:
    import openpyxl

    # read_only streams the sheet XML; reset_dimensions ignores a sheet's declared used range (it
    # can claim a million rows by 16,384 columns), so only the cells present are visited and a
    # missing row costs nothing.
    book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        title = _flat(book.properties.title)
        sections: list[Section] = []
        for sheet in book.worksheets:
            if hasattr(sheet, "reset_dimensions"):
                sheet.reset_dimensions()
            lines = []
            for row in sheet.iter_rows(values_only=True):
                cells = [_flat(value) for value in row if value is not None and _flat(value)]
                if cells:
                    lines.append(" | ".join(cells))
            sections.append((f"sheet {sheet.title}", "\n".join(lines)))
        return title, sections
    finally:
        book.close()


_READERS: dict[str, Callable[[Path], tuple[str, list[Section]]]] = {
    ".docx": _read_docx,
    ".pptx": _read_pptx,
    ".xlsx": _read_xlsx,
}


# --------------------------------------------------------------------------------------------------
# LibreOffice
# --------------------------------------------------------------------------------------------------


def convert_to_pdf(path: Path, converter: str, outdir: Path, timeout_s: float, label: str) -> Path:
    """Convert an office file to PDF with LibreOffice, headless, in a fresh profile under ``outdir``.

    Args:
        path: the office file.
        converter: the ``soffice`` program.
        outdir: an empty folder that receives the PDF and the throwaway profile.
        timeout_s: the longest the conversion may take; then the converter and its children are killed.
        label: names the file in errors.

    Returns:
        The PDF's path.

    Raises:
        DocumentError: the conversion timed out.
        CorruptDocumentError: the converter failed or wrote no PDF.
    """
    profile = outdir / "profile"
    command = [
        converter,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless",
        "--invisible",
        "--norestore",
        "--nolockcheck",
        "--nodefault",
        "--nologo",
        "--convert-to",
        "pdf",
        "--outdir",
        str(outdir),
        str(path),
    ]
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout kills every child too
            env={**os.environ, "HOME": str(outdir)},
        )
    except OSError as exc:
        raise CorruptDocumentError(f"{label}: cannot start the converter {converter} ({exc})") from exc
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise DocumentError(
            f"{label}: the LibreOffice conversion to PDF timed out after {timeout_s:g} s and was "
            f"killed (raise MMSEARCH_OFFICE_TIMEOUT_S for very large files)"
        ) from None
    except BaseException:
        _kill_group(process)
        raise
    pdf = outdir / f"{path.stem}.pdf"
    if process.returncode != 0 or not pdf.is_file():
        tail = output.decode("utf-8", errors="replace").strip()[-300:]
        raise CorruptDocumentError(
            f"{label}: LibreOffice could not convert the file to PDF (exit code {process.returncode}"
            f"{'; ' + tail if tail else ''}); it may be damaged or password protected"
        )
    return pdf


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.communicate()


def _load_converted(path: Path, options: LoadOptions, label: str) -> Iterator[Unit]:
    assert options.office_converter is not None
    slides = path.suffix.lower() in PRESENTATION_EXTENSIONS
    with tempfile.TemporaryDirectory(prefix="mmsearch-office-") as folder:
        with _CONVERTING:
            pdf = convert_to_pdf(
                path, options.office_converter, Path(folder), options.office_timeout_s, label
            )
        for unit in load_pdf(pdf, options):
            yield replace(unit, title=f"{unit.title} — slide {unit.page}") if slides else unit
