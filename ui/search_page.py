"""The search page: a query (text and/or an image), filters, and the ranked hits as cards."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from ui.client import ApiClient, ApiError
from ui.formatting import (
    clock,
    draw_highlights,
    latency_rows,
    location,
    markdown_text,
    parse_tags,
    plural,
    rank_movement,
    score_bars,
    snippet_markdown,
)

MODALITIES = ["page", "image", "video", "text"]
LEGS = ["content", "text", "bm25"]
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"]


def render(client: ApiClient) -> None:
    """Draw the page; a submitted search is kept in the session so later clicks do not lose it."""
    st.title("Search")
    titles = _document_titles(client)
    rerankers = _rerankers(client)
    with st.form("search"):
        text = st.text_input("Query", placeholder="What are you looking for?", key="query")
        picture = st.file_uploader(
            "Search by image or screenshot (optional)", type=IMAGE_TYPES, key="query_image"
        )
        left, middle, right = st.columns(3)
        modalities = left.multiselect("Kinds", MODALITIES, key="modalities", help="Empty: every kind.")
        documents = middle.multiselect(
            "Documents", list(titles), key="documents", help="Empty: all documents."
        )
        tags = right.text_input("Tags", key="tags", help="Comma-separated; a hit needs any of them.")
        left, middle, right = st.columns(3)
        k = left.slider("Candidates (k)", 1, 200, 50, key="k", help="First-stage hits the reranker rescores.")
        top_n = middle.slider("Results", 1, 50, 10, key="top_n")
        rerank = right.toggle("Rerank", value=True, key="rerank", help="Off: the vector search's order.")
        left, middle, right = st.columns(3)
        legs = left.multiselect(
            "Recall legs",
            LEGS,
            key="legs",
            help="content: the embedding; text: the text vector; bm25: keywords. Empty: the default.",
        )
        grouped = middle.toggle(
            "Group by document", value=False, key="grouped", help="Results count documents, not pages."
        )
        per_document = right.slider("Hits per document", 1, 10, 3, key="group_size")
        left, right = st.columns([1, 2]) if len(rerankers) > 1 else (None, st)
        # A choice only where there is one: the server loaded several rerankers.
        reranker = left.selectbox("Reranker", rerankers, key="reranker") if left is not None else None
        instruction = right.text_input(
            "Reranker instruction (optional)",
            key="instruction",
            placeholder="Given a search query, retrieve relevant candidates that answer the query.",
        )
        submitted = st.form_submit_button("Search", type="primary")
    if submitted:
        request = {
            "text": text,
            "image": picture.getvalue() if picture is not None else None,
            "k": max(k, top_n),
            "top_n": top_n,
            "rerank": rerank,
            "reranker": reranker,
            "instruction": instruction,
            "modalities": modalities,
            "doc_ids": [titles[t] for t in documents],
            "tags": parse_tags(tags),
            "legs": legs,
            "group_size": per_document if grouped else None,
        }
        st.session_state["results"] = _search(client, request)
    results = st.session_state.get("results")
    if results is None:
        return
    if "error" in results:
        st.error(markdown_text(results["error"]))
        return
    _latency(results["response"]["timings_ms"], results["round_trip_ms"])
    hits = results["response"]["hits"]
    if not hits:
        st.info("Nothing matched. Try other words, fewer filters, or more candidates.")
        return
    summary = f"{plural(len(hits), 'result')} from {plural(results['response']['candidates'], 'candidate')}"
    if results["response"].get("reranker"):
        summary += f", reranked by {markdown_text(results['response']['reranker'])}"
    st.caption(summary)
    for hit, bars in zip(hits, score_bars(hits), strict=True):
        _card(client, hit, bars)


def _search(client: ApiClient, request: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with st.spinner("Searching…"):
            response = client.search(**request)
    except ApiError as exc:
        return {"error": str(exc)}
    return {"response": response, "round_trip_ms": 1000 * (time.perf_counter() - started)}


def _rerankers(client: ApiClient) -> list[str]:
    """The loaded rerankers' names; none when the API cannot say (the search then uses its default)."""
    try:
        return client.rerankers()
    except ApiError:
        return []


