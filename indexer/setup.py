"""Build the indexer's parts from :class:`core.settings.Settings` (the only place that reads them)."""

from __future__ import annotations

import logging
from dataclasses import replace

from core.settings import Settings
from indexer import ocr
from indexer.embedders.base import Embedder
from indexer.ingest import Ingestor
from indexer.loaders import office
from indexer.loaders.base import LoadOptions, TokenSpans
from indexer.media_store import MediaStore
from indexer.render_pool import default_workers
from indexer.store import CONTENT_VECTOR, TEXT_VECTOR, ClusterOptions, VectorStore

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
            hnsw_ef_filtered=settings.hnsw_ef_filtered,
            acorn=settings.hnsw_acorn,
            full_scan_kb=settings.hnsw_full_scan_kb,
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
        hnsw_ef_filtered=settings.hnsw_ef_filtered,
        acorn=settings.hnsw_acorn,
        full_scan_kb=settings.hnsw_full_scan_kb,
        vectors_on_disk=settings.store_vectors_on_disk,
    )


def _ocr_mode(mode: str) -> str:
    # Without the engine, OCR is "off" in the fingerprint too, so installing it later re-indexes scans.
    if mode != "off" and not ocr.available():
        logger.warning(
            "ocr=%s but rapidocr-onnxruntime is not installed: scans and pictures of text are indexed "
            "without their words (pip install 'mmsearch[index]')",
            mode,
        )
        return "off"
    return mode


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
        ocr=_ocr_mode(settings.ocr),
        office_converter=office.find_converter(settings.office_converter),
        office_timeout_s=settings.office_timeout_s,
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
    adopt_recorded_names(store, embedder, text_embedder)
    workers = settings.render_workers if settings.render_workers is not None else default_workers()
    ingestor = Ingestor(store, media, embedder, text_embedder, options=options, render_workers=workers)
    ingestor.follow_external_links = settings.follow_external_links
    return ingestor


def adopt_recorded_names(
    store: VectorStore, embedder: Embedder, text_embedder: Embedder | None = None
) -> None:
    """Name each embedder as the collection knows its model, so another spelling of the same checkpoint
    is not refused as another model.

    ``models/tiny``, ``./models/tiny/``, its absolute path, and a hub id and a local copy with the same
    config and weights all name one model (:func:`indexer.embedders.identity.same_model`); an embedder
    named so takes the recorded name, and the collection then accepts it (and its files stay unchanged:
    the name is part of what decides whether a file must be re-indexed). For a collection not made yet,
    a local folder is named by its absolute path, so that it is recognised from any directory. A
    different model keeps its own name, and the store refuses it as before.
    """
    from indexer.embedders.identity import canonical_name, same_model

    schema = store.schema()
    for vector, model in ((CONTENT_VECTOR, embedder), (TEXT_VECTOR, text_embedder)):
        if model is None:
            continue
        recorded = schema.get(vector) if schema is not None else None
        if recorded is None:
            model.name = canonical_name(model.name)
        elif recorded.model != model.name and same_model(recorded.model, model.name):
            logger.info("embedder %s is the collection's %s", model.name, recorded.model)
            model.name = recorded.model
