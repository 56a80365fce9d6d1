"""The PDF loader on real PDFs written by reportlab and pdfium: pages, text layers, renders, errors."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from reportlab.pdfgen import canvas

from core.errors import CorruptDocumentError, EmptyDocumentError, EncryptedDocumentError, MediaNotFoundError
from indexer.loaders.base import LoadOptions
from indexer.loaders.pdf import load_pdf
from tests.corpus import REPORT_PHRASES, REPORT_TITLE, Corpus, draw_red_word, iou, red_box

SMALL = LoadOptions(image_min_pixels=4 * 32 * 32, image_max_pixels=96 * 32 * 32)


def _page_sizes(path: Path) -> list[tuple[float, float]]:
    pdf = pdfium.PdfDocument(str(path))
    try:
        return [pdf[i].get_size() for i in range(len(pdf))]
    finally:
        pdf.close()


@pytest.fixture
def render_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Records the size of every bitmap pdfium renders (a spy: the real render still runs)."""
    sizes: list[tuple[int, int]] = []
    real_render = pdfium.PdfPage.render

    def render(self, *args, **kwargs):
        bitmap = real_render(self, *args, **kwargs)
        sizes.append((bitmap.width, bitmap.height))
        return bitmap

    monkeypatch.setattr(pdfium.PdfPage, "render", render)
    return sizes


