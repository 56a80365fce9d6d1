"""A realistic mixed corpus, generated once per test session: PDFs, images, a video, text, broken files.

Tests use the ``corpus`` fixture (tests/conftest.py); its :class:`Corpus` names every file. The
constants below say what the files contain, so tests can check loaders against what was really written.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.conftest import encode_video, make_chart

REPORT_TITLE = "Quarterly Report 2024"
# One phrase per page of report.pdf; page 3 is landscape.
REPORT_PHRASES = (
    "Revenue grew 12 percent in the third quarter",
    "Customer churn fell to 3 percent in Europe",
    "Regional breakdown of shipments by month",
)

CLIP_FPS = 2
CLIP_SECONDS = 23.0
CLIP_SIZE = (64, 48)  # width, height
# Top half colour of every frame of clip.mp4, by 10-second stretch: red, green, blue.
CLIP_COLORS = ((220, 30, 30), (30, 200, 30), (30, 30, 220))
# The bottom half of frame i shows i in binary, so a keyframe tells which frame it is: CLIP_BITS blocks
# 8 px wide, most significant first, white for 1 and black for 0 (blocks survive lossy coding).
CLIP_BITS = 6

GUIDE_TITLE = "Installation Guide"
HTML_TITLE = "Product FAQ & Support"
HTML_HIDDEN = ("SCRIPT_SHOULD_NOT_APPEAR", "STYLE_SHOULD_NOT_APPEAR")

# Where a pixel's colour says which way up a photo is: photo.jpg is stored landscape with a red top-left
# quarter and EXIF orientation 6 (rotate 90 degrees clockwise to view), so upright the red is top-right.
PHOTO_STORED_SIZE = (160, 120)


@dataclass(frozen=True)
class Corpus:
    """Paths of the generated corpus. Good files sit in ``docs/`` and ``media/``, broken ones in ``bad/``.

    Attributes:
        root: the corpus folder.
        report_pdf: docs/report.pdf, 3 pages (letter, A4, letter landscape) of text and vector
            drawings, metadata Title :data:`REPORT_TITLE`; page ``i`` holds ``REPORT_PHRASES[i - 1]``.
        scan_pdf: docs/scan.pdf, one page that is only a picture (no text layer).
        guide_md: docs/guide.md, Markdown titled :data:`GUIDE_TITLE`, several chunks long at 256 tokens.
        notes_txt: docs/notes.txt, short UTF-8 notes with a BOM and non-ASCII letters.
        page_html: docs/faq.html, titled :data:`HTML_TITLE`, with a script, a style and entities.
        photo_jpg: media/photo.jpg, see :data:`PHOTO_STORED_SIZE` (EXIF orientation 6).
        screenshot_png: media/screenshot.png, RGBA with a transparent corner.
        chart_webp: media/chart.webp.
        scan_tiff: media/scan.tiff, greyscale.
        diagram_bmp: media/diagram.bmp.
        anim_gif: media/anim.gif, two frames: red then blue.
        clip_mp4: media/clip.mp4, :data:`CLIP_SECONDS` s at :data:`CLIP_FPS` fps (see CLIP_COLORS).
        encrypted_pdf: bad/encrypted.pdf, user password "secret".
        corrupt_pdf: bad/corrupt.pdf, the first half of report.pdf.
        empty_pdf: bad/empty.pdf, a valid PDF with 0 pages.
        corrupt_png: bad/corrupt.png, a PNG signature followed by junk.
        corrupt_mp4: bad/corrupt.mp4, the first half of clip.mp4 (no moov atom).
        empty_txt: bad/empty.txt, whitespace only.
    """

    root: Path
    report_pdf: Path
    scan_pdf: Path
    guide_md: Path
    notes_txt: Path
    page_html: Path
    photo_jpg: Path
    screenshot_png: Path
    chart_webp: Path
    scan_tiff: Path
    diagram_bmp: Path
    anim_gif: Path
    clip_mp4: Path
    encrypted_pdf: Path
    corrupt_pdf: Path
    empty_pdf: Path
    corrupt_png: Path
    corrupt_mp4: Path
    empty_txt: Path

    @property
    def files(self) -> tuple[Path, ...]:
        """Every generated file."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "root")

    @property
    def good(self) -> tuple[Path, ...]:
        """The files every loader should read (those outside ``bad/``)."""
        return tuple(p for p in self.files if p.parent.name != "bad")

    @property
    def bad(self) -> tuple[Path, ...]:
        """The files that must fail with a typed error (those in ``bad/``)."""
        return tuple(p for p in self.files if p.parent.name == "bad")


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


