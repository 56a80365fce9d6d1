"""Two-stage search over a real ingested corpus: tiny Qwen3-VL embedder, MiniLM text vector, tiny reranker."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from core.errors import InvalidInputError
from indexer.ingest import Ingestor, document_id
from indexer.loaders.base import LoadOptions
from indexer.media_store import MediaStore
from indexer.store import VectorStore
from retriever import Retriever, SearchFilters
from tests.corpus import NOTES_TEXT

OPTIONS = LoadOptions(
    image_max_pixels=48 * 32 * 32, frame_max_pixels=8 * 32 * 32, segment_seconds=4.0, chunk_tokens=64
)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, corpus, tiny_embedder, minilm):
    root = tmp_path_factory.mktemp("search")
    store = VectorStore.open(location=":memory:", collection="units")
    media = MediaStore(root / "media")
    ingestor = Ingestor(store, media, tiny_embedder, minilm, options=OPTIONS)
    ingestor.ingest([corpus.root / "docs"], recursive=True, tags=["docs"])
    ingestor.ingest([corpus.root / "media"], recursive=True, tags=["media"])
    yield store, media
    store.close()


@pytest.fixture
def retriever(indexed, tiny_embedder, minilm, tiny_reranker):
    store, media = indexed
    return Retriever(store, media, tiny_embedder, tiny_reranker, text_embedder=minilm)


def test_hits_carry_both_scores_and_what_a_ui_shows(retriever, indexed):
    result = retriever.search("quarterly revenue chart", k=12, top_n=5)
    assert result.candidates == min(12, indexed[0].count())
    assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
    scores = [h.rerank_score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert len({h.first_stage_rank for h in result.hits}) == 5
    assert set(result.timings_ms) == {"embed", "search", "hydrate", "rerank"}
    for hit in result.hits:
        assert hit.title and hit.source and hit.doc_id and hit.modality
        if hit.modality == "page":
            assert hit.page >= 1 and hit.image and hit.thumbnail
        if hit.modality == "video":
            assert hit.end_s > hit.start_s and hit.frames


def test_rerank_scores_are_the_rerankers_on_the_stored_media(retriever, tiny_reranker, indexed):
    _, media = indexed
    result = retriever.search(
        "a diagram with coloured bars", SearchFilters(modalities=("page", "image")), k=6
    )
    for hit in result.hits[:3]:
        picture = Image.open(media.resolve(hit.image)).convert("RGB")
        (alone,) = tiny_reranker.score("a diagram with coloured bars", [{"image": picture}])
        assert hit.rerank_score == pytest.approx(alone, abs=1e-4)


def test_without_rerank_the_first_stage_order_is_kept(retriever):
    result = retriever.search("installation steps", k=8, top_n=8, rerank=False)
    assert [h.first_stage_rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert all(h.rerank_score is None for h in result.hits)
    first = [h.first_stage_score for h in result.hits]
    assert first == sorted(first, reverse=True)
    assert "rerank" not in result.timings_ms


def test_the_text_vector_is_fused_with_the_content_vector(retriever, tiny_embedder, indexed):
    store, media = indexed
    chunk = NOTES_TEXT.strip().split("\n")[0]
    query = "which vendor of coffee wants more money?"  # the notes' meaning, none of their words
    texts = SearchFilters(modalities=("text",))

    def rank_of_notes(result) -> int:
        return next(h.first_stage_rank for h in result.hits if chunk in h.snippet)

    fused = retriever.search(query, texts, k=50, top_n=50, rerank=False)
    content_only = Retriever(store, media, tiny_embedder).search(query, texts, k=50, top_n=50, rerank=False)
    # The random tiny embedder ranks the notes anywhere; MiniLM's text vector puts them first, and
    # reciprocal rank fusion lifts them to the top of the fused list.
    assert rank_of_notes(content_only) > 1
    assert rank_of_notes(fused) == 1


@pytest.mark.parametrize(
    ("filters", "check"),
    [
        (SearchFilters(modalities=("video",)), lambda h: h.modality == "video"),
        (SearchFilters(tags=("media",)), lambda h: "media" in h.tags),
        (SearchFilters(modalities=("page", "text")), lambda h: h.modality in ("page", "text")),
    ],
    ids=["modality", "tags", "modalities"],
)
def test_filters_restrict_the_candidates(retriever, filters, check):
    result = retriever.search("anything at all", filters, k=50, top_n=50, rerank=False)
    assert result.hits and all(check(h) for h in result.hits)


def test_source_prefix_and_document_filters(retriever, corpus):
    docs = str(corpus.root / "docs")
    under = retriever.search("report", SearchFilters(source_prefix=docs), k=50, top_n=50, rerank=False)
    assert under.hits and all(h.source.startswith(docs + "/") for h in under.hits)
    pdf = str(corpus.report_pdf)
    one = retriever.search("report", SearchFilters(source_prefix=pdf), k=50, top_n=50, rerank=False)
    assert {h.source for h in one.hits} == {pdf}
    by_id = retriever.search(
        "report", SearchFilters(doc_ids=(document_id(corpus.report_pdf),)), k=50, top_n=50, rerank=False
    )
    assert {h.unit_id for h in by_id.hits} == {h.unit_id for h in one.hits}


def test_ingestion_date_range(retriever):
    now = datetime.now(timezone.utc)
    past = retriever.search("x", SearchFilters(ingested_after=now - timedelta(hours=1)), rerank=False)
    future = retriever.search("x", SearchFilters(ingested_after=now + timedelta(hours=1)), rerank=False)
    assert past.hits and not future.hits


def test_image_and_video_queries(retriever, corpus, frames):
    by_image = retriever.search({"image": str(corpus.screenshot_png), "text": "this screen"}, k=5, top_n=3)
    assert len(by_image.hits) == 3
    by_video = retriever.search({"video": frames(4)}, k=5, top_n=2)
    assert len(by_video.hits) == 2


def test_a_text_only_collection_answers_text_and_refuses_pure_images(indexed, minilm, tiny_reranker, corpus):
    store = VectorStore.open(location=":memory:", collection="text-only")
    try:
        ingestor = Ingestor(store, indexed[1], minilm, options=OPTIONS)
        ingestor.ingest([corpus.guide_md, corpus.notes_txt])
        retriever = Retriever(store, indexed[1], minilm, tiny_reranker)
        assert retriever.search({"text": "install", "image": str(corpus.screenshot_png)}).hits
        with pytest.raises(InvalidInputError, match="reads only text"):
            retriever.search({"image": str(corpus.screenshot_png)})
    finally:
        store.close()


def test_bad_queries_are_clear_errors(retriever):
    with pytest.raises(InvalidInputError, match="empty"):
        retriever.search("   ")
    with pytest.raises(InvalidInputError, match="at least 1"):
        retriever.search("x", k=0)
    with pytest.raises(InvalidInputError, match="unknown modality"):
        retriever.search("x", SearchFilters(modalities=("audio",)))


def test_an_empty_collection_has_no_hits(tiny_embedder, tiny_reranker, tmp_path):
    with VectorStore.open(location=":memory:") as store:
        result = Retriever(store, MediaStore(tmp_path), tiny_embedder, tiny_reranker).search("x")
    assert result.hits == () and result.candidates == 0
    assert np.isfinite(result.timings_ms["search"])