@pytest.fixture(scope="module")
def long_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 short pages."""
    path = tmp_path_factory.mktemp("long") / "long.pdf"
    c = canvas.Canvas(str(path))
    for number in range(1, 201):
        c.drawString(72, 720, f"This is page number {number} of a long manual.")
        c.showPage()
    c.save()
    return path


def test_report_has_one_unit_per_page_with_its_text_layer(corpus: Corpus) -> None:
    units = list(load_pdf(corpus.report_pdf, SMALL))
    assert [u.index for u in units] == [0, 1, 2]
    assert [u.page for u in units] == [1, 2, 3]
    assert {u.modality for u in units} == {"page"}
    assert {u.title for u in units} == {REPORT_TITLE}
    for unit, phrase in zip(units, REPORT_PHRASES, strict=True):
        assert phrase in unit.text
        assert f"page {unit.page}" in unit.text
        assert "\r" not in unit.text
    # Each page holds only its own phrase.
    assert REPORT_PHRASES[1] not in units[0].text and REPORT_PHRASES[0] not in units[2].text


def test_renders_fit_the_budget_in_multiples_of_32_and_keep_the_aspect_ratio(corpus: Corpus) -> None:
    units = list(load_pdf(corpus.report_pdf, SMALL))
    for unit, (width_pt, height_pt) in zip(units, _page_sizes(corpus.report_pdf), strict=True):
        image = unit.image
        assert image is not None and image.mode == "RGB"
        assert image.width % 32 == 0 and image.height % 32 == 0
        assert SMALL.image_min_pixels <= image.width * image.height <= SMALL.image_max_pixels
        # Snapping each side to 32 px moves the ratio by at most one 32 px step per side.
        tolerance = 32 / min(image.width, image.height) * 1.5
        assert abs(image.width / image.height - width_pt / height_pt) <= tolerance * width_pt / height_pt
    assert units[2].image.width > units[2].image.height  # the landscape page stays landscape
    assert units[0].image.width < units[0].image.height


def test_vector_drawings_are_rendered(corpus: Corpus) -> None:
    page = next(iter(load_pdf(corpus.report_pdf, SMALL)))
    pixels = np.asarray(page.image).reshape(-1, 3).astype(int)
    coloured = (pixels.max(axis=1) - pixels.min(axis=1)) > 80  # the bars are saturated colours
    assert coloured.mean() > 0.01
    assert (pixels.min(axis=1) > 240).mean() > 0.5  # and the page background is white


@pytest.mark.parametrize("max_pixels", [16 * 32 * 32, 96 * 32 * 32, 1800 * 32 * 32])
def test_pages_are_rendered_at_the_budget_not_rendered_big_and_shrunk(
    corpus: Corpus, render_sizes: list[tuple[int, int]], max_pixels: int
) -> None:
    options = LoadOptions(image_min_pixels=4 * 32 * 32, image_max_pixels=max_pixels)
    units = list(load_pdf(corpus.report_pdf, options))
    assert len(render_sizes) == len(units) == 3
    for (width, height), unit in zip(render_sizes, units, strict=True):
        assert 0.9 * max_pixels <= width * height <= max_pixels
        assert unit.image.width * unit.image.height <= max_pixels


def test_a_scanned_page_has_an_image_and_no_text(corpus: Corpus) -> None:
    (unit,) = list(load_pdf(corpus.scan_pdf, SMALL))
    assert unit.text == "" and unit.page == 1
    assert unit.title == "scan"  # empty metadata Title: the file name
    assert np.asarray(unit.image).std() > 10  # the picture was drawn, not a blank page


def test_pages_are_rendered_lazily_and_the_document_closed_with_the_generator(
    long_pdf: Path, render_sizes: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = []
    real_close = pdfium.PdfDocument.close

    def close(self, *args, **kwargs):
        closed.append(self)
        return real_close(self, *args, **kwargs)

    monkeypatch.setattr(pdfium.PdfDocument, "close", close)
    units = load_pdf(long_pdf, LoadOptions(image_max_pixels=16 * 32 * 32))
    assert render_sizes == []  # nothing is read before the first unit is asked for
    first = next(units)
    assert first.page == 1 and "page number 1 " in first.text
    assert len(render_sizes) == 1  # one page rendered, 199 untouched
    second = next(units)
    assert second.page == 2 and len(render_sizes) == 2
    assert inspect.getgeneratorstate(units) == inspect.GEN_SUSPENDED and not closed
    units.close()  # the consumer stops early: the document must still be closed
    assert len(closed) == 1 and len(render_sizes) == 2


def test_every_page_of_a_long_pdf_in_order(long_pdf: Path) -> None:
    pages = [(u.page, u.text) for u in load_pdf(long_pdf, LoadOptions(image_max_pixels=4 * 32 * 32))]
    assert [p for p, _ in pages] == list(range(1, 201))
    assert all(f"page number {p} of" in text for p, text in pages)


def test_rotated_page_renders_as_displayed_and_keeps_its_text(tmp_path: Path) -> None:
    upright, path = tmp_path / "upright.pdf", tmp_path / "rotated.pdf"
    c = canvas.Canvas(str(upright))  # A4 portrait
    c.drawString(72, 720, "Text on a page shown in landscape")
    c.showPage()
    c.save()
    pdf = pdfium.PdfDocument(str(upright))
    pdf[0].set_rotation(90)  # /Rotate 90 on a portrait media box: viewers show it landscape
    pdf.save(str(path))
    pdf.close()
    (unit,) = list(load_pdf(path, SMALL))
    assert unit.image.width > unit.image.height
    assert "Text on a page shown in landscape" in unit.text


def test_placeholder_metadata_title_falls_back_to_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "minutes-2024.pdf"
    c = canvas.Canvas(str(path))  # reportlab writes Title "untitled" unless told otherwise
    c.drawString(72, 720, "Minutes")
    c.showPage()
    c.save()
    assert next(load_pdf(path, SMALL)).title == "minutes-2024"


def test_encrypted_pdf_says_to_decrypt_it(corpus: Corpus) -> None:
    with pytest.raises(EncryptedDocumentError, match=r"password protected; decrypt it first") as info:
        next(load_pdf(corpus.encrypted_pdf, SMALL))
    assert corpus.encrypted_pdf.name in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is plain text", b"%PDF-1.7\n" + bytes(range(256)) * 8],
    ids=["zero-bytes", "text", "garbage"],
)
def test_not_a_pdf_is_corrupt(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(CorruptDocumentError, match=r"broken\.pdf: cannot read the PDF"):
        list(load_pdf(path, SMALL))


def test_truncated_pdf_is_corrupt(corpus: Corpus) -> None:
    with pytest.raises(CorruptDocumentError, match=r"corrupt\.pdf"):
        list(load_pdf(corpus.corrupt_pdf, SMALL))


def test_empty_pdf_is_empty_even_right_after_an_encrypted_one(corpus: Corpus) -> None:
    # pdfium's last-error code is stale after a successful load: a 0-page PDF opened right after an
    # encrypted one must not be reported as encrypted.
    with pytest.raises(EncryptedDocumentError):
        next(load_pdf(corpus.encrypted_pdf, SMALL))
    with pytest.raises(EmptyDocumentError, match=r"empty\.pdf: the PDF has no pages"):
        next(load_pdf(corpus.empty_pdf, SMALL))


def test_missing_pdf(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match=r"nope\.pdf"):
        next(load_pdf(tmp_path / "nope.pdf", SMALL))


def test_text_drawn_off_the_page_is_not_indexed(tmp_path: Path) -> None:
    path = tmp_path / "offpage.pdf"
    c = canvas.Canvas(str(path), pagesize=(300, 300))
    c.drawString(20, 150, "Visible sentence")
    c.drawString(20, 900, "Invisible sentence")  # above the media box: no viewer shows it
    c.showPage()
    c.save()
    (unit,) = list(load_pdf(path, SMALL))
    assert "Visible sentence" in unit.text and "Invisible" not in unit.text


def _red_word_pdf(path: Path, rotation: int = 0) -> Path:
    """A page whose text layer holds a line with one word drawn in red (rotated by ``rotation``)."""
    c = canvas.Canvas(str(path), pagesize=(595, 842))
    draw_red_word(c, 72, 600, "The airship hangar holds the ", "zeppelin", "fleet, all year.", 18)
    c.showPage()
    c.save()
    if rotation:
        pdf = pdfium.PdfDocument(str(path))
        pdf[0].set_rotation(rotation)
        pdf.save(str(path) + ".tmp")
        pdf.close()
        Path(str(path) + ".tmp").replace(path)
    return path


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_text_layer_words_have_boxes_on_their_pixels(tmp_path: Path, rotation: int) -> None:
    path = _red_word_pdf(tmp_path / f"airship-{rotation}.pdf", rotation)
    (unit,) = list(load_pdf(path, LoadOptions(image_max_pixels=600 * 32 * 32)))
    # (pdfium orders the text of a page turned upside down its own way)
    expected = ["The", "airship", "hangar", "holds", "the", "zeppelin", "fleet,", "all", "year."]
    assert sorted(w[0] for w in unit.words) == sorted(expected)
    (word,) = [w for w in unit.words if w[0] == "zeppelin"]
    width, height = unit.image.size
    box = (word[1] * width, word[2] * height, word[3] * width, word[4] * height)
    drawn = red_box(unit.image)
    assert iou(box, drawn) > 0.5, (box, drawn)
    cx, cy = (drawn[0] + drawn[2]) / 2, (drawn[1] + drawn[3]) / 2
    assert box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
    # Every red pixel lies inside the box (a pixel of slack for anti-aliasing).
    assert (
        box[0] - 1 <= drawn[0]
        and drawn[2] <= box[2] + 1
        and box[1] - 1 <= drawn[1]
        and drawn[3] <= box[3] + 1
    )


def test_text_layer_words_off_the_page_and_odd_characters(tmp_path: Path) -> None:
    path = tmp_path / "odd.pdf"
    c = canvas.Canvas(str(path), pagesize=(400, 400))
    c.drawString(40, 300, "Visible words stay here")
    c.drawString(40, 900, "Placed above the page")  # outside the page box: not visible, not a word
    c.drawString(40, 200, "naïve café Größe")
    c.showPage()
    c.save()
    (unit,) = list(load_pdf(path, SMALL))
    assert [w[0] for w in unit.words] == ["Visible", "words", "stay", "here", "naïve", "café", "Größe"]
    assert all(0 <= v <= 1 for w in unit.words for v in w[1:]) and all(
        w[1] < w[3] and w[2] < w[4] for w in unit.words
    )


def test_a_page_without_a_text_layer_has_no_layer_words(tmp_path: Path) -> None:
    path = tmp_path / "blank.pdf"
    c = canvas.Canvas(str(path))
    c.rect(100, 100, 200, 200, fill=1)
    c.showPage()
    c.save()
    (unit,) = list(load_pdf(path, LoadOptions(image_max_pixels=96 * 32 * 32, ocr="off")))
    assert unit.text == "" and unit.words == ()