def _document_titles(client: ApiClient) -> dict[str, str]:
    """Title (made unique) -> document id, for the document filter."""
    try:
        documents = client.documents()
    except ApiError as exc:
        st.warning(markdown_text(f"Could not list the documents for the filter: {exc}"))
        return {}
    titles: dict[str, str] = {}
    for doc in documents:
        name = doc["title"] or doc["source"].rsplit("/", 1)[-1]
        titles[name if name not in titles else f"{name} ({doc['doc_id'][:8]})"] = doc["doc_id"]
    return titles


def _latency(timings_ms: dict[str, float], round_trip_ms: float) -> None:
    rows = latency_rows(timings_ms, round_trip_ms)
    for column, (label, ms) in zip(st.columns(len(rows)), rows, strict=True):
        column.metric(label, f"{ms:,.0f} ms")


def _card(client: ApiClient, hit: dict[str, Any], bars: tuple[float | None, float]) -> None:
    rerank_bar, first_bar = bars
    with st.container(border=True):
        picture, body = st.columns([1, 3])
        with picture:
            highlights = hit.get("highlights") or []
            if hit.get("thumbnail_url"):
                alt = f"thumbnail of {hit['title']}"
                _image(client, hit["thumbnail_url"], alt=alt, highlights=highlights)
            if highlights:
                words = sum(1 for h in highlights if h.get("kind") == "term") or len(highlights)
                st.caption(f"{plural(words, 'matching word')} marked on the page")
            if hit.get("image_url") and st.button("View full size", key=f"full-{hit['unit_id']}"):
                _full_page(client, hit)
        with body:
            where = location(hit)
            # Titles, snippets and paths are the documents' own text: shown as text, never as Markdown.
            st.markdown(
                f"**#{hit['rank']} {markdown_text(hit['title'])}**" + (f" · {where}" if where else "")
            )
            if hit.get("rerank_score") is not None:
                st.caption(f"Reranking: {rank_movement(hit['rank'], hit['first_stage_rank'])}")
                st.progress(rerank_bar or 0.0, text=f"Reranker score {hit['rerank_score']:.3f}")
            st.progress(first_bar, text=f"Vector search score {hit['first_stage_score']:.3f}")
            if hit.get("snippet") and hit.get("snippet_spans"):
                # The matches marked; the document's own text escaped, never read as Markdown.
                st.markdown(snippet_markdown(hit["snippet"], hit["snippet_spans"]))
            elif hit.get("snippet"):
                st.text(hit["snippet"])
            tags = f" · tags: {', '.join(hit['tags'])}" if hit.get("tags") else ""
            st.caption(markdown_text(hit["source"] + tags))
        if hit.get("frame_urls"):
            _video(client, hit)


def _video(client: ApiClient, hit: dict[str, Any]) -> None:
    frames = []
    for url in hit["frame_urls"]:
        try:
            frames.append(_fetch(client, url))
        except ApiError as exc:
            st.warning(markdown_text(f"A keyframe could not be loaded: {exc}"))
            return
    st.image(frames, caption=[clock(t) for t in hit["frame_times"]], width=140)
    start = int(hit.get("start_s") or 0)
    key = f"play-{hit['unit_id']}"
    if st.button(f"▶ Play from {clock(start)}", key=key) or st.session_state.get(key + "-on"):
        st.session_state[key + "-on"] = True
        try:
            st.video(_fetch(client, hit["source_url"]), start_time=start)
        except ApiError as exc:
            st.error(markdown_text(f"The video could not be loaded: {exc}"))


def _image(client: ApiClient, url: str, *, alt: str, highlights: list[dict[str, Any]] | None = None) -> None:
    try:
        picture = _fetch(client, url)
        # The query's matches drawn over the picture (boxes normalised to it, so any size works).
        st.image(draw_highlights(picture, highlights) if highlights else picture, alt=alt)
    except ApiError as exc:
        st.caption(markdown_text(f"(picture unavailable: {exc})"))


@st.dialog("Full size", width="large")
def _full_page(client: ApiClient, hit: dict[str, Any]) -> None:
    st.markdown(f"**{markdown_text(hit['title'])}** {location(hit)}")
    _image(client, hit["image_url"], alt=f"full page of {hit['title']}", highlights=hit.get("highlights"))


@st.cache_data(max_entries=512, show_spinner=False)
def _fetch_cached(base_url: str, url: str, _client: ApiClient) -> bytes:
    # Unit pictures never change (a unit id names one version of a file), so caching by URL is safe.
    return _client.fetch(url)


def _fetch(client: ApiClient, url: str) -> bytes:
    return _fetch_cached(client.base_url, url, client)
