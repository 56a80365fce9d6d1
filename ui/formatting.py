"""What the pages say about a hit, as plain functions (no Streamlit), so they are easy to test."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Stages of a search as the API reports them, in pipeline order, with the names the UI shows.
STAGES = {"embed": "Embed query", "search": "Vector search", "hydrate": "Load pages", "rerank": "Rerank"}


# Every ASCII punctuation character: Markdown (CommonMark, GFM) reads each escaped one as itself.
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def markdown_text(text: object) -> str:
    """``text`` as Markdown that shows exactly that text, on one line.

    For anything a document (or a server) wrote, put into a Streamlit element that renders Markdown
    (``st.markdown``, ``st.caption``, ``st.error``, ...): every punctuation character is escaped and
    every run of whitespace is one space, so "# Annual report" is not a heading, and a link, an image
    (which the browser would fetch), an emphasis, a table or HTML is shown as the characters it is.
    """
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))


def _escaped(text: str) -> str:
    """``text`` escaped as :func:`markdown_text` does, but keeping a space at either end."""
    return _PUNCTUATION.sub(r"\\\1", re.sub(r"\s+", " ", text))


# How a match in a snippet is marked: Streamlit's background colour around bold text.
MARK_OPEN, MARK_CLOSE = ":orange-background[**", "**]"


def snippet_segments(snippet: str, spans: Sequence[Mapping[str, Any]]) -> list[tuple[str, bool]]:
    """The snippet cut into ``(text, matched)`` pieces, in order, from the API's ``snippet_spans``.

    Spans may overlap (a phrase and its terms); they are merged. A span out of range, inverted or
    malformed is ignored, and a marked piece is trimmed to its letters and digits (punctuation at
    its ends stays unmarked), so the pieces always join up to the snippet exactly.
    """
    covered = [False] * len(snippet)
    for span in spans:
        try:
            start, end = int(span["start"]), int(span["end"])
        except (KeyError, TypeError, ValueError):
            continue
        start, end = max(0, start), min(len(snippet), end)
        while start < end and not snippet[start].isalnum():
            start += 1
        while end > start and not snippet[end - 1].isalnum():
            end -= 1
        for i in range(start, end):
            covered[i] = True
    pieces: list[tuple[str, bool]] = []
    for i, char in enumerate(snippet):
        if pieces and pieces[-1][1] == covered[i]:
            pieces[-1] = (pieces[-1][0] + char, covered[i])
        else:
            pieces.append((char, covered[i]))
    return pieces


def snippet_markdown(snippet: str, spans: Sequence[Mapping[str, Any]]) -> str:
    """A snippet as Markdown that shows exactly its text, on one line, with the matches marked.

    Every piece is escaped as :func:`markdown_text` escapes (so a document's "# heading", link or
    HTML stays the characters it is); only the marks around the matched pieces are Markdown.
    """
    out = []
    for text, matched in snippet_segments(snippet, spans):
        out.append(f"{MARK_OPEN}{_escaped(text)}{MARK_CLOSE}" if matched else _escaped(text))
    return "".join(out).strip()


# Colours of the boxes drawn over a page: (fill with alpha, outline).
HIGHLIGHT_STYLE = {
    "term": ((255, 214, 0, 110), (255, 120, 0, 255)),
    "phrase": ((0, 150, 255, 40), (0, 90, 255, 255)),
}


def highlight_boxes(
    highlights: Sequence[Mapping[str, Any]], width: int, height: int
) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The API's ``highlights`` as ``(kind, (left, top, right, bottom))`` in pixels of a picture of
    ``width`` x ``height``; phrases first (drawn below the terms). Malformed boxes are ignored."""
    boxes = []
    for item in highlights:
        box, kind = item.get("box"), item.get("kind")
        if kind not in HIGHLIGHT_STYLE or not isinstance(box, list | tuple) or len(box) != 4:
            continue
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in box):
            continue
        x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in box)
        if x1 < x0 or y1 < y0:
            continue
        left, top = math.floor(x0 * width), math.floor(y0 * height)
        boxes.append((kind, (left, top, math.ceil(x1 * width), math.ceil(y1 * height))))
    return sorted(boxes, key=lambda b: b[0] != "phrase")