def write_report_pdf(path: Path) -> Path:
    """Three pages of text and vector graphics (bars, lines, a circle, a table grid)."""
    from reportlab.lib.pagesizes import A4, landscape, letter
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=letter)
    c.setTitle(REPORT_TITLE)
    c.setAuthor("Finance team")
    sizes = (letter, A4, landscape(letter))
    for number, (size, phrase) in enumerate(zip(sizes, REPORT_PHRASES, strict=True), start=1):
        c.setPageSize(size)
        width, height = size
        c.setFont("Helvetica-Bold", 20)
        c.drawString(72, height - 72, f"{REPORT_TITLE}, page {number}")
        c.setFont("Helvetica", 12)
        c.drawString(72, height - 110, f"{phrase}.")
        c.drawString(72, height - 128, "Figures are unaudited and rounded to the nearest unit.")
        for i, bar in enumerate((120, 80, 160, 60, 140)):  # a bar chart
            c.setFillColorRGB(0.2 + 0.15 * i, 0.3, 0.8 - 0.12 * i)
            c.rect(90 + i * 60, 90, 40, bar, stroke=0, fill=1)
        c.setStrokeColorRGB(0, 0, 0)
        c.line(80, 88, 420, 88)
        c.line(80, 88, 80, 270)
        if number == 2:
            c.circle(width - 150, height / 2, 60, stroke=1, fill=0)
            for row in range(5):  # a table grid
                c.line(72, 330 + row * 18, 300, 330 + row * 18)
        c.showPage()
    c.save()
    return path


def write_docx(path: Path) -> Path:
    """A Word file titled "Field manual": an opening paragraph, then a heading and one more paragraph."""
    import docx

    document = docx.Document()
    document.core_properties.title = "Field manual"
    document.add_paragraph("An opening paragraph about calibration of the intake valves.")
    document.add_heading("Pump maintenance", level=1)
    document.add_paragraph("Grease the quetzalcoatl bearing every spring, before the first frost.")
    document.save(path)
    return path


def write_pptx(path: Path) -> Path:
    """A two-slide deck, each slide a title and a body: "Roadmap" then "Budget" (the axolotl line)."""
    import pptx

    deck = pptx.Presentation()
    for heading, body in [
        ("Roadmap", "ship the first build to testers"),
        ("Budget", "the axolotl line item"),
    ]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text = body
    deck.save(path)
    return path


def draw_red_word(c, x: float, y: float, before: str, word: str, after: str, size: int) -> None:
    """One line of Helvetica on a reportlab canvas with ``word`` in red, so a render shows where it is."""
    c.setFont("Helvetica", size)
    c.drawString(x, y, before)
    at = x + c.stringWidth(before, "Helvetica", size)
    c.setFillColorRGB(1, 0, 0)
    c.drawString(at, y, word)
    c.setFillColorRGB(0, 0, 0)
    c.drawString(at + c.stringWidth(f"{word} ", "Helvetica", size), y, after)


def red_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The pixel bbox (x0, y0, x1, y1, exclusive ends) of the red pixels of a picture."""
    pixels = np.asarray(image.convert("RGB")).astype(int)
    ys, xs = np.nonzero((pixels[:, :, 0] > 140) & (pixels[:, :, 1] < 110) & (pixels[:, :, 2] < 110))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def write_scan_pdf(path: Path) -> Path:
    """One page that is only an embedded picture, as a scanner makes it: no text layer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.setTitle("")
    c.drawImage(ImageReader(make_chart(300, 420, seed=11)), 0, 0, width=A4[0], height=A4[1])
    c.showPage()
    c.save()
    return path


