"""Bulk ingestion end to end: real files, tiny real-architecture models, Qdrant in memory."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from indexer.ingest import ADDED, FAILED, REMOVED, UNCHANGED, UPDATED, Ingestor, document_id, point_id
from indexer.loaders.base import LoadOptions
from indexer.media_store import MediaStore
from indexer.store import BM25_VECTOR, CONTENT_VECTOR, TEXT_VECTOR, Fusion, Leg, VectorStore, bm25
from indexer.units import IMAGE, Unit

# Small pixel budgets keep the tiny models fast; the pipeline is the same at any size.
OPTIONS = LoadOptions(
    image_min_pixels=4 * 32 * 32,
    image_max_pixels=48 * 32 * 32,
    frame_max_pixels=8 * 32 * 32,
    segment_seconds=4.0,
    max_frames_per_segment=4,
    chunk_tokens=64,
    chunk_overlap=8,
)

UNIT_FIELDS = {
    "doc_id", "source", "source_dirs", "file_name", "sha256", "modality", "unit_index", "title", "text",
    "snippet", "tags", "ingested_at", "page", "start_s", "end_s", "timestamps", "char_start", "char_end",
    "words_file", "image", "frames", "thumbnail", "state",
}  # fmt: skip


@pytest.fixture
def docs(tmp_path, corpus) -> Path:
    """A private copy of the generated corpus that a test may change."""
    return Path(shutil.copytree(corpus.root, tmp_path / "corpus"))


@pytest.fixture
def make_ingestor(tmp_path, tiny_embedder, minilm):
    stores = []

    def make(embedder=tiny_embedder, text_embedder=minilm, options=OPTIONS, store=None) -> Ingestor:
        if store is None:  # the engine users get: Qdrant Edge in a folder
            store = VectorStore.open(path=tmp_path / f"store{len(stores)}", collection="units")
            stores.append(store)
        return Ingestor(store, MediaStore(tmp_path / "media"), embedder, text_embedder, options=options)

    yield make
    for store in stores:
        store.close()


def snapshot(store: VectorStore) -> dict[str, tuple[str, str]]:
    """Every unit by point id: its payload (without the ingestion time) and its vectors."""
    out = {}
    for p in store.units(with_vectors=True):
        payload = sorted((k, v) for k, v in p.payload.items() if k != "ingested_at")
        out[str(p.id)] = (repr(payload), repr(sorted(p.vectors.items())))
    return out


def by_source(report) -> dict[str, object]:
    return {Path(f.source).name: f for f in report.files}


def test_a_mixed_corpus_is_indexed_and_bad_files_are_reported(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    report = ingestor.ingest([docs], recursive=True, tags=["demo"])
    results = by_source(report)
    bad = {p.name for p in (docs / "bad").iterdir()}
    assert {name for name, r in results.items() if r.status == FAILED} == bad
    for name in bad:
        assert name in results[name].error  # every error names its file
    good = [r for r in report.files if r.status != FAILED]
    assert good and all(r.status == ADDED and r.units > 0 and r.embedded == r.units for r in good)
    store = ingestor.store
    assert store.count() == sum(r.units for r in good)
    points = list(store.units(with_vectors=True))
    for p in points:
        assert set(p.payload) == UNIT_FIELDS
        assert p.payload["tags"] == ["demo"]
        assert Path(p.payload["source"]).is_file()
        assert p.payload["state"] == "live"
        fingerprint = ingestor.file_fingerprint(Path(p.payload["source"]))  # a video's: with its sidecar
        expected = point_id(p.payload["doc_id"], p.payload["sha256"], p.payload["unit_index"], fingerprint)
        assert str(p.id) == expected
        assert len(p.vectors[CONTENT_VECTOR]) == ingestor.embedder.dim
        # The text vector and the keyword leg exist exactly where the unit has text.
        assert (TEXT_VECTOR in p.vectors) == bool(p.payload["text"].strip())
        assert (BM25_VECTOR in p.vectors) == (bm25.document_vector(p.payload["text"]) is not None)
        if p.payload["text"].strip():
            assert p.vectors[BM25_VECTOR] == bm25.document_vector(p.payload["text"])
        for ref in [
            p.payload["image"],
            p.payload["thumbnail"],
            *p.payload["frames"],
            p.payload["words_file"],
        ]:
            if ref is not None:
                assert ingestor.media.resolve(ref).is_file()
        if p.payload["modality"] == "page" and p.payload["text"].strip():  # text layer or OCR: boxes kept
            assert ingestor.media.words(p.payload["words_file"])
    kinds = {p.payload["modality"] for p in points}
    assert kinds == {"page", "image", "video", "text"}
    pdf_pages = sorted(p.payload["page"] for p in points if p.payload["file_name"] == corpus.report_pdf.name)
    assert pdf_pages == list(range(1, len(pdf_pages) + 1)) and len(pdf_pages) >= 3
    records = {r.doc_id: r for r in store.documents()}
    assert len(records) == len(good) and all(r.complete for r in records.values())
    assert report.failed == len(bad)


def test_reingesting_unchanged_files_writes_nothing(make_ingestor, docs):
    ingestor = make_ingestor()
    ingestor.ingest([docs], recursive=True)
    before = snapshot(ingestor.store)
    again = ingestor.ingest([docs], recursive=True)
    assert {f.status for f in again.files if f.status != FAILED} == {UNCHANGED}
    assert again.units_embedded == 0
    assert snapshot(ingestor.store) == before


def test_a_changed_file_replaces_its_old_units(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    notes = docs / corpus.notes_txt.relative_to(corpus.root)
    ingestor.ingest([notes])
    doc = document_id(notes)
    old_ids = set(ingestor.store.unit_ids(doc))
    notes.write_text("Completely new content about orbital mechanics and rocket staging.\n", encoding="utf-8")
    report = ingestor.ingest([notes])
    assert report.files[0].status == UPDATED
    new_ids = set(ingestor.store.unit_ids(doc))
    assert new_ids and not new_ids & old_ids
    units = list(ingestor.store.units())
    assert all("orbital mechanics" in p.payload["text"] for p in units)
    assert {p.payload["sha256"] for p in units} == {ingestor.store.get_document(doc).sha256}


class SearchDuringIngest:
    """A progress display that searches the store after every batch, as a user could meanwhile."""

    def __init__(self, store: VectorStore, words: dict[str, str]) -> None:
        self.store, self.words = store, words
        self.seen: list[dict[str, set[str]]] = []

    def start(self, total_files: int) -> None:
        pass

    def file_started(self, path: Path) -> None:
        pass

    def file_done(self, result) -> None:
        pass

    def units_done(self, count: int) -> None:
        self.seen.append({name: self.search(word) for name, word in self.words.items()})

    def search(self, word: str) -> set[str]:
        leg = Leg(BM25_VECTOR, bm25.query_vector(word))
        return {h.payload["sha256"] for h in self.store.query([leg], None, 50, Fusion())}


def test_a_new_version_becomes_searchable_at_once_when_complete(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    ingestor.batch_units = 1  # a batch per chunk: several moments to search in between
    notes = docs / corpus.notes_txt.relative_to(corpus.root)
    notes.write_text("Zeppelins drift over the harbour.\n", encoding="utf-8")
    ingestor.ingest([notes])
    old_sha = ingestor.store.get_document(document_id(notes)).sha256
    paragraphs = [
        f"Part {i}: orbital mechanics, rocket staging and transfer windows. " * 12 for i in range(6)
    ]
    notes.write_text("\n\n".join(paragraphs), encoding="utf-8")
    watcher = SearchDuringIngest(ingestor.store, {"old": "zeppelins", "new": "orbital"})
    report = ingestor.ingest([notes], progress=watcher)
    assert report.files[0].status == UPDATED and report.files[0].units >= 3
    assert len(watcher.seen) >= 3
    for moment in watcher.seen:  # while the new version was written: the old one, whole, and only it
        assert moment == {"old": {old_sha}, "new": set()}
    new_sha = ingestor.store.get_document(document_id(notes)).sha256
    assert watcher.search("orbital") == {new_sha} and watcher.search("zeppelins") == set()


def test_changed_settings_rebuild_beside_the_served_version(make_ingestor, docs, corpus, tmp_path):
    store = VectorStore.open(path=tmp_path / "shared-store", collection="units")
    try:
        notes = docs / corpus.notes_txt.relative_to(corpus.root)
        make_ingestor(store=store).ingest([notes])
        old_ids = set(store.unit_ids(document_id(notes)))
        rebuilt = make_ingestor(store=store, options=replace(OPTIONS, chunk_tokens=48))
        watcher = SearchDuringIngest(store, {"any": "notes"})
        watcher.search = lambda _word: {  # the unit ids a search by a unit's own vector sees
            h.id for p in store.iter_units(with_vectors=True)
            for h in store.query([Leg(CONTENT_VECTOR, p.vectors[CONTENT_VECTOR])], None, 200, Fusion())
        }  # fmt: skip
        report = rebuilt.ingest([notes], progress=watcher)
        assert report.files[0].status == UPDATED
        assert watcher.seen and all(moment["any"] == old_ids for moment in watcher.seen)
        new_ids = set(store.unit_ids(document_id(notes)))
        assert new_ids and not new_ids & old_ids
    finally:
        store.close()


def test_a_failed_update_keeps_the_previous_version(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    shot = docs / corpus.screenshot_png.relative_to(corpus.root)
    ingestor.ingest([shot])
    before = snapshot(ingestor.store)
    shot.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    report = ingestor.ingest([shot])
    assert report.files[0].status == FAILED and shot.name in report.files[0].error
    assert snapshot(ingestor.store) == before
    assert ingestor.store.get_document(document_id(shot)).complete


def test_prune_removes_documents_whose_file_is_gone(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    ingestor.ingest([docs], recursive=True)
    gone = docs / corpus.guide_md.relative_to(corpus.root)
    gone_units = set(ingestor.store.unit_ids(document_id(gone)))
    gone.unlink()
    report = ingestor.ingest([docs], recursive=True, prune=True)
    removed = [f for f in report.files if f.status == REMOVED]
    assert [Path(f.source).name for f in removed] == [gone.name]
    assert removed[0].units == len(gone_units) > 0
    assert ingestor.store.get_document(document_id(gone)) is None
    remaining = {str(p.id) for p in ingestor.store.units()}
    assert remaining and not remaining & gone_units


def test_prune_also_clears_media_that_no_unit_names(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    notes = docs / corpus.notes_txt.relative_to(corpus.root)
    ingestor.ingest([docs], recursive=True)
    kept = ingestor.media.unit_ids()
    orphan = "0f0f0f0f-0000-4000-8000-000000000000"  # as if killed between media and point
    ingestor.media.put(orphan, Unit(0, IMAGE, "lost", image=Image.new("RGB", (32, 32))))
    ingestor.ingest([notes], prune=True)
    assert ingestor.media.unit_ids() == kept


def test_delete_removes_one_document_and_its_media(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    ingestor.ingest([docs], recursive=True)
    pdf = docs / corpus.report_pdf.relative_to(corpus.root)
    ids = set(ingestor.store.unit_ids(document_id(pdf)))
    total = ingestor.store.count()
    assert ingestor.delete(document_id(pdf)) == len(ids)
    assert ingestor.store.count() == total - len(ids)
    assert not ids & ingestor.media.unit_ids()


def test_new_tags_on_an_unchanged_file_are_applied_without_embedding(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    notes = docs / corpus.notes_txt.relative_to(corpus.root)
    ingestor.ingest([notes], tags=["a"])
    report = ingestor.ingest([notes], tags=["b", "c"])
    assert report.files[0].status == UNCHANGED and report.units_embedded == 0
    assert {tuple(p.payload["tags"]) for p in ingestor.store.units()} == {("b", "c")}


def test_changed_loader_settings_rebuild_the_units(make_ingestor, docs, corpus, tmp_path):
    store = VectorStore.open(path=tmp_path / "shared", collection="units")
    guide = docs / corpus.guide_md.relative_to(corpus.root)
    make_ingestor(store=store).ingest([guide])
    coarse = make_ingestor(store=store, options=LoadOptions(chunk_tokens=512, chunk_overlap=0))
    report = coarse.ingest([guide])
    assert report.files[0].status == UPDATED
    assert store.count() == report.files[0].units
    assert sorted(p.payload["unit_index"] for p in store.units()) == list(range(report.files[0].units))
    store.close()


def test_a_text_only_embedder_indexes_text_and_skips_pictures(make_ingestor, docs, corpus, minilm):
    ingestor = make_ingestor(embedder=minilm, text_embedder=None)
    report = by_source(ingestor.ingest([docs], recursive=True))
    assert report[corpus.guide_md.name].status == ADDED
    assert report[corpus.report_pdf.name].status == ADDED  # pages embedded through their text layer
    photo = report[corpus.photo_jpg.name]
    assert photo.status == FAILED and "reads only text" in photo.error


def test_a_clip_model_embeds_images_video_and_text(make_ingestor, docs, corpus, tiny_clip):
    ingestor = make_ingestor(embedder=tiny_clip, text_embedder=None)
    report = by_source(ingestor.ingest([docs], recursive=True))
    for path in (corpus.photo_jpg, corpus.clip_mp4, corpus.notes_txt, corpus.report_pdf):
        assert report[path.name].status == ADDED, report[path.name].error


def test_a_missing_path_is_reported_and_the_rest_indexed(make_ingestor, docs, corpus):
    ingestor = make_ingestor()
    notes = docs / corpus.notes_txt.relative_to(corpus.root)
    report = ingestor.ingest([docs / "no-such-folder", notes])
    statuses = sorted(f.status for f in report.files)
    assert statuses == [ADDED, FAILED]


def test_shards_split_a_corpus_into_disjoint_parts_that_cover_it(corpus, tmp_path):
    from indexer.ingest import Shard, discover

    whole, _ = discover([corpus.root], recursive=True)
    assert len(whole) >= 15
    for count in (1, 2, 3, 7):
        parts = [
            set(discover([corpus.root], recursive=True, shard=Shard(i, count))[0])
            for i in range(1, count + 1)
        ]
        assert set().union(*parts) == set(whole)
        assert sum(len(p) for p in parts) == len(whole)  # disjoint
        if count <= 3:
            assert all(parts)  # no part left empty on a corpus this size
    # The split follows paths relative to the folder given, so another mount point splits the same way.
    moved = Path(shutil.copytree(corpus.root, tmp_path / "elsewhere" / "corpus"))
    for i in (1, 2, 3):
        here = discover([corpus.root], recursive=True, shard=Shard(i, 3))[0]
        there = discover([moved], recursive=True, shard=Shard(i, 3))[0]
        assert [p.relative_to(corpus.root.resolve()) for p in here] == [
            p.relative_to(moved.resolve()) for p in there
        ]


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "1/0", "-1/2", ""])
def test_bad_shard_specs_are_refused(text):
    from indexer.ingest import Shard

    with pytest.raises(ValueError, match=r"I/N|1 <= I <= N"):
        Shard.parse(text)


def test_two_shards_ingested_into_one_store_equal_one_full_run(make_ingestor, docs, corpus):
    from indexer.ingest import Shard

    full = make_ingestor()
    full.ingest([docs], recursive=True)
    shared = make_ingestor()
    for i in (1, 2):
        shared.ingest([docs], recursive=True, shard=Shard(i, 2))
    assert snapshot(shared.store).keys() == snapshot(full.store).keys()
    assert {d.doc_id for d in shared.store.documents()} == {d.doc_id for d in full.store.documents()}
