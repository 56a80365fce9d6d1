"""`mmsearch ingest / documents / delete` as a user runs them: real processes, an on-disk store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.ingest import document_id
from indexer.media_store import MediaStore
from indexer.store import CONTENT_VECTOR, Fusion, Leg, SparseVector, VectorStore


@pytest.fixture
def cli_env(tiny_embedder_dir, minilm_dir):
    def make(data_dir: Path) -> dict[str, str]:
        small = {
            "MMSEARCH_IMAGE_MAX_PIXELS": str(48 * 32 * 32),
            "MMSEARCH_VIDEO_MIN_PIXELS": str(4 * 32 * 32),
            "MMSEARCH_VIDEO_MAX_PIXELS": str(8 * 32 * 32),
            "MMSEARCH_VIDEO_SEGMENT_SECONDS": "4",
            "MMSEARCH_CHUNK_TOKENS": "64",
            "MMSEARCH_CHUNK_OVERLAP": "8",
        }
        return {
            **os.environ,
            **small,
            "MMSEARCH_DATA_DIR": str(data_dir),
            "MMSEARCH_EMBEDDER_MODEL": str(tiny_embedder_dir),
            "MMSEARCH_TEXT_EMBEDDER_MODEL": str(minilm_dir),
            "MMSEARCH_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
        }

    return make


def mmsearch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, timeout=300
    )


def snapshot(data_dir: Path) -> tuple[dict[str, str], dict[str, dict[str, np.ndarray]], set[str]]:
    """Payloads (without ingestion time) and vectors by unit id, and the unit ids that have media."""
    payloads, vectors = {}, {}
    with VectorStore.open(path=data_dir / "qdrant") as store:
        for p in store.units(with_vectors=True):
            payloads[str(p.id)] = repr(sorted((k, v) for k, v in p.payload.items() if k != "ingested_at"))
            # A sparse (bm25) vector as its indices then its weights, so both compare as numbers.
            vectors[str(p.id)] = {
                k: np.asarray([*v.indices, *v.values]) if isinstance(v, SparseVector) else np.asarray(v)
                for k, v in p.vectors.items()
            }
        assert all(r.complete for r in store.documents())
    return payloads, vectors, MediaStore(data_dir / "media").unit_ids()


def test_ingest_reports_and_a_new_process_finds_everything(tmp_path, corpus, cli_env):
    env = cli_env(tmp_path / "data")
    report_file = tmp_path / "report.json"
    run = mmsearch(
        "ingest",
        str(corpus.root),
        "--recursive",
        "--tags",
        "demo,2026",
        "--report",
        str(report_file),
        env=env,
    )
    assert run.returncode == 1, run.stderr  # the corpus holds broken files on purpose
    report = json.loads(report_file.read_text())
    bad = sorted(p.name for p in (corpus.root / "bad").iterdir())
    failed = sorted(Path(f["source"]).name for f in report["files"] if f["status"] == "failed")
    assert failed == bad
    assert report["summary"]["added"] == len(report["files"]) - len(bad)
    for name in bad:
        assert name in run.stderr
    assert "units embedded" in run.stderr

    listed = mmsearch("documents", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(records) == report["summary"]["added"]
    assert all(r["complete"] and r["tags"] == ["2026", "demo"] for r in records)

    again = mmsearch("ingest", str(corpus.root), "-r", "--report", "-", env=env)
    summary = json.loads(again.stdout)["summary"]
    assert summary["unchanged"] == report["summary"]["added"] and summary["added"] == 0

    target = corpus.notes_txt
    deleted = mmsearch("delete", str(target), env=env)
    assert deleted.returncode == 0, deleted.stderr
    with VectorStore.open(path=tmp_path / "data" / "qdrant") as store:
        assert store.get_document(document_id(target)) is None
        assert len(list(store.documents())) == len(records) - 1
    unknown = mmsearch("delete", "no-such-document", env=env)
    assert unknown.returncode == 1 and "not in the index" in unknown.stderr


def assert_only_complete_documents_are_searchable(folder):
    """A search over every unit's own vector finds units of complete documents only."""
    with VectorStore.open(path=folder) as store:
        complete = {r.doc_id for r in store.documents() if r.complete}
        partial = {r.doc_id for r in store.documents() if not r.complete}
        found = set()
        for point in store.iter_units(with_vectors=True):
            hits = store.query([Leg(CONTENT_VECTOR, point.vectors[CONTENT_VECTOR])], None, 500, Fusion())
            found |= {h.payload["doc_id"] for h in hits}
        assert found <= complete, f"units of partial documents {found - complete} were searchable"
        assert partial or found == complete


def test_killed_runs_resume_to_exactly_what_a_clean_run_gives(tmp_path, corpus, cli_env):
    clean_dir, resumed_dir = tmp_path / "clean", tmp_path / "resumed"
    clean = mmsearch("ingest", str(corpus.root), "-r", env=cli_env(clean_dir))
    assert clean.returncode == 1, clean.stderr
    kills = 0
    for kill_after in (1, 3, 6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "-v", "ingest", str(corpus.root), "-r"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=cli_env(resumed_dir),
        )
        seen = 0
        for line in proc.stderr:  # type: ignore[union-attr]
            seen += "units written" in line
            if seen >= kill_after:
                proc.send_signal(signal.SIGKILL)  # no cleanup of any kind: like a crash or power loss
                kills += 1
                break
        proc.wait(timeout=300)
        assert_only_complete_documents_are_searchable(resumed_dir / "qdrant")
    assert kills == 3
    final = mmsearch("ingest", str(corpus.root), "-r", env=cli_env(resumed_dir))
    assert final.returncode == 1, final.stderr
    clean_payloads, clean_vectors, clean_media = snapshot(clean_dir)
    payloads, vectors, media = snapshot(resumed_dir)
    assert payloads.keys() == clean_payloads.keys()  # nothing missing, nothing twice
    assert payloads == clean_payloads
    for pid, named in clean_vectors.items():
        assert named.keys() == vectors[pid].keys()
        for name, vector in named.items():  # batches differ after a resume: equal up to float noise
            np.testing.assert_allclose(vectors[pid][name], vector, atol=1e-4)
    assert media == clean_media


def test_a_locked_store_is_explained(tmp_path, corpus, cli_env):
    env = cli_env(tmp_path / "data")
    (tmp_path / "data").mkdir()
    with VectorStore.open(path=tmp_path / "data" / "qdrant"):
        run = mmsearch("ingest", str(corpus.notes_txt), env=env)
    assert run.returncode == 2, run.stderr
    assert "open in another process" in run.stderr and "Traceback" not in run.stderr


def test_a_different_embedder_is_refused_with_a_clear_error(tmp_path, corpus, cli_env, minilm_dir):
    env = cli_env(tmp_path / "data")
    first = mmsearch("ingest", str(corpus.notes_txt), env=env)
    assert first.returncode == 0, first.stderr
    other = {**env, "MMSEARCH_EMBEDDER_MODEL": str(minilm_dir)}
    run = mmsearch("ingest", str(corpus.guide_md), env=other)
    assert run.returncode == 2, run.stderr
    assert "MMSEARCH_COLLECTION" in run.stderr and "Traceback" not in run.stderr
    with VectorStore.open(path=tmp_path / "data" / "qdrant") as store:
        assert [r.source for r in store.documents()] == [str(corpus.notes_txt)]