def write_encrypted_pdf(path: Path, password: str = "secret") -> Path:
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), encrypt=password)
    c.drawString(72, 720, "Salaries for 2024: confidential.")
    c.showPage()
    c.save()
    return path


def write_empty_pdf(path: Path) -> Path:
    """A valid PDF with no page at all."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument.new()
    try:
        pdf.save(str(path))
    finally:
        pdf.close()
    return path


def write_photo(path: Path) -> Path:
    """A landscape JPEG with a red top-left quarter, tagged EXIF orientation 6."""
    width, height = PHOTO_STORED_SIZE
    image = make_chart(width, height, seed=5)
    ImageDraw.Draw(image).rectangle([0, 0, width // 2 - 1, height // 2 - 1], fill=(255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    image.save(path, quality=92, exif=exif.tobytes())
    return path


def write_screenshot(path: Path) -> Path:
    """An RGBA 'app window': title bar, panels, text lines, and a transparent top-left corner."""
    image = Image.new("RGBA", (320, 200), (245, 245, 250, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 319, 24], fill=(40, 60, 120, 255))
    draw.rectangle([8, 32, 100, 190], fill=(225, 230, 240, 255))
    for row in range(40, 180, 14):
        draw.line([(112, row), (300, row)], fill=(60, 60, 60, 255), width=3)
    draw.rectangle([0, 0, 15, 15], fill=(0, 0, 0, 0))
    image.save(path)
    return path


def write_gif(path: Path) -> Path:
    """Two frames: solid red, then solid blue."""
    frames = [Image.new("RGB", (48, 32), color) for color in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0)
    return path


def clip_frames(seconds: float = CLIP_SECONDS, fps: int = CLIP_FPS) -> list[np.ndarray]:
    """Frames of clip.mp4: top half CLIP_COLORS by 10 s stretch, bottom half the frame number in binary."""
    width, height = CLIP_SIZE
    frames = []
    for i in range(round(seconds * fps)):
        array = np.full((height, width, 3), 128, np.uint8)
        array[: height // 2] = CLIP_COLORS[min(int(i / fps // 10), len(CLIP_COLORS) - 1)]
        for bit in range(CLIP_BITS):
            on = (i >> (CLIP_BITS - 1 - bit)) & 1
            array[height // 2 :, bit * 8 : (bit + 1) * 8] = 255 if on else 0
        frames.append(array)
    return frames


GUIDE_SECTIONS = (
    ("Requirements", "a machine with Python 3.10 or newer, eight gigabytes of memory and a recent browser"),
    ("Downloading", "the release archive from the project page and checking its SHA-256 checksum"),
    ("Configuring", "the settings file, where every option has a comment explaining its default value"),
    ("Indexing", "the documents folder, which the indexer walks recursively while skipping hidden files"),
    ("Searching", "the web interface, where queries may combine a sentence with an example picture"),
    ("Troubleshooting", "the log file, which names every file that failed and the reason it failed"),
)


def guide_text() -> str:
    """Markdown long enough for several 256-token chunks: a title, sections, lists and code."""
    parts = [f"# {GUIDE_TITLE}", "", "This guide walks through a first installation, step by step.", ""]
    for number, (name, subject) in enumerate(GUIDE_SECTIONS, start=1):
        parts += [f"## {number}. {name}", ""]
        for sentence in range(4):
            parts.append(
                f"Step {number}.{sentence + 1} is about {subject}. Read it carefully before moving on, "
                f"because later steps assume that step {number}.{sentence + 1} went well. If it did not, "
                f"repeat it once more and compare the output with the example below."
            )
        parts += [
            "",
            "```bash",
            f"# step {number}: not a heading, a shell comment",
            f"mmsearch {name.lower()}",
        ]
        parts += ["```", "", f"- check {name.lower()} output", "- keep the log", ""]
    return "\n".join(parts)


NOTES_TEXT = (
    "Meeting notes, 14 March.\n\n"
    "The café supplier will raise prices by 4 % next quarter; Zoë asked for a naïve estimate first.\n"
    "Action: compare three offers before Friday.\n\n"
    "Next meeting: 21 March, same room.\n"
)

HTML_TEXT = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Product FAQ &amp; Support</title>
  <style>body {{ font-family: sans-serif; }} .x::after {{ content: "{HTML_HIDDEN[1]}"; }}</style>
  <script>var secret = "{HTML_HIDDEN[0]}"; if (1 < 2) {{ console.log("<p>nope</p>"); }}</script>
</head>
<body>
  <nav><a href="/">Home</a> | <a href="/faq">FAQ</a></nav>
  <h1>Frequently asked questions</h1>
  <p>How do I reset my password? Open <b>Settings</b> &gt; <i>Account</i> and press &quot;Reset&quot;.</p>
  <p>Does it work offline?&nbsp;Yes: everything runs on your own machine.</p>
  <ul><li>Fast search</li><li>Private by design</li></ul>
  <table><tr><th>Plan</th><th>Price</th></tr><tr><td>Basic</td><td>&euro;5</td></tr></table>
  <!-- a comment that is not text -->
  <noscript>Enable JavaScript</noscript>
</body>
</html>
"""


