"""A generated BEIR dataset with known answers: distinct topics that a real text model (MiniLM) tells
apart, as text items and as the pages of a PDF, and a picture corpus for image queries."""

from __future__ import annotations

import json
from pathlib import Path

TOPICS = {
    "volcano": ("Volcanoes", "Magma rises through the crust and erupts as lava, ash and volcanic gas."),
    "bees": ("Honey bees", "Worker bees collect nectar and pollen from flowers and make honey in the hive."),
    "chess": ("Chess openings", "The Sicilian Defence answers the king's pawn with a pawn to c5."),
    "tides": ("Ocean tides", "The gravity of the moon pulls the oceans and causes high and low tides."),
    "bread": ("Baking bread", "Yeast ferments the dough, which rises before it is baked in a hot oven."),
    "guitar": ("Guitar chords", "A chord is three or more strings strummed together on the guitar."),
    "vaccine": ("Vaccines", "A vaccine trains the immune system to recognise a virus before infection."),
    "bitcoin": ("Cryptocurrency", "Bitcoin transactions are recorded on a public blockchain ledger."),
}
QUERIES = {
    "volcano": "what comes out of an erupting volcano",
    "bees": "how do bees make honey",
    "chess": "a chess opening against e4",
    "tides": "why does the sea level rise and fall every day",
    "bread": "how does yeast make dough rise",
    "guitar": "playing chords on a guitar",
    "vaccine": "how do vaccines protect against viruses",
    "bitcoin": "where are bitcoin payments recorded",
}
# These topics are the pages of a PDF instead of text items (corpus ids "pdf-p1", "pdf-p2", "pdf-p3").
PDF_TOPICS = ["tides", "bread", "guitar"]


def write_pdf(path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    for topic in PDF_TOPICS:
        title, text = TOPICS[topic]
        pdf.setFont("Helvetica-Bold", 18)
        pdf.drawString(72, 760, title)
        pdf.setFont("Helvetica", 12)
        pdf.drawString(72, 730, text)
        pdf.showPage()
    pdf.save()


def build_text_dataset(root: Path) -> Path:
    """Text items for five topics, PDF pages for three, one query per topic (plus one unjudged query).

    The bees query also judges the volcano item as partly relevant (grade 1 against bees' 2), so the
    graded path of nDCG is exercised on real rankings.
    """
    root.mkdir(parents=True, exist_ok=True)
    write_pdf(root / "topics.pdf")
    corpus = []
    for topic, (title, text) in TOPICS.items():
        if topic in PDF_TOPICS:
            corpus.append(
                {
                    "_id": f"pdf-p{PDF_TOPICS.index(topic) + 1}",
                    "file": "topics.pdf",
                    "page": PDF_TOPICS.index(topic) + 1,
                }
            )
        else:
            corpus.append({"_id": f"doc-{topic}", "title": title, "text": text})
    queries = [{"_id": f"q-{t}", "text": q} for t, q in QUERIES.items()]
    queries.append({"_id": "q-unjudged", "text": "a question nobody judged"})
    rows = ["query-id\tcorpus-id\tscore"]
    for topic in TOPICS:
        target = f"pdf-p{PDF_TOPICS.index(topic) + 1}" if topic in PDF_TOPICS else f"doc-{topic}"
        rows.append(f"q-{topic}\t{target}\t{2 if topic == 'bees' else 1}")
    rows.append("q-bees\tdoc-volcano\t1")
    _write(root, corpus, queries, rows)
    return root


def build_image_dataset(root: Path, pictures: dict[str, object]) -> Path:
    """Picture items; each query is one of the pictures itself, so any image model ranks it first."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    corpus, queries, rows = [], [], ["query-id\tcorpus-id\tscore"]
    for name, picture in pictures.items():
        picture.save(root / "images" / f"{name}.png")
        corpus.append({"_id": f"img-{name}", "file": f"images/{name}.png"})
        queries.append({"_id": f"q-{name}", "image": f"images/{name}.png"})
        rows.append(f"q-{name}\timg-{name}\t1")
    _write(root, corpus, queries, rows)
    return root


def _write(root: Path, corpus: list, queries: list, qrels: list[str]) -> None:
    (root / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
