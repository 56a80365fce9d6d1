"""The ``bench/manuals`` set as PDFs mmsearch ingests itself: its judged pages with their true text
layer, and the same pages as scans (rasterised at 150 dpi, no text layer), which ingest reads by OCR.

For every manual that ``manifest.json`` names (found by ``build.py`` with ``dpkg -L``), the pages that
``corpus.jsonl`` judges are copied into ``bench/manuals-pages/pdfs/<manual>.pdf`` as they are (vector
text, text layer) and drawn into ``bench/manuals-scans/pdfs/<manual>.pdf`` as one greyscale picture per
page. Both folders get the same queries and qrels, and a ``corpus.jsonl`` whose items are those PDF
pages (``{"_id", "file", "page"}``), so ``mmsearch eval`` indexes them through the real pipeline (the
PDF loader, OCR where a page has no text layer, the render workers) and compares the two directly:

    apt-get install -y nettle-dev fontconfig bzip2-doc valgrind
    .venv/bin/python bench/manuals/scans.py
    .venv/bin/mmsearch eval bench/manuals-pages bench/manuals-scans --embedder "$M" --rerank off --k 10

The PDFs are rebuilt from the installed manuals (seconds) and not kept in git; the small JSON files are.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench.manuals.scans")


def _open_manual(path: Path):  # type: ignore[no-untyped-def]
    import pypdfium2 as pdfium

    data = path.read_bytes()
    return pdfium.PdfDocument(gzip.decompress(data) if path.suffix == ".gz" else data)


def copy_pages(source, numbers: list[int], out: Path) -> None:  # type: ignore[no-untyped-def]
    """The given 1-based pages of ``source``, as they are, into a new PDF at ``out``."""
    import pypdfium2 as pdfium

    copy = pdfium.PdfDocument.new()
    try:
        copy.import_pages(source, [n - 1 for n in numbers])
        copy.save(str(out))
    finally:
        copy.close()


def scan_pages(source, numbers: list[int], out: Path, dpi: int, title: str) -> None:  # type: ignore[no-untyped-def]
    """The given pages of ``source`` as pictures only: each rendered at ``dpi`` in grey, no text layer."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(out))
    pdf.setTitle(title)
    for number in numbers:
        page = source[number - 1]
        width, height = page.get_size()
        bitmap = page.render(scale=dpi / 72, grayscale=True)
        picture = bitmap.to_pil()
        bitmap.close()
        page.close()
        png = io.BytesIO()
        picture.save(png, format="PNG", optimize=False, compress_level=6)
        pdf.setPageSize((width, height))
        pdf.drawImage(ImageReader(io.BytesIO(png.getvalue())), 0, 0, width=width, height=height)
        pdf.showPage()
    pdf.save()


def write_set(out: Path, source: Path, corpus: list[tuple[str, str, int]]) -> None:
    """A BEIR folder at ``out`` whose corpus items are (id, pdf name, page) and whose queries and qrels
    are those of ``source``."""
    with open(out / "corpus.jsonl", "w") as f:
        for corpus_id, pdf_name, page in corpus:
            f.write(json.dumps({"_id": corpus_id, "file": f"pdfs/{pdf_name}", "page": page}) + "\n")
    shutil.copy(source / "queries.jsonl", out / "queries.jsonl")
    (out / "qrels").mkdir(exist_ok=True)
    shutil.copy(source / "qrels" / "test.tsv", out / "qrels" / "test.tsv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=HERE, help="the text-layer BEIR folder")
    parser.add_argument("--pages-out", type=Path, default=HERE.parent / "manuals-pages")
    parser.add_argument("--scans-out", type=Path, default=HERE.parent / "manuals-scans")
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    manifest = json.loads((args.source / "manifest.json").read_text())
    manuals = {m["slug"]: m for m in manifest["manuals"]}
    missing = sorted(m["path"] for m in manuals.values() if not Path(m["path"]).exists())
    if missing:
        raise SystemExit(
            "missing manuals: " + ", ".join(missing) + "\n"
            "install them: apt-get install -y nettle-dev fontconfig bzip2-doc valgrind"
        )
    judged: dict[str, list[tuple[str, int]]] = {}
    for line in (args.source / "corpus.jsonl").read_text().splitlines():
        corpus_id = json.loads(line)["_id"]
        slug, _, page = corpus_id.rpartition("-p")
        judged.setdefault(slug, []).append((corpus_id, int(page)))

    started = time.perf_counter()
    corpus: list[tuple[str, str, int]] = []
    for out in (args.pages_out, args.scans_out):
        (out / "pdfs").mkdir(parents=True, exist_ok=True)
    for slug, pages in judged.items():
        numbers = [page for _, page in pages]
        source = _open_manual(Path(manuals[slug]["path"]))
        try:
            copy_pages(source, numbers, args.pages_out / "pdfs" / f"{slug}.pdf")
            scan_pages(
                source, numbers, args.scans_out / "pdfs" / f"{slug}.pdf", args.dpi, manuals[slug]["title"]
            )
        finally:
            source.close()
        corpus += [(corpus_id, f"{slug}.pdf", n) for n, (corpus_id, _) in enumerate(pages, start=1)]
        logger.info("%s: %d pages", slug, len(pages))
    for out in (args.pages_out, args.scans_out):
        write_set(out, args.source, corpus)
    meta = {
        "source": "bench/manuals",
        "pages": len(corpus),
        "scan_dpi": args.dpi,
        "scan": "each page rendered by pypdfium2 in grey, one PNG picture per page, no text layer",
        "pages_copy": "the judged pages copied as they are (pypdfium2 import_pages): true text layer",
        "seconds": round(time.perf_counter() - started, 1),
    }
    for out in (args.pages_out, args.scans_out):
        (out / "manifest.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("wrote %s and %s: %s", args.pages_out, args.scans_out, json.dumps(meta))


if __name__ == "__main__":
    main()