def build_corpus(root: Path) -> Corpus:
    """Write the whole corpus under ``root`` and return its paths (about half a second)."""
    docs, media, bad = root / "docs", root / "media", root / "bad"
    for folder in (docs, media, bad):
        folder.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(
        root=root,
        report_pdf=write_report_pdf(docs / "report.pdf"),
        scan_pdf=write_scan_pdf(docs / "scan.pdf"),
        guide_md=docs / "guide.md",
        notes_txt=docs / "notes.txt",
        page_html=docs / "faq.html",
        photo_jpg=write_photo(media / "photo.jpg"),
        screenshot_png=write_screenshot(media / "screenshot.png"),
        chart_webp=media / "chart.webp",
        scan_tiff=media / "scan.tiff",
        diagram_bmp=media / "diagram.bmp",
        anim_gif=write_gif(media / "anim.gif"),
        clip_mp4=encode_video(media / "clip.mp4", clip_frames(), fps=CLIP_FPS),
        encrypted_pdf=write_encrypted_pdf(bad / "encrypted.pdf"),
        corrupt_pdf=bad / "corrupt.pdf",
        empty_pdf=write_empty_pdf(bad / "empty.pdf"),
        corrupt_png=bad / "corrupt.png",
        corrupt_mp4=bad / "corrupt.mp4",
        empty_txt=bad / "empty.txt",
    )
    corpus.guide_md.write_text(guide_text(), encoding="utf-8")
    corpus.notes_txt.write_bytes(codecs.BOM_UTF8 + NOTES_TEXT.encode("utf-8"))
    corpus.page_html.write_text(HTML_TEXT, encoding="utf-8")
    make_chart(200, 150, seed=21).save(corpus.chart_webp, quality=85)
    make_chart(180, 240, seed=22).convert("L").save(corpus.scan_tiff)
    make_chart(120, 90, seed=23).save(corpus.diagram_bmp)
    pdf_bytes = corpus.report_pdf.read_bytes()
    corpus.corrupt_pdf.write_bytes(pdf_bytes[: len(pdf_bytes) // 2])
    corpus.corrupt_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"definitely not image data" * 4)
    clip_bytes = corpus.clip_mp4.read_bytes()
    corpus.corrupt_mp4.write_bytes(clip_bytes[: len(clip_bytes) // 2])
    corpus.empty_txt.write_text("  \n\t\n   \n", encoding="utf-8")
    return corpus
