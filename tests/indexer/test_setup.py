"""Building the indexer from settings: the store's location and the loader options."""

from __future__ import annotations

from core.settings import Settings
from indexer.setup import build_ingestor, load_options, open_store
from indexer.store import CONTENT_VECTOR, TEXT_VECTOR


def test_the_embedded_store_lives_under_the_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", collection="c")
    with open_store(settings) as store:
        assert store.collection == "c" and not store.is_server
    assert (tmp_path / "data" / "qdrant").is_dir()


def test_a_new_embedded_collection_keeps_its_vectors_on_disk_unless_told_not_to(tmp_path):
    from indexer.store import VectorSpec

    for on_disk in (True, False):
        env = {} if on_disk else {"store_vectors_on_disk": False}  # True is the default
        settings = Settings(_env_file=None, data_dir=tmp_path / f"data-{on_disk}", collection="c", **env)
        with open_store(settings) as store:
            store.ensure_collections({CONTENT_VECTOR: VectorSpec("m", 8)})
        # Reopened with the other setting: the layout is the collection's, chosen when it was made.
        flipped = Settings(
            _env_file=None, data_dir=settings.data_dir, collection="c", store_vectors_on_disk=not on_disk
        )
        with open_store(flipped) as store:
            assert store.vectors_on_disk is on_disk


def test_the_full_scan_threshold_is_given_to_a_new_collection(tmp_path):
    from indexer.store import VectorSpec

    settings = Settings(_env_file=None, data_dir=tmp_path / "data", collection="c", hnsw_full_scan_kb=5000)
    with open_store(settings) as store:
        store.ensure_collections({CONTENT_VECTOR: VectorSpec("m", 8)})
    default = Settings(_env_file=None, data_dir=tmp_path / "data", collection="c")
    with open_store(default) as store:
        assert default.hnsw_full_scan_kb == 100_000 and store.full_scan_kb == 5000  # the collection's own


def test_filtered_searches_under_acorn_take_their_own_search_width(tmp_path):
    from indexer.store.base import search_width

    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", collection="c", hnsw_ef=300, hnsw_ef_filtered=90
    )
    with open_store(settings) as store:
        assert (store.hnsw_ef, store.hnsw_ef_filtered, store.acorn) == (300, 90, True)
        assert store.full_scan_kb == 100_000  # the default; a new collection is made with it
    assert search_width(300, 90, acorn=True, filtered=True) == 90
    assert search_width(300, 90, acorn=True, filtered=False) == 300
    assert search_width(300, 90, acorn=False, filtered=True) == 300  # plain HNSW needs the full width
    assert search_width(300, None, acorn=True, filtered=True) == 300


def test_loader_options_follow_the_settings():
    settings = Settings(
        image_max_pixels=100 * 32 * 32, video_segment_seconds=5, chunk_tokens=100, chunk_overlap=20
    )
    options = load_options(settings)
    assert options.image_max_pixels == 100 * 32 * 32 and options.segment_seconds == 5
    assert (options.chunk_tokens, options.chunk_overlap) == (100, 20)
    assert options.policy.max_image_pixels == settings.max_image_pixels


def test_chunks_are_counted_in_the_text_models_tokens_and_fit_its_window(tmp_path, tiny_embedder, minilm):
    settings = Settings(data_dir=tmp_path, chunk_tokens=1000, chunk_overlap=50)
    with open_store(settings, location=":memory:") as store:
        ingestor = build_ingestor(settings, store, embedder=tiny_embedder, text_embedder=minilm)
        assert ingestor.options.chunk_tokens == minilm.max_tokens - 2
        assert ingestor.options.token_spans("unbelievably") == minilm.token_spans("unbelievably")
        assert set(store.schema()) == {CONTENT_VECTOR, TEXT_VECTOR}
