"""What the pages say about hits and jobs, computed by hand."""

from __future__ import annotations

import io
import re
from html import unescape

import numpy as np
import pytest

from ui.formatting import (
    HIGHLIGHT_STYLE,
    MARK_CLOSE,
    MARK_OPEN,
    clock,
    draw_highlights,
    highlight_boxes,
    job_progress,
    latency_rows,
    location,
    parse_tags,
    rank_movement,
    score_bars,
    snippet_markdown,
    snippet_segments,
)


@pytest.mark.parametrize(
    ("rank", "first", "text"),
    [(2, 9, "↑7 from #9"), (4, 1, "↓3 from #1"), (3, 3, "= #3"), (1, 2, "↑1 from #2")],
)
def test_rank_movement(rank, first, text):
    assert rank_movement(rank, first) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (75.9, "1:15"), (3723, "1:02:03"), (-4, "0:00")])
def test_clock(seconds, text):
    assert clock(seconds) == text


def test_location_of_pages_spans_and_text():
    assert location({"page": 3, "start_s": None}) == "page 3"
    assert location({"page": None, "start_s": 10.0, "end_s": 20.5}) == "0:10–0:20"
    assert location({"page": None, "start_s": 61.0, "end_s": None}) == "1:01"
    assert location({"page": None, "start_s": None}) == ""


def test_score_bars_scale_first_stage_to_the_best_and_clamp():
    hits = [
        {"rerank_score": 0.9, "first_stage_score": 0.5},
        {"rerank_score": None, "first_stage_score": 0.25},
        {"rerank_score": 1.2, "first_stage_score": -0.1},
    ]
    assert score_bars(hits) == [(0.9, 1.0), (None, 0.5), (1.0, 0.0)]
    assert score_bars([{"rerank_score": 0.5, "first_stage_score": -1.0}]) == [(0.5, 0.0)]


def test_latency_rows_in_pipeline_order_with_overhead_and_total():
    rows = latency_rows({"rerank": 100.0, "embed": 10.0, "search": 2.0, "hydrate": 8.0}, 130.0)
    assert rows == [
        ("Embed query", 10.0),
        ("Vector search", 2.0),
        ("Load pages", 8.0),
        ("Rerank", 100.0),
        ("HTTP and other", 10.0),
        ("Total", 130.0),
    ]
    # A faster round trip than the stage sum (clock skew) shows no negative overhead.
    assert latency_rows({"embed": 5.0}, 4.0) == [("Embed query", 5.0), ("Total", 4.0)]


def test_job_progress_states():
    files = [{"status": "added"}, {"status": "pending"}, {"status": "failed"}, {"status": "pending"}]
    assert job_progress({"state": "running", "files": files}) == (0.5, "Indexing: 2 of 4 files done")
    assert job_progress({"state": "queued", "files": files[1:2]}) == (0.0, "Waiting to start: 1 file")
    done = [{"status": "added"}, {"status": "failed"}]
    assert job_progress({"state": "done", "files": done}) == (1.0, "Done: 1 indexed, 1 failed")
    failed = job_progress({"state": "failed", "files": [], "error": "the store went away"})
    assert failed == (1.0, "The job failed: the store went away")


def test_parse_tags():
    assert parse_tags(" finance, 2024 ,, ") == ["finance", "2024"]
    assert parse_tags("") == []


# -- the query's matches: marked in the snippet, drawn over the page ---------------------------------------

EVIL_SNIPPET = (
    "# Revenue [grew](http://evil.example/x) ![p](http://evil.example/p.png) <b>revenue</b> *up* 12%"
)


def test_snippet_segments_merge_spans_and_join_up_to_the_snippet():
    spans = [
        {"start": 2, "end": 14, "kind": "phrase"},  # "Revenue [gre": a phrase, trimmed to letters
        {"start": 2, "end": 9, "kind": "term"},
        {"start": 500, "end": 900, "kind": "term"},  # out of range
        {"start": 9, "end": 3, "kind": "term"},  # inverted
        {"start": "x", "end": None},  # malformed
        # "<b>revenue</b>": the brackets at its ends are left out
        {"start": EVIL_SNIPPET.index("<b>"), "end": EVIL_SNIPPET.index("</b>") + 4, "kind": "term"},
    ]
    pieces = snippet_segments(EVIL_SNIPPET, spans)
    assert "".join(text for text, _ in pieces) == EVIL_SNIPPET
    assert [text for text, marked in pieces if marked] == ["Revenue [gre", "b>revenue</b"]
    assert snippet_segments("plain", []) == [("plain", False)]
    assert snippet_segments("", [{"start": 0, "end": 3}]) == []