def draw_highlights(picture: bytes, highlights: Sequence[Mapping[str, Any]]) -> bytes:
    """The picture (encoded bytes) with the highlight boxes drawn over it, as PNG; the picture as it
    is when there is nothing to draw or it cannot be decoded."""
    from PIL import Image, ImageDraw

    if not highlights:
        return picture
    try:
        with Image.open(io.BytesIO(picture)) as opened:
            image = opened.convert("RGBA")
    except Exception:  # an undecodable picture is shown (or not) by the caller as it is
        return picture
    boxes = highlight_boxes(highlights, image.width, image.height)
    if not boxes:
        return picture
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    line = max(2, round(min(image.size) / 300))
    pad = line
    for kind, (x0, y0, x1, y1) in boxes:
        fill, outline = HIGHLIGHT_STYLE[kind]
        grow = pad + (line if kind == "phrase" else 0)  # a phrase's outline around its terms'
        draw.rectangle([x0 - grow, y0 - grow, x1 + grow, y1 + grow], fill=fill, outline=outline, width=line)
    out = io.BytesIO()
    Image.alpha_composite(image, layer).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 file``, ``3 files``."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def rank_movement(rank: int, first_stage_rank: int) -> str:
    """How far reranking moved a hit: ``"↑7 from #9"``, ``"↓2 from #1"`` or ``"= #3"``."""
    moved = first_stage_rank - rank
    if moved > 0:
        return f"↑{moved} from #{first_stage_rank}"
    if moved < 0:
        return f"↓{-moved} from #{first_stage_rank}"
    return f"= #{rank}"


def clock(seconds: float) -> str:
    """``75.4`` -> ``"1:15"``; hours when needed (``"1:02:03"``)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def location(hit: Mapping[str, Any]) -> str:
    """Where in its document a hit is: a page number, a time span, or nothing."""
    if hit.get("page") is not None:
        return f"page {hit['page']}"
    if hit.get("start_s") is not None:
        end = hit.get("end_s")
        return f"{clock(hit['start_s'])}–{clock(end)}" if end is not None else clock(hit["start_s"])
    return ""


def score_bars(hits: list[Mapping[str, Any]]) -> list[tuple[float | None, float]]:
    """Bar lengths in [0, 1] per hit: (rerank score, first-stage score relative to the best of the list).

    Reranker scores are probabilities already. First-stage scores are on the scale of whatever the
    store ranked by (a cosine, or a small fused rank score), so they are shown relative to the best.
    """
    best = max((h["first_stage_score"] for h in hits), default=0.0)
    bars = []
    for h in hits:
        rerank = h.get("rerank_score")
        first = h["first_stage_score"] / best if best > 0 else 0.0
        bars.append((None if rerank is None else min(max(rerank, 0.0), 1.0), min(max(first, 0.0), 1.0)))
    return bars


def latency_rows(timings_ms: Mapping[str, float], round_trip_ms: float) -> list[tuple[str, float]]:
    """The stages of a search, in pipeline order, then the network and server overhead and the total."""
    rows = [(label, float(timings_ms[key])) for key, label in STAGES.items() if key in timings_ms]
    rows += [(key, float(ms)) for key, ms in timings_ms.items() if key not in STAGES]
    overhead = round_trip_ms - sum(ms for _, ms in rows)
    if overhead > 0:
        rows.append(("HTTP and other", overhead))
    rows.append(("Total", round_trip_ms))
    return rows


def parse_tags(text: str) -> list[str]:
    """``"finance, 2024 ,"`` -> ``["finance", "2024"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def job_progress(job: Mapping[str, Any]) -> tuple[float, str]:
    """(fraction of files done, a one-line status) of an ingestion job."""
    files = job.get("files") or []
    done = sum(1 for f in files if f.get("status") != "pending")
    fraction = done / len(files) if files else (1.0 if job.get("state") in ("done", "failed") else 0.0)
    state = job.get("state", "queued")
    if state == "queued":
        return fraction, f"Waiting to start: {plural(len(files), 'file')}"
    if state == "running":
        return fraction, f"Indexing: {done} of {plural(len(files), 'file')} done"
    failed = sum(1 for f in files if f.get("status") == "failed")
    if state == "failed":
        return fraction, f"The job failed: {job.get('error') or 'see the server log'}"
    return fraction, f"Done: {len(files) - failed} indexed, {failed} failed"
