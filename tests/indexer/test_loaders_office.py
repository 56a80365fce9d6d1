"""Office documents: text from python-docx, python-pptx and openpyxl; the LibreOffice path's guards."""

from __future__ import annotations

import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import CorruptDocumentError, DocumentError, EncryptedDocumentError, UnsupportedFormatError
from indexer.loaders import SUPPORTED_EXTENSIONS, LoadOptions, load
from indexer.units import TEXT
from tests.corpus import write_docx, write_pptx

OPTIONS = LoadOptions()


def _by_word(units: list, word: str) -> list:
    return [u for u in units if word in u.text]


def test_office_extensions_are_registered() -> None:
    assert {
        ".docx",
        ".pptx",
        ".xlsx",
        ".odt",
        ".odp",
        ".ods",
        ".rtf",
        ".doc",
        ".ppt",
        ".xls",
    } <= SUPPORTED_EXTENSIONS


def test_a_docx_yields_its_words_titled_by_heading(tmp_path: Path) -> None:
    import docx

    path = write_docx(tmp_path / "manual.docx")
    document = docx.Document(path)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "torque"
    table.rows[0].cells[1].text = "xylophonic 12 Nm"
    document.save(path)

    units = list(load(path, OPTIONS))
    assert all(u.modality == TEXT for u in units)
    (opening,) = _by_word(units, "calibration")
    assert opening.title == "Field manual"
    (unit,) = _by_word(units, "quetzalcoatl")
    assert unit.title == "Field manual — Pump maintenance"
    assert "xylophonic 12 Nm" in unit.text and "torque | xylophonic" in unit.text


def test_a_pptx_yields_slides_titled_by_number_and_title(tmp_path: Path) -> None:
    import pptx
    from pptx.util import Inches

    path = write_pptx(tmp_path / "deck.pptx")
    deck = pptx.Presentation(path)
    box = deck.slides[1].shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1))
    box.text_frame.text = "footnote zirconium"
    deck.slides[1].notes_slide.notes_text_frame.text = "speaker notes mention pangolin"
    deck.save(path)

    units = list(load(path, OPTIONS))
    (unit,) = _by_word(units, "axolotl")
    assert unit.title == "deck — slide 2: Budget"
    assert "zirconium" in unit.text and "pangolin" in unit.text
    assert _by_word(units, "first build")[0].title == "deck — slide 1: Roadmap"


def test_an_xlsx_yields_sheets_titled_by_name(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Revenue"
    book.active.append(["quarter", "amount"])
    book.active.append(["Q1", 1234.5])
    other = book.create_sheet("Staff")
    other["B3"] = "capybara wrangler"
    path = tmp_path / "book.xlsx"
    book.save(path)

    units = list(load(path, OPTIONS))
    (revenue,) = _by_word(units, "quarter")
    assert revenue.title == "book — sheet Revenue" and "Q1 | 1234.5" in revenue.text
    (staff,) = _by_word(units, "capybara")
    assert staff.title == "book — sheet Staff"


def test_an_xlsx_with_a_cell_a_million_rows_down_loads(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active["A1"] = "header"
    book.active["A1000000"] = "okapi at the bottom"
    path = tmp_path / "tall.xlsx"
    book.save(path)
    units = list(load(path, OPTIONS))
    assert _by_word(units, "okapi") and _by_word(units, "header")


def test_a_corrupt_pptx_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "broken.pptx"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive" * 10)
    with pytest.raises(CorruptDocumentError, match=r"broken\.pptx"):
        list(load(path, OPTIONS))
    # A zip that is no presentation.
    other = tmp_path / "empty.pptx"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(CorruptDocumentError, match="cannot read the pptx"):
        list(load(other, OPTIONS))


def test_a_password_protected_file_is_named_so(tmp_path: Path) -> None:
    path = tmp_path / "secret.docx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)  # an encrypted OOXML's container
    with pytest.raises(EncryptedDocumentError, match="password"):
        list(load(path, OPTIONS))


@pytest.mark.parametrize("name", ["letter.odt", "old-memo.doc", "old-deck.ppt", "old-sheet.xls"])
def test_formats_only_libreoffice_reads_are_refused_without_it_naming_it(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04" if name.endswith(".odt") else b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    with pytest.raises(UnsupportedFormatError, match="LibreOffice"):
        list(load(path, OPTIONS))


def test_a_hanging_converter_is_killed_at_the_timeout(tmp_path: Path) -> None:
    import docx

    converter = tmp_path / "soffice"
    converter.write_text("#!/bin/sh\nsleep 60 &\nsleep 60\n")
    converter.chmod(0o755)
    path = tmp_path / "slow.docx"
    document = docx.Document()
    document.add_paragraph("never converted")
    document.save(path)

    options = replace(OPTIONS, office_converter=str(converter), office_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(DocumentError, match="timed out after 1 s"):
        list(load(path, options))
    assert time.monotonic() - started < 20


def test_a_converter_that_writes_no_pdf_fails_clearly(tmp_path: Path) -> None:
    converter = tmp_path / "soffice"
    converter.write_text("#!/bin/sh\necho 'Error: source file could not be loaded'\nexit 1\n")
    converter.chmod(0o755)
    path = tmp_path / "bad.xlsx"
    path.write_bytes(b"junk")
    options = replace(OPTIONS, office_converter=str(converter), office_timeout_s=10.0)
    with pytest.raises(CorruptDocumentError, match="could not be loaded"):
        list(load(path, options))


def test_a_converted_file_is_indexed_as_pdf_pages(tmp_path: Path) -> None:
    # A stand-in converter that writes a real PDF where LibreOffice would (--outdir DIR, last arg).
    from reportlab.pdfgen import canvas

    made = tmp_path / "made.pdf"
    c = canvas.Canvas(str(made))
    c.drawString(72, 720, "Converted page about the narwhal census, long enough to be a text layer.")
    c.showPage()
    c.save()
    converter = tmp_path / "soffice"
    converter.write_text(
        '#!/bin/sh\nfor a; do last="$a"; done\nwhile [ "$1" != "--outdir" ]; do shift; done\n'
        f'cp {made} "$2/$(basename "${{last%.*}}").pdf"\n'
    )
    converter.chmod(0o755)
    path = tmp_path / "report.pptx"
    path.write_bytes(b"not read by the stand-in")
    units = list(load(path, replace(OPTIONS, office_converter=str(converter))))
    assert [u.modality for u in units] == ["page"] and "narwhal" in units[0].text
