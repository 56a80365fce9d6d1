"""The match shown where it is: the query's terms and phrases, boxed on the page where they were drawn.

The matching runs the keyword leg's own bm25 model; the end-to-end tests index generated files (a PDF
with a text layer, a scan read by the real OCR engine, a Markdown chunk) with the tiny embedder and
check each returned box against the pixels of the drawn word.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from reportlab.pdfgen import canvas

from indexer.ingest import Ingestor, document_id
from indexer.loaders.base import LoadOptions
from indexer.media_store import MediaStore
from indexer.store import Filter, Match, VectorStore
from retriever import PHRASE, TERM, Retriever, SearchFilters
from retriever.highlight import MAX_MATCHES, QueryTerms, page_highlights, phrase_runs, text_spans
from tests.corpus import draw_red_word, iou, red_box

OPTIONS = LoadOptions(image_max_pixels=400 * 32 * 32)
SCAN_SIZE = (1000, 360)
SCAN_LINES = ("Quarterly zebrafish inventory", "Marmalade shipments reached dock seven")


# -- matching, on its own ------------------------------------------------------------------------------


def spans_text(text: str, query: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.kind) for s in text_spans(text, QueryTerms.of(query))]


def test_terms_are_what_the_keyword_leg_matches_stems_and_no_stop_words():
    text = "The revenues grew, growing (fast) for the U.S. report-writing team; then it stopped."
    assert spans_text(text, "revenue grows") == [("revenues", TERM), ("growing", TERM)]  # not "grew":
    assert spans_text(text, "grew") == [("grew", TERM)]  # the stemmer keeps irregular forms apart
    assert spans_text(text, "the and it") == []  # stop-words match nothing, as in the keyword leg
    assert spans_text(text, "REPORT") == [("report", TERM)]  # the part of "report-writing" that matched
    assert spans_text(text, "u.s.") == [("U", TERM)]  # the tokenizer splits it; "s" is a stop-word
    assert spans_text(text, "fast") == [("fast", TERM)]  # without the brackets around it


def test_phrases_are_query_words_in_order_word_for_word():
    text = "Net income rose. Income net fell; net  income, again: state of the art."
    assert spans_text(text, "net income") == [
        ("Net income", PHRASE),
        ("net  income", PHRASE),
        ("Net", TERM),
        ("income", TERM),
        ("Income", TERM),
        ("net", TERM),
        ("net", TERM),
        ("income", TERM),
    ]
    phrases = [s for s in spans_text(text, "what is state of the art") if s[1] == PHRASE]
    assert phrases == [("state of the art", PHRASE)]  # stop-words inside a phrase belong to it
    assert [s for s in spans_text(text, "the net") if s[1] == PHRASE] == []  # one term is no phrase
    assert [s for s in spans_text(text, "incomes net") if s[1] == PHRASE] == []  # stems: terms, not phrases


def test_phrase_runs_merge_overlaps_and_need_two_terms():
    page = ["a", "b", "c", "d", "b", "c"]
    # "a b c" and "c d" overlap: one run; "b c" after them is a run of its own.
    assert phrase_runs(page, ["a", "b", "c", "b", "c", "d"], [True] * 6) == [(0, 4), (4, 6)]
    assert phrase_runs(page, ["b", "c"], [True] * 6) == [(1, 3), (4, 6)]
    assert phrase_runs(page, ["b", "c"], [False, True, False, False, True, False]) == []
    assert phrase_runs(page, ["b"], [True] * 6) == []


def test_page_boxes_a_phrase_per_line_and_every_term():
    words = [
        ("Quarterly", 0.10, 0.10, 0.30, 0.14),
        ("revenue", 0.32, 0.10, 0.50, 0.14),
        ("grew", 0.10, 0.16, 0.20, 0.20),  # the next line
        ("fast.", 0.22, 0.16, 0.30, 0.20),
    ]
    found = page_highlights(words, QueryTerms.of("revenue grew fast"))
    assert [(h.text, h.kind, h.box) for h in found] == [
        ("revenue", PHRASE, (0.32, 0.10, 0.50, 0.14)),
        ("grew fast.", PHRASE, (0.10, 0.16, 0.30, 0.20)),
        ("revenue", TERM, (0.32, 0.10, 0.50, 0.14)),
        ("grew", TERM, (0.10, 0.16, 0.20, 0.20)),
        ("fast.", TERM, (0.22, 0.16, 0.30, 0.20)),
    ]
    assert page_highlights(words, QueryTerms.of("the of")) == ()
    assert page_highlights((), QueryTerms.of("revenue")) == ()


HOSTILE = [
    "",
    "the of and a an",
    "x" * 10_000,
    "revenue " * 1_250,
    ".*+?[](){}|^$\\ (?P<x>a)\\1 [[:alpha:]] %s %n {0}",
    "\u202erevenue\u202c 👩‍👩‍👧 e\u0301 \u200b\u200d \ufeff 𝔯𝔢𝔳𝔢𝔫𝔲𝔢 ﷽ 日本語のテキスト",
    "\ud800 lone surrogate \udfff revenue",
    "\x00\x01 revenue\x7f \n\t\r",
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_mark_little_and_never_fail(query):
    page = [(word, 0.1, 0.1, 0.2, 0.2) for word in ("Revenue grew " * 300).split()]
    started = time.perf_counter()
    terms = QueryTerms.of(query)
    boxes = page_highlights(page, terms)
    spans = text_spans(" ".join(w[0] for w in page), terms)
    assert time.perf_counter() - started < 2.0
    assert len(boxes) <= MAX_MATCHES and len(spans) <= MAX_MATCHES
    assert all(0 <= s.start < s.end for s in spans)


def test_a_long_page_and_a_repetitive_query_stay_bounded():
    page = [("revenue", 0.1, 0.1, 0.2, 0.2)] * 20_000
    started = time.perf_counter()
    found = page_highlights(page, QueryTerms.of("revenue " * 64))
    assert time.perf_counter() - started < 3.0
    assert len(found) == MAX_MATCHES and found[0].kind == PHRASE


# -- end to end: generated files, indexed, searched --------------------------------------------------------


def write_text_pdf(path: Path) -> Path:
    """A page with a text layer; the word "zeppelin" drawn in red, so its pixels can be found."""
    c = canvas.Canvas(str(path), pagesize=(595, 842))
    c.setTitle("Airship annual")
    c.setFont("Helvetica", 20)
    c.drawString(72, 760, "Airship annual report")
    draw_red_word(
        c, 72, 700, "The hangar in Friedrichshafen holds the ", "zeppelin", "fleet over winter.", 16
    )
    c.drawString(72, 670, "Helium costs rose by nine percent this year.")
    c.showPage()
    c.save()
    return path


def write_scan(path: Path) -> tuple[Path, dict[str, tuple[int, int, int, int]]]:
    """Text drawn as pixels (no text layer anywhere); returns the drawn words' pixel boxes."""
    image = Image.new("RGB", SCAN_SIZE, (246, 245, 240))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    boxes = {}
    for row, line in enumerate(SCAN_LINES):
        x, y = 60, 60 + row * 120
        draw.text((x, y), line, font=font, fill=(25, 25, 25))
        for word in line.split():
            boxes[word.lower()] = tuple(round(v) for v in draw.textbbox((x, y), word, font=font))
            x += draw.textlength(word + " ", font=font)
    image.save(path)
    return path, boxes


