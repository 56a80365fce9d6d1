"""The Debian-manuals eval set (bench/manuals) is complete: pages, queries, and a judged page each."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from retriever.evaluation.dataset import load_dataset

FOLDER = Path(__file__).resolve().parents[2] / "bench" / "manuals"


def test_the_manuals_set_loads_with_every_query_judged_against_a_real_page():
    data = load_dataset(str(FOLDER))
    pages = {item.id for item in data.corpus}
    assert len(pages) >= 150 and len(data.queries) >= 40
    assert {q.id for q in data.queries} == set(data.qrels)
    for query_id, judged in data.qrels.items():
        assert judged and set(judged) <= pages, query_id
    per_manual = Counter(next(iter(data.qrels[q.id])).rsplit("-p", 1)[0] for q in data.queries)
    assert set(per_manual) == {"nettle", "fontconfig-user", "bzip2", "valgrind"}
    assert min(per_manual.values()) >= 8
    assert all(len(item.text) >= 200 for item in data.corpus)


def test_the_scans_and_pages_sets_judge_the_same_pages_of_pdfs_the_script_makes(tmp_path):
    import sys

    import pypdfium2 as pdfium

    from tests.corpus import write_report_pdf

    sys.path.insert(0, str(FOLDER))
    import scans

    text = load_dataset(str(FOLDER))
    for name in ("manuals-pages", "manuals-scans"):
        # Read as written: the PDFs they name are rebuilt by the script, not kept in git.
        folder = FOLDER.parent / name
        items = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
        assert [i["_id"] for i in items] == [i.id for i in text.corpus]
        assert all(i["file"].startswith("pdfs/") and i["page"] >= 1 for i in items)
        for same in ("queries.jsonl", "qrels/test.tsv"):
            assert (folder / same).read_text() == (FOLDER / same).read_text()
    # What the script writes for the PDFs: pages as they are, and pictures with no text layer.
    source = pdfium.PdfDocument(str(write_report_pdf(tmp_path / "report.pdf")))
    scans.copy_pages(source, [1, 3], tmp_path / "pages.pdf")
    scans.scan_pages(source, [1, 3], tmp_path / "scans.pdf", 100, "Report")
    source.close()
    for name, has_text in (("pages.pdf", True), ("scans.pdf", False)):
        pdf = pdfium.PdfDocument(str(tmp_path / name))
        assert len(pdf) == 2
        layer = pdf[1].get_textpage().get_text_bounded()
        assert ("Regional breakdown" in layer) is has_text, name
        pdf.close()
