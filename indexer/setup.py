"""Build the indexer's parts from :class:`core.settings.Settings` (the only place that reads them)."""

from __future__ import annotations

import logging
from dataclasses import replace

from core.settings import Settings
from indexer.embedders.base import Embedder
from indexer.ingest import Ingestor
from indexer.loaders.base import LoadOptions, TokenSpans
from indexer.media_store import MediaStore
from indexer.store import ClusterOptions, VectorStore

logger = logging.getLogger(__name__)


def open_store(settings: Settings, *, location: str | None = None) -> VectorStore:
    """The configured store: a Qdrant server when ``qdrant_url`` is set, else the embedded Qdrant Edge
    folder.

    Args:
        settings: where the store is.
        location: ``":memory:"`` for a throwaway store (tests); overrides the settings.
    """
    if location is not None:
        return VectorStore.open(location=location, collection=settings.collection)
    if settings.qdrant_url:
        return VectorStore.open(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            collection=settings.collection,
            quantization=settings.qdrant_quantization,
            hnsw_ef=settings.hnsw_ef,
            cluster=ClusterOptions(
                shard_number=settings.qdrant_shard_number,
                replication_factor=settings.qdrant_replication_factor,
                write_consistency_factor=settings.qdrant_write_consistency_factor,
                read_consistency=settings.qdrant_read_consistency,
            ),
        )
    settings.store_path.mkdir(parents=True, exist_ok=True)
    return VectorStore.open(
        path=settings.store_path,
        collection=settings.collection,
        quantization=settings.qdrant_quantization,
        optimize_every=settings.store_optimize_every,
        min_free_bytes=settings.store_min_free_mb * 2**20,
        hnsw_ef=settings.hnsw_ef,
    )


def load_options(settings: Settings, token_spans: TokenSpans | None = None) -> LoadOptions:
    """Loader options: the reranker's pixel budgets, the media limits and the chunking settings."""
    return LoadOptions(
        image_min_pixels=settings.image_min_pixels,
        image_max_pixels=settings.image_max_pixels,
        policy=settings.media_policy(),
        segment_seconds=settings.video_segment_seconds,
        keyframe_fps=settings.video_keyframe_fps,
        max_frames_per_segment=settings.video_max_frames_per_segment,
        frame_max_pixels=settings.video_max_pixels,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=min(settings.chunk_overlap, settings.chunk_tokens - 1),
        token_spans=token_spans,
    )


def build_ingestor(
    settings: Settings,
    store: VectorStore,
    *,
    embedder: Embedder | None = None,
    text_embedder: Embedder | None = None,
) -> Ingestor:
    """An :class:`Ingestor` with the configured embedders (loaded here unless given)."""
    from indexer.embedders import embedder_from_settings, text_embedder_from_settings

    if embedder is None:
        embedder = embedder_from_settings(settings)
    if text_embedder is None and settings.text_embedder_model:
        text_embedder = text_embedder_from_settings(settings)
    return ingestor_from_parts(settings, store, MediaStore(settings.media_dir), embedder, text_embedder)


def ingestor_from_parts(
    settings: Settings,
    store: VectorStore,
    media: MediaStore,
    embedder: Embedder,
    text_embedder: Embedder | None = None,
) -> Ingestor:
    """An :class:`Ingestor` from parts already loaded (the API server's store, media and models).

    The loader options are chosen here, once, for the CLI and the server alike, so that a file indexed
    by either gets the same units.
    """
    # Chunks are counted in the tokens of the model that embeds them, and must fit its window
    # (all-MiniLM-L6-v2 reads 256 tokens, two of them its own markers).
    counter = text_embedder or embedder
    options = load_options(settings, getattr(counter, "token_spans", None))
    window = getattr(counter, "max_tokens", None)
    if window and options.chunk_tokens > window - 2:
        logger.info("chunks cut to %d tokens to fit %s", window - 2, counter.name)
        options = replace(
            options, chunk_tokens=window - 2, chunk_overlap=min(options.chunk_overlap, window - 3)
        )
    return Ingestor(store, media, embedder, text_embedder, options=options)