def in_pixels(box, width: int, height: int) -> tuple[float, float, float, float]:
    return box[0] * width, box[1] * height, box[2] * width, box[3] * height


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("highlight-files")
    pdf = write_text_pdf(root / "airship.pdf")
    scan, boxes = write_scan(root / "inventory-scan.png")
    notes = root / "notes.md"
    notes.write_text("# Hangar notes\n\nThe zeppelin fleet needs [new](http://evil.example) helium valves.\n")
    return {"root": root, "pdf": pdf, "scan": scan, "scan_boxes": boxes, "notes": notes}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, files, tiny_embedder):
    pytest.importorskip("rapidocr_onnxruntime")
    store = VectorStore.open(location=":memory:", collection="highlights")
    media = MediaStore(tmp_path_factory.mktemp("highlight-media"))
    report = Ingestor(store, media, tiny_embedder, options=OPTIONS).ingest([files["root"]])
    assert not report.failed, report.failed
    yield store, media
    store.close()


@pytest.fixture
def retriever(indexed, tiny_embedder):
    store, media = indexed
    return Retriever(store, media, tiny_embedder)


def only(path: Path) -> SearchFilters:
    return SearchFilters(doc_ids=(document_id(path),))


def test_the_box_of_a_text_layer_word_covers_its_drawn_pixels(retriever, indexed, files):
    _, media = indexed
    (hit,) = retriever.search("zeppelins", only(files["pdf"]), rerank=False).hits
    (term,) = [h for h in hit.highlights if h.kind == TERM]
    assert term.text == "zeppelin"  # "zeppelins" stems to the word on the page
    render = media.resolve(hit.image)
    with Image.open(render) as page:
        found = in_pixels(term.box, *page.size)
        drawn = red_box(page)
    assert iou(found, drawn) > 0.5, (found, drawn)
    assert found[0] - 1 <= drawn[0] and drawn[2] <= found[2] + 1  # the whole word, left to right
    assert [hit.snippet[s.start : s.end] for s in hit.snippet_spans] == ["zeppelin"]