def test_a_marked_snippet_is_the_document_s_text_never_markdown():
    from markdown_it import MarkdownIt

    start = EVIL_SNIPPET.index("revenue<")
    spans = [{"start": 2, "end": 9, "kind": "term"}, {"start": start, "end": start + 7, "kind": "term"}]
    markdown = snippet_markdown(EVIL_SNIPPET, spans)
    assert markdown.count(MARK_OPEN) == markdown.count(MARK_CLOSE) == 2
    # As CommonMark reads it, with Streamlit's colour directive taken for what it shows (bold):
    html = MarkdownIt("commonmark").render(markdown.replace(MARK_OPEN, "**").replace(MARK_CLOSE, "**"))
    assert re.findall(r"<strong>(.*?)</strong>", html) == ["Revenue", "revenue"]
    assert not re.search(r"<(h\d|a|img|b|em|code|ul|ol|li|blockquote)\b", html), html
    shown = " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())
    assert shown == EVIL_SNIPPET
    assert snippet_markdown("# plain", []) == "\\# plain"


def test_highlight_boxes_in_pixels_phrases_first_and_bad_boxes_dropped():
    marks = [
        {"text": "grew", "box": [0.5, 0.25, 0.75, 0.5], "kind": "term"},
        {"text": "revenue grew", "box": [0.1, 0.25, 0.75, 0.5], "kind": "phrase"},
        {"text": "x", "box": [0.1, 0.2, 0.3], "kind": "term"},
        {"text": "x", "box": [0.5, 0.5, 0.1, 0.1], "kind": "term"},
        {"text": "x", "box": [float("nan"), 0, 1, 1], "kind": "term"},
        {"text": "x", "box": [0, 0, 1, 1], "kind": "<script>"},
        {"text": "x", "box": [-1, -1, 9, 9], "kind": "term"},  # clamped to the picture
    ]
    assert highlight_boxes(marks, 200, 100) == [
        ("phrase", (20, 25, 150, 50)),
        ("term", (100, 25, 150, 50)),
        ("term", (0, 0, 200, 100)),
    ]


def test_the_box_drawn_falls_on_the_drawn_word():
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("RGB", (600, 300), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=36)
    draw.text((40, 40), "Revenue grew", font=font, fill="black")
    word = draw.textbbox((40, 40), "Revenue", font=font)  # the drawn word, in pixels
    out = io.BytesIO()
    page.save(out, format="PNG")
    box = [word[0] / 600, word[1] / 300, word[2] / 600, word[3] / 300]
    drawn = Image.open(io.BytesIO(draw_highlights(out.getvalue(), [{"box": box, "kind": "term"}]))).convert(
        "RGB"
    )
    pixels = np.asarray(drawn).astype(int)
    before = np.asarray(page).astype(int)
    outline = HIGHLIGHT_STYLE["term"][1]
    changed = np.nonzero(np.abs(pixels - before).sum(axis=2) > 0)
    # Everything drawn hugs the word's box (a few pixels of padding and outline) ...
    assert changed[1].min() >= word[0] - 6 and changed[1].max() <= word[2] + 6
    assert changed[0].min() >= word[1] - 6 and changed[0].max() <= word[3] + 6
    # ... its outline is the term colour, on all four sides, and the white inside it is tinted yellow.
    is_outline = np.abs(pixels - np.array(outline[:3])).sum(axis=2) < 30
    ys, xs = np.nonzero(is_outline)
    assert xs.min() < word[0] and xs.max() >= word[2] and ys.min() < word[1] and ys.max() >= word[3]
    inside = pixels[word[1] : word[3], word[0] : word[2]]
    white = (before[word[1] : word[3], word[0] : word[2]] == 255).all(axis=2)
    tinted = inside[white]
    assert (tinted[:, 2] < 230).all() and (tinted[:, 0] > 240).all()  # white turned yellow
    assert pixels[200, 500].tolist() == [255, 255, 255]  # far from the word: untouched


def test_drawing_nothing_or_on_a_broken_picture_returns_it_as_it_is():
    assert draw_highlights(b"not a picture", [{"box": [0, 0, 1, 1], "kind": "term"}]) == b"not a picture"
    assert draw_highlights(b"\x89PNG whatever", []) == b"\x89PNG whatever"
