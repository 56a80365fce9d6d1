"""Videos found by their words end to end: on-screen text (OCR of keyframes), subtitle streams and
sidecars reach the payload, the text vector and the bm25 leg; a sidecar that appears, changes or goes
re-indexes its video. Real files, tiny real models, Qdrant Edge in a folder."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import pytest

from indexer import ocr
from indexer.ingest import ADDED, UNCHANGED, UPDATED, Ingestor, document_id
from indexer.media_store import MediaStore
from indexer.store import BM25_VECTOR, TEXT_VECTOR, Fusion, Leg, VectorStore, bm25
from tests.indexer.test_ingest import OPTIONS as INGEST_OPTIONS
from tests.indexer.test_loaders_video_text import CUES, PLAIN, slides_frames, write_video

# The ingest tests' small pixel budgets, with the 3-second segments the slides clip is cut for.
OPTIONS = replace(INGEST_OPTIONS, segment_seconds=3.0, max_frames_per_segment=3)


@pytest.fixture
def ingestor(tmp_path, tiny_embedder, minilm):
    store = VectorStore.open(path=tmp_path / "store", collection="units")
    yield Ingestor(store, MediaStore(tmp_path / "media"), tiny_embedder, minilm, options=OPTIONS)
    store.close()


def found(store: VectorStore, word: str) -> dict[str, list[float]]:
    """The files whose units the bm25 leg matches for ``word``, with the units' start times."""
    hits: dict[str, list[float]] = {}
    for hit in store.query([Leg(BM25_VECTOR, bm25.query_vector(word))], None, 50, Fusion()):
        hits.setdefault(hit.payload["file_name"], []).append(hit.payload["start_s"])
    return {name: sorted(starts) for name, starts in hits.items()}


def statuses(report) -> dict[str, str]:
    return {Path(f.source).name: f.status for f in report.files}


@pytest.mark.skipif(not ocr.available(), reason="rapidocr is not installed")
def test_videos_are_found_by_words_only_their_frames_or_subtitle_streams_hold(tmp_path, ingestor):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "slides.mp4", slides_frames())
    write_video(folder / "film.mkv", PLAIN, fmt="matroska", subtitles=[{"codec": "subrip", "cues": CUES}])
    write_video(folder / "plain.mp4", PLAIN)
    (folder / "notes.txt").write_text("Notes about the census of other animals.")
    report = ingestor.ingest([folder])
    assert set(statuses(report).values()) == {ADDED}
    store = ingestor.store
    assert found(store, "pangolin") == {"slides.mp4": [0.0, 3.0]}  # both segments show it
    assert found(store, "walrus") == {"slides.mp4": [3.0]}
    assert set(found(store, "census")) == {"slides.mp4", "notes.txt"}
    assert found(store, "aardvark") == {"film.mkv": [0.0]}  # the subtitle stream, time-aligned
    assert found(store, "okapi") == {"film.mkv": [3.0]}
    (second,) = [
        p
        for p in store.units(with_vectors=True)
        if p.payload["file_name"] == "slides.mp4" and p.payload["start_s"] == 3.0
    ]
    assert second.payload["snippet"] == "Pangolin census Flamingo budget Walrus tariffs"
    assert TEXT_VECTOR in second.vectors  # the text embedder embedded the frames' text too


def test_a_sidecar_that_appears_changes_or_goes_reindexes_its_video(tmp_path, ingestor):
    folder = tmp_path / "videos"
    folder.mkdir()
    video = write_video(folder / "talk.mp4", PLAIN)
    (folder / "notes.txt").write_text("Plain notes, never re-indexed for a subtitle file.")
    sidecar = folder / "talk.srt"
    store = ingestor.store

    def run() -> dict[str, str]:  # (the .srt itself is listed as skipped: it is read with its video)
        return {k: v for k, v in statuses(ingestor.ingest([folder])).items() if not k.endswith(".srt")}

    assert run() == {"talk.mp4": ADDED, "notes.txt": ADDED}
    assert run() == {"talk.mp4": UNCHANGED, "notes.txt": UNCHANGED}

    sidecar.write_text("1\n00:00:00,500 --> 00:00:02,000\nThe narwhal arrives\n")  # appears
    assert run() == {"talk.mp4": UPDATED, "notes.txt": UNCHANGED}
    assert found(store, "narwhal") == {"talk.mp4": [0.0]}
    assert run() == {"talk.mp4": UNCHANGED, "notes.txt": UNCHANGED}

    stat = sidecar.stat()
    sidecar.write_text("1\n00:00:03,500 --> 00:00:05,000\nThe narwhal departs\n")  # changes
    os.utime(sidecar, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same time: the content decides
    assert run() == {"talk.mp4": UPDATED, "notes.txt": UNCHANGED}
    assert found(store, "narwhal") == {"talk.mp4": [3.0]} and found(store, "departs") == {"talk.mp4": [3.0]}
    sidecar.touch()  # a new time alone, the same content: nothing to do
    assert run() == {"talk.mp4": UNCHANGED, "notes.txt": UNCHANGED}

    sidecar.unlink()  # goes
    assert run() == {"talk.mp4": UPDATED, "notes.txt": UNCHANGED}
    assert found(store, "narwhal") == {}
    assert run() == {"talk.mp4": UNCHANGED, "notes.txt": UNCHANGED}
    # Only the video's fingerprint carries its sidecar; other files keep the settings' own.
    assert store.get_document(document_id(folder / "notes.txt")).fingerprint == ingestor.fingerprint
    assert store.get_document(document_id(video)).fingerprint == ingestor.file_fingerprint(video)
    assert ingestor.file_fingerprint(video) != ingestor.fingerprint
    assert len(list(store.units())) == 3  # two segments and the note: no unit of an old version left


def test_sidecars_in_a_wrong_encoding_never_fail_their_video(tmp_path, ingestor, caplog):
    folder = tmp_path / "videos"
    folder.mkdir()
    text = "1\n00:00:00,500 --> 00:00:02,000\nThe café serves okapi stew\n"
    sidecars = {
        "windows": text.encode("cp1252"),
        "utf16": text.encode("utf-16"),
        "junk": os.urandom(3000) + b"\x00",
    }
    for name, data in sidecars.items():
        write_video(folder / f"{name}.mp4", PLAIN)
        (folder / f"{name}.srt").write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="indexer.loaders.subtitles"):
        report = ingestor.ingest([folder])
    assert {k: v for k, v in statuses(report).items() if k.endswith(".mp4")} == dict.fromkeys(
        ["junk.mp4", "utf16.mp4", "windows.mp4"], ADDED
    )
    assert found(ingestor.store, "okapi") == {"windows.mp4": [0.0], "utf16.mp4": [0.0]}
    texts = {p.payload["text"] for p in ingestor.store.units() if p.payload["file_name"] != "junk.mp4"}
    assert texts == {"The café serves okapi stew", ""}
    assert "junk.mp4: subtitles junk.srt ignored: binary data, not text" in caplog.text
