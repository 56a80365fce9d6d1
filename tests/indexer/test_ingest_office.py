"""Office documents end to end: files made with python-docx, python-pptx and openpyxl (and an
OpenDocument text), ingested into Qdrant Edge in a folder and found by a word only their content
holds; as text without LibreOffice, as pages with it, and indexed again as pages when it appears."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from indexer.ingest import ADDED, FAILED, UPDATED, Ingestor
from indexer.loaders.office import find_converter
from indexer.media_store import MediaStore
from indexer.store import VectorStore
from indexer.units import PAGE, TEXT
from retriever import Retriever
from tests.corpus import write_docx, write_pptx
from tests.indexer.test_ingest import OPTIONS

# The word only each file holds, and the title of the part that holds it when read as text.
WORDS = {
    "field-manual.docx": ("quetzalcoatl", "Field manual — Pump maintenance"),
    "roadmap.pptx": ("axolotl", "roadmap — slide 2: Budget"),
    "ledger.xlsx": ("zirconium", "ledger — sheet Inventory"),
    "letter.odt": ("pangolin", None),
}


def write_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Summary"
    book.active.append(["quarter", "total"])
    book.active.append(["Q3", 1200])
    sheet = book.create_sheet("Inventory")
    sheet.append(["part", "stock"])
    sheet.append(["zirconium rods", 14])
    book.save(path)


def write_odt(path: Path) -> None:
    """A minimal OpenDocument text, written as its format says (LibreOffice reads it)."""
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="{office}" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        "<office:body><office:text><text:p>A letter about the pangolin sanctuary and its volunteers."
        "</text:p></office:text></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        # The mimetype comes first and uncompressed, as the format requires.
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text", zipfile.ZIP_STORED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)


@pytest.fixture
def office_folder(tmp_path) -> Path:
    folder = tmp_path / "office"
    folder.mkdir()
    write_docx(folder / "field-manual.docx")
    write_pptx(folder / "roadmap.pptx")
    write_xlsx(folder / "ledger.xlsx")
    write_odt(folder / "letter.odt")
    return folder


def found_by(retriever: Retriever, word: str) -> list[tuple[str, str, str]]:
    """(file, modality, title) of the keyword leg's hits for one word."""
    hits = retriever.search(word, rerank=False, legs=("bm25",), top_n=20).hits
    return [(Path(h.source).name, h.modality, h.title) for h in hits]


def statuses(report) -> dict[str, str]:
    return {Path(f.source).name: f.status for f in report.files}


def test_office_files_without_libreoffice_are_found_by_their_words_as_text(
    tmp_path, office_folder, tiny_embedder
):
    with VectorStore.open(path=tmp_path / "store", collection="units") as store:
        media = MediaStore(tmp_path / "media")
        ingestor = Ingestor(store, media, tiny_embedder, options=replace(OPTIONS, office_converter=None))
        report = ingestor.ingest([office_folder])
        result = statuses(report)
        # The OpenDocument file needs LibreOffice, says so, and stops nothing else.
        assert result == {
            **dict.fromkeys(["field-manual.docx", "roadmap.pptx", "ledger.xlsx"], ADDED),
            "letter.odt": FAILED,
        }
        (odt,) = [f for f in report.files if f.status == FAILED]
        assert "LibreOffice" in odt.error and "apt-get install" in odt.error
        retriever = Retriever(store, media, tiny_embedder)
        for name, (word, title) in WORDS.items():
            if title is not None:
                assert found_by(retriever, word) == [(name, TEXT, title)], word


@pytest.mark.slow
def test_with_libreoffice_office_files_become_pages_and_are_indexed_again_when_it_appears(
    tmp_path, office_folder, tiny_embedder
):
    soffice = find_converter("soffice")
    if soffice is None:
        pytest.fail("no LibreOffice: install Debian's libreoffice-core, -writer, -impress, -calc (CI does)")
    with VectorStore.open(path=tmp_path / "store", collection="units") as store:
        media = MediaStore(tmp_path / "media")
        text_only = Ingestor(store, media, tiny_embedder, options=replace(OPTIONS, office_converter=None))
        text_only.ingest([office_folder])
        with_pages = Ingestor(store, media, tiny_embedder, options=replace(OPTIONS, office_converter=soffice))
        report = with_pages.ingest([office_folder])
        # LibreOffice is part of the fingerprint: what was text is read again, now as pages.
        assert statuses(report) == {
            **dict.fromkeys(["field-manual.docx", "roadmap.pptx", "ledger.xlsx"], UPDATED),
            "letter.odt": ADDED,
        }
        retriever = Retriever(store, media, tiny_embedder)
        for name, (word, _) in WORDS.items():
            assert [hit[:2] for hit in found_by(retriever, word)] == [(name, PAGE)], word
        (slide,) = retriever.search("axolotl", rerank=False, legs=("bm25",)).hits
        assert slide.title.endswith("— slide 2") and slide.page == 2
        assert media.resolve(slide.image).is_file()  # the slide's pixels, as LibreOffice drew them
        assert {p.payload["modality"] for p in store.units()} == {PAGE}
