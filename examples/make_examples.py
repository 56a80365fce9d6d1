"""Regenerate the small example documents used by the README's first command.

python examples/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).parent


def bar_chart(path: Path) -> None:
    """A revenue bar chart with a title and labelled bars."""
    image = Image.new("RGB", (640, 420), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=22)
    small = ImageFont.load_default(size=16)
    draw.text((20, 14), "Revenue by year (million EUR)", fill="black", font=font)
    values = {"2021": 41, "2022": 48, "2023": 54, "2024": 63}
    for i, (year, value) in enumerate(values.items()):
        x = 70 + i * 140
        top = 380 - value * 5
        draw.rectangle([x, top, x + 90, 380], fill=(40 + 50 * i, 110, 200 - 35 * i))
        draw.text((x + 25, top - 24), str(value), fill="black", font=small)
        draw.text((x + 22, 388), year, fill="black", font=small)
    draw.line([(50, 380), (620, 380)], fill="black", width=2)
    image.save(path, optimize=True)


def scanned_page(path: Path) -> None:
    """A greyish 'scan' of a short text page with a few specks of dust."""
    rng = np.random.default_rng(0)
    page = Image.new("RGB", (420, 560), (236, 234, 228))
    draw = ImageDraw.Draw(page)
    for x, y in rng.integers(0, 420, (60, 2)):
        draw.point((int(x), int(y) * 4 // 3), fill=(150, 150, 150))
    font = ImageFont.load_default(size=18)
    lines = [
        "Minutes of the board meeting",
        "",
        "1. The cafeteria will move to",
        "   the second floor in May.",
        "2. Parking permits are renewed",
        "   every January.",
        "3. The fire drill is on Friday.",
    ]
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * 30), line, fill=(30, 30, 30), font=font)
    page.save(path, optimize=True)


def clip(path: Path) -> None:
    """Four seconds of a growing green bar, 2 frames a second."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=2)
        stream.width, stream.height, stream.pix_fmt = 320, 192, "yuv420p"
        for i in range(8):
            frame = np.full((192, 320, 3), 250, dtype=np.uint8)
            frame[150 - 15 * i : 160, 40:280] = (30, 160, 60)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def report_pdf(path: Path) -> None:
    """A two-page quarterly report with a text layer and a drawn chart (needs reportlab)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=1)  # invariant: same bytes on every run
    pdf.setTitle("Quarterly report Q3")
    pdf.setFont("Helvetica-Bold", 20)
    pdf.drawString(60, 780, "Quarterly report, third quarter")
    pdf.setFont("Helvetica", 12)
    lines = [
        "Revenue rose to 17.2 million EUR, up 9 percent on the second quarter.",
        "The new warehouse in Rotterdam opened in August and cut delivery times by two days.",
        "Headcount grew from 212 to 230; most new staff joined customer support.",
    ]
    for i, line in enumerate(lines):
        pdf.drawString(60, 740 - 20 * i, line)
    pdf.showPage()
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(60, 780, "Revenue by quarter (million EUR)")
    for i, value in enumerate([13.1, 14.6, 15.8, 17.2]):
        pdf.setFillColorRGB(0.2, 0.4 + 0.1 * i, 0.7)
        pdf.rect(90 + 110 * i, 400, 70, value * 15, fill=1, stroke=0)
        pdf.setFillColorRGB(0, 0, 0)
        pdf.drawString(100 + 110 * i, 380, f"Q{i + 1}: {value}")
    pdf.save()


if __name__ == "__main__":
    report_pdf(HERE / "quarterly-report.pdf")
    bar_chart(HERE / "revenue-chart.png")
    scanned_page(HERE / "board-minutes.png")
    clip(HERE / "growing-bar.mp4")
