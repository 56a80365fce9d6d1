"""OCR of scans and screenshots with the real rapidocr engine (PP-OCRv4 on the CPU, no mocks)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from core.errors import MediaTooLargeError
from core.media import DEFAULT_POLICY
from indexer import ocr
from indexer.ingest import _unit_payload
from indexer.loaders import LoadOptions, load
from indexer.loaders.image import load_image_file
from indexer.loaders.pdf import load_pdf
from indexer.media_store import MediaStore

pytest.importorskip("rapidocr_onnxruntime")

DPI = 150
A4_PX = (round(8.27 * DPI), round(11.69 * DPI))  # 1240 x 1754
HEADLINE = "Quarterly zebrafish inventory"
HEADLINE_AT = (110, 160)
BODY = ["The marmalade shipment reached dock seven", "Invoice total 4821 euros paid in March"]
OPTIONS = LoadOptions(image_max_pixels=1800 * 32 * 32)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _scan_image() -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A white A4 page at 150 dpi with a headline and two lines; returns it and the word 'zebrafish' box."""
    page = Image.new("RGB", A4_PX, "white")
    draw = ImageDraw.Draw(page)
    font = _font(40)
    draw.text(HEADLINE_AT, HEADLINE, font=font, fill="black")
    for row, line in enumerate(BODY):
        draw.text((110, 300 + row * 70), line, font=_font(32), fill=(20, 20, 20))
    prefix = draw.textlength("Quarterly ", font=font)
    x0 = HEADLINE_AT[0] + prefix
    box = draw.textbbox((x0, HEADLINE_AT[1]), "zebrafish", font=font)
    return page, tuple(round(v) for v in box)


def _write_scan_pdf(path: Path, page: Image.Image) -> Path:
    """The page as a picture in a PDF, as a scanner writes it: no text layer at all."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.drawImage(ImageReader(page), 0, 0, width=A4[0], height=A4[1])
    c.showPage()
    c.save()
    return path


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _words(unit_text: str) -> set[str]:
    return {w.strip(".,").lower() for w in unit_text.split()}


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[int, int, int, int]]:
    page, box = _scan_image()
    return _write_scan_pdf(tmp_path_factory.mktemp("ocr") / "scan.pdf", page), box


def test_a_scanned_pdf_page_gets_its_words_from_ocr(
    scan: tuple[Path, tuple[int, int, int, int]], tmp_path: Path
) -> None:
    path, _ = scan
    (unit,) = list(load_pdf(path, OPTIONS))
    found = _words(unit.text)
    assert {"zebrafish", "marmalade", "invoice", "4821"} <= found
    assert unit.snippet.startswith("Quarterly zebrafish")
    assert unit.words and all(0 <= v <= 1 for w in unit.words for v in w[1:])
    assert [w[0] for w in unit.words if w[0].lower() == "zebrafish"] == ["zebrafish"]
    # The words and their boxes go to the media store beside the page, not into the payload.
    assert "words" not in _unit_payload(unit)
    media = MediaStore(tmp_path / "media")
    refs = media.put("0123456789abcdef", unit)
    assert media.words(refs.words) == unit.words and refs.payload()["words_file"] == refs.words


def test_a_drawn_word_s_box_falls_on_its_pixels(scan: tuple[Path, tuple[int, int, int, int]]) -> None:
    path, drawn = scan
    (unit,) = list(load_pdf(path, OPTIONS))
    (word,) = [w for w in unit.words if w[0].lower() == "zebrafish"]
    width, height = A4_PX
    found = (word[1] * width, word[2] * height, word[3] * width, word[4] * height)
    assert _iou(found, drawn) > 0.5, (found, drawn)
    # The drawn word's centre lies inside the box OCR gives it.
    cx, cy = (drawn[0] + drawn[2]) / 2, (drawn[1] + drawn[3]) / 2
    assert found[0] <= cx <= found[2] and found[1] <= cy <= found[3]


def test_ocr_off_leaves_a_scan_without_text(scan: tuple[Path, tuple[int, int, int, int]]) -> None:
    path, _ = scan
    (unit,) = list(load_pdf(path, replace(OPTIONS, ocr="off")))
    assert unit.text == "" and unit.words == ()


def test_a_page_with_a_text_layer_is_not_ocrd_in_auto_mode(tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    path = tmp_path / "typed.pdf"
    c = canvas.Canvas(str(path))
    c.drawString(72, 720, "This page was typed, so its text layer holds every word already.")
    c.showPage()
    c.save()
    before = ocr.engine().images_read
    (unit,) = list(load_pdf(path, OPTIONS))
    assert ocr.engine().images_read == before  # not read by OCR: its words come from the layer
    assert "typed" in unit.text and [w[0] for w in unit.words][:3] == ["This", "page", "was"]
    (always,) = list(load_pdf(path, replace(OPTIONS, ocr="always")))
    assert ocr.engine().images_read == before + 1
    assert always.text.startswith(unit.text)  # the layer kept; OCR adds only the lines it lacks
    assert always.words[: len(unit.words)] == unit.words


def test_a_screenshot_s_text_is_read(tmp_path: Path) -> None:
    shot = Image.new("RGB", (900, 300), (240, 242, 246))
    draw = ImageDraw.Draw(shot)
    draw.rectangle([0, 0, 899, 40], fill=(40, 60, 120))
    draw.text((20, 8), "Settings", font=_font(24), fill="white")
    draw.text((30, 100), "Enable nightly backups", font=_font(30), fill=(30, 30, 30))
    draw.text((30, 170), "Retention 14 days", font=_font(30), fill=(30, 30, 30))
    path = tmp_path / "screen.png"
    shot.save(path)
    (unit,) = list(load(path, OPTIONS))
    assert {"nightly", "backups", "retention"} <= _words(unit.text)
    assert unit.image is not None and unit.words
    (off,) = list(load_image_file(path, replace(OPTIONS, ocr="off")))
    assert off.text == "" and off.words == ()


def test_a_huge_scan_is_refused_before_ocr(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("1", (20_000, 20_000), 1).save(path)  # 400 megapixels; a few kB of PNG
    before = ocr.engine().images_read
    with pytest.raises(MediaTooLargeError, match="pixel"):
        list(load_image_file(path, replace(OPTIONS, policy=DEFAULT_POLICY)))
    assert ocr.engine().images_read == before  # OCR never saw it


def test_ocr_downscales_a_big_image_before_reading_it() -> None:
    engine = ocr.OcrEngine(max_pixels=3_000_000)
    page, _ = _scan_image()
    big = page.resize((page.width * 2, page.height * 2))  # 8.7 MP
    read = engine.recognize(big)
    assert "zebrafish" in read.text.lower()
    (word,) = [w for w in read.words if w[0].lower() == "zebrafish"]
    assert 0.1 < word[1] < word[3] < 0.6  # boxes are normalised to the image, whatever its scale