def test_the_box_of_a_scanned_word_read_by_ocr_covers_its_drawn_pixels(retriever, files):
    (hit,) = retriever.search("zebrafish inventories", only(files["scan"]), rerank=False).hits
    assert hit.modality == "image"
    terms = {h.text.lower(): h.box for h in hit.highlights if h.kind == TERM}
    assert set(terms) == {"zebrafish", "inventory"}  # "inventories" and "inventory": one stem
    for word, box in terms.items():
        drawn = files["scan_boxes"][word]
        found = in_pixels(box, *SCAN_SIZE)
        assert iou(found, drawn) > 0.5, (word, found, drawn)
        cx, cy = (drawn[0] + drawn[2]) / 2, (drawn[1] + drawn[3]) / 2
        assert found[0] <= cx <= found[2] and found[1] <= cy <= found[3]
    assert not [h for h in hit.highlights if h.kind == PHRASE]  # "inventories" is not word for word
    (hit,) = retriever.search("zebrafish inventory", only(files["scan"]), rerank=False).hits
    (phrase,) = [h for h in hit.highlights if h.kind == PHRASE]
    assert phrase.text.lower() == "zebrafish inventory"
    drawn = files["scan_boxes"]["zebrafish"][:2] + files["scan_boxes"]["inventory"][2:]
    assert iou(in_pixels(phrase.box, *SCAN_SIZE), drawn) > 0.5


def test_an_exact_phrase_gets_one_box_over_its_words(retriever, indexed, files):
    (hit,) = retriever.search("the zeppelin fleet", only(files["pdf"]), rerank=False).hits
    (phrase,) = [h for h in hit.highlights if h.kind == PHRASE]
    terms = {h.text: h.box for h in hit.highlights if h.kind == TERM}
    assert phrase.text == "the zeppelin fleet" and set(terms) == {"zeppelin", "fleet"}
    assert phrase.box[0] < terms["zeppelin"][0] and phrase.box[2] == pytest.approx(terms["fleet"][2])
    spans = [(hit.snippet[s.start : s.end], s.kind) for s in hit.snippet_spans]
    assert spans[0] == ("the zeppelin fleet", PHRASE) and ("fleet", TERM) in spans


def test_a_text_chunk_gets_snippet_spans_only(retriever, files):
    (hit,) = retriever.search("helium valves", only(files["notes"]), rerank=False).hits
    assert hit.modality == "text" and hit.highlights == ()
    assert [(hit.snippet[s.start : s.end], s.kind) for s in hit.snippet_spans] == [
        ("helium valves", PHRASE),
        ("helium", TERM),
        ("valves", TERM),
    ]


def test_reranked_and_grouped_hits_are_marked_too(indexed, tiny_embedder, tiny_reranker):
    store, media = indexed
    result = Retriever(store, media, tiny_embedder, tiny_reranker).search(
        "zeppelin fleet", k=5, top_n=3, group_size=1
    )
    assert result.hits and result.groups
    assert all(h.highlights for h in result.hits if h.modality == "page")
    assert [h for g in result.groups for h in g.hits] == list(result.hits)  # the same marked hits


# Lone surrogates are the API's to refuse (422): the embedder's tokenizer cannot read them.
SEARCHABLE = [q for q in HOSTILE[1:] if "\ud800" not in q]


@pytest.mark.parametrize("query", SEARCHABLE, ids=range(len(SEARCHABLE)))
def test_hostile_queries_search_without_error(retriever, query):
    result = retriever.search(query, k=5, top_n=3, rerank=False)
    for hit in result.hits:
        assert all(0 <= v <= 1 for h in hit.highlights for v in h.box)
        assert all(0 <= s.start < s.end <= len(hit.snippet) for s in hit.snippet_spans)


@pytest.fixture
def pdf_only(tmp_path, files, tiny_embedder):
    store = VectorStore.open(location=":memory:", collection="legacy")
    media = MediaStore(tmp_path / "media")
    report = Ingestor(store, media, tiny_embedder, options=OPTIONS).ingest([files["pdf"]])
    assert not report.failed
    yield store, media, Retriever(store, media, tiny_embedder)
    store.close()


def test_a_missing_words_file_means_no_boxes_not_an_error(pdf_only):
    store, media, retriever = pdf_only
    (point,) = list(store.units())
    media.resolve(point.payload["words_file"]).unlink()
    (hit,) = retriever.search("zeppelin", rerank=False).hits
    assert hit.highlights == () and hit.snippet_spans  # the snippet is still marked


def test_a_store_written_with_words_in_the_payload_still_highlights(pdf_only):
    store, media, retriever = pdf_only
    (point,) = list(store.units())
    words = media.words(point.payload["words_file"])
    # As earlier releases wrote it: the words in the payload, no words file.
    unit = Filter.of(Match("doc_id", (point.payload["doc_id"],)))
    store.set_payload(unit, {"words": [list(w) for w in words], "words_file": None})
    media.resolve(point.payload["words_file"]).unlink()
    (hit,) = retriever.search("zeppelin", rerank=False).hits
    (term,) = [h for h in hit.highlights if h.kind == TERM]
    assert term.text == "zeppelin" and term.box == next(w[1:] for w in words if w[0] == "zeppelin")
