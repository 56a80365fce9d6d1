"""`mmsearch ingest / documents / delete` as a user runs them: real processes, an on-disk store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.ingest import document_id
from indexer.media_store import MediaStore
from indexer.store import CONTENT_VECTOR, Filter, Fusion, Leg, Match, SparseVector, VectorStore


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


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
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
    """A search over every unit's own vector finds whole versions only: of complete documents, or of
    one killed after its version was published (all its units live) but before its record said so."""
    with VectorStore.open(path=folder) as store:
        records = {r.doc_id: r for r in store.documents()}
        found: dict[str, set[str]] = {}
        for point in store.iter_units(with_vectors=True):
            hits = store.query([Leg(CONTENT_VECTOR, point.vectors[CONTENT_VECTOR])], None, 500, Fusion())
            for h in hits:
                found.setdefault(h.payload["doc_id"], set()).add(h.id)
        for doc_id, ids in found.items():
            if records[doc_id].complete:
                continue
            version = set(store.unit_ids(doc_id, sha256=records[doc_id].sha256))
            staged = {
                p.id
                for p in store.iter_units(Filter.of(Match("doc_id", (doc_id,)), Match("state", ("staged",))))
            }
            assert not staged and version <= ids, f"part of {records[doc_id].source} was searchable"
        assert {d for d, r in records.items() if r.complete} <= set(found)


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
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


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
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


# -- what a run passes over, and saying so ------------------------------------------------------------


def invoke(*args: str, env: dict[str, str]):
    """The CLI in this process (Typer's runner): the same code as the console script, without the
    start-up cost of a new Python for every call."""
    from typer.testing import CliRunner

    from app.cli.main import cli

    return CliRunner().invoke(cli, list(args), env=env)


def test_a_folder_with_nothing_to_index_says_so_and_lists_what_it_skipped(tmp_path, cli_env):
    # A long temporary folder and an 80-column terminal: every message must stay whole, on one line.
    root = tmp_path / ("a-folder-with-a-rather-long-name-" * 3) / "and-deeper-still"
    folder, outside = root / "inbox", root / "elsewhere"
    folder.mkdir(parents=True)
    outside.mkdir()
    (folder / "archive.zip").write_bytes(b"PK\x03\x04 a word document")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (outside / "secret.txt").write_text("not for the index")
    os.symlink(outside / "secret.txt", folder / "secret.txt")
    env = {**cli_env(tmp_path / "data"), "COLUMNS": "80", "TMPDIR": str(root)}
    report_file = tmp_path / "report.json"
    run = mmsearch("ingest", str(folder), "--report", str(report_file), env=env)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.splitlines()
    assert f"skipped: {folder / 'archive.zip'}: unsupported type '.zip'" in lines
    assert f"skipped: {folder / '.DS_Store'}: hidden" in lines
    target = (outside / "secret.txt").resolve()
    assert f"skipped: {folder / 'secret.txt'}: resolves outside the folders given, to {target}" in lines
    assert "0 added, 0 updated, 0 unchanged, 0 removed, 0 failed, 3 skipped · 0 units embedded" in run.stderr
    nothing = [line for line in lines if line.startswith("nothing to index")]
    assert nothing and nothing[0].startswith(f"nothing to index in {folder} (3 skipped); mmsearch indexes .")
    assert "0/0" not in run.stderr and "Traceback" not in run.stderr
    report = json.loads(report_file.read_text())
    assert report["summary"]["skipped"] == 3 and report["summary"]["added"] == 0
    assert {Path(f["source"]).name: (f["status"], f["reason"]) for f in report["files"]} == {
        "archive.zip": ("skipped", "unsupported type '.zip'"),
        ".DS_Store": ("skipped", "hidden"),
        "secret.txt": ("skipped", f"resolves outside the folders given, to {target}"),
    }
    assert not (tmp_path / "data").exists()  # said before any store was opened or model loaded

    empty = tmp_path / "empty"
    empty.mkdir()
    nothing_at_all = mmsearch("ingest", str(empty), env=env)
    assert nothing_at_all.returncode == 1
    assert f"nothing to index in {empty} (no files in it)" in nothing_at_all.stderr


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
def test_links_outside_the_folders_given_are_refused_unless_allowed(tmp_path, cli_env):
    folder, outside = tmp_path / "docs", tmp_path / "private"
    folder.mkdir()
    outside.mkdir()
    (folder / "notes.txt").write_text("Quarterly notes: revenue grew.")
    (outside / "vault.txt").write_text("The vault code is 1234.")
    os.symlink(outside / "vault.txt", folder / "vault.txt")
    (folder / "minutes.epub").write_bytes(b"PK\x03\x04")
    env = {**cli_env(tmp_path / "data"), "MMSEARCH_TEXT_EMBEDDER_MODEL": ""}

    run = mmsearch("ingest", str(folder), "--report", "-", env=env)
    assert run.returncode == 0, run.stderr  # skipping files is no failure
    report = json.loads(run.stdout)
    assert (report["summary"]["added"], report["summary"]["skipped"]) == (1, 2)
    reasons = {Path(f["source"]).name: f["reason"] for f in report["files"] if f["status"] == "skipped"}
    assert reasons["vault.txt"].startswith("resolves outside the folders given")
    assert f"skipped: {folder / 'vault.txt'}: resolves outside the folders given" in run.stderr
    with VectorStore.open(path=tmp_path / "data" / "qdrant") as store:
        assert [r.source for r in store.documents()] == [str((folder / "notes.txt").resolve())]
    listed = invoke("documents", env={**env, "COLUMNS": "80"})
    assert listed.exit_code == 0 and listed.stdout.lstrip().startswith("1 document\n")
    assert "│ 1     │" in listed.stdout  # one unit

    allowed = mmsearch(
        "ingest", str(folder), "--report", "-", env={**env, "MMSEARCH_FOLLOW_EXTERNAL_LINKS": "1"}
    )
    assert allowed.returncode == 0, allowed.stderr
    summary = json.loads(allowed.stdout)["summary"]
    assert (summary["added"], summary["unchanged"], summary["skipped"]) == (1, 1, 1)  # the .epub is left
    with VectorStore.open(path=tmp_path / "data" / "qdrant") as store:
        assert str((outside / "vault.txt").resolve()) in {r.source for r in store.documents()}


def test_documents_shows_ids_that_delete_accepts(tmp_path, cli_env):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(20):  # 20 ids: at least two start with the same character
        (folder / f"note-{i:02d}.txt").write_text(f"Note number {i} about the budget.")
    env = {**cli_env(tmp_path / "data"), "MMSEARCH_TEXT_EMBEDDER_MODEL": "", "COLUMNS": "80"}
    assert invoke("ingest", str(folder), env=env).exit_code == 0
    full = [json.loads(line)["doc_id"] for line in invoke("documents", "--json", env=env).stdout.splitlines()]
    table = invoke("documents", env=env)
    assert table.exit_code == 0
    assert table.stdout.lstrip().startswith("20 documents\n")
    cells = [line.split("│")[1].strip() for line in table.stdout.splitlines() if line.startswith("│")]
    shown = [cell for cell in cells if cell]  # a long source path folds onto more lines
    assert len(shown) == 20
    for short in shown:  # never cut with "…": each is the start of exactly one id
        assert len(short) >= 8 and "…" not in short
        assert len([i for i in full if i.startswith(short)]) == 1

    first = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in full) > 1)
    matching = sorted(i for i in full if i.startswith(first))
    ambiguous = invoke("delete", first, env=env)
    assert ambiguous.exit_code == 1
    message = " ".join(ambiguous.stderr.split())
    assert f"error: {first} is the start of {len(matching)} document ids: {', '.join(matching)}" in message
    assert "give more of the id" in message

    short = shown[0]
    doc_id = next(i for i in full if i.startswith(short))
    deleted = invoke("delete", short, env=env)
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stderr.strip() == f"deleted {doc_id} (1 unit)"
    remaining = [
        json.loads(line)["doc_id"] for line in invoke("documents", "--json", env=env).stdout.splitlines()
    ]
    assert len(remaining) == 19 and doc_id not in remaining
    again = invoke("delete", short, env=env)
    assert again.exit_code == 1 and f"not in the index: {short}" in again.stderr


def test_short_ids_are_unique_starts():
    from app.cli.index_commands import short_ids

    ids = ["abcdef0011", "abcdef0022", "abcdef1033", "ffff000000"]
    assert short_ids(ids) == {
        "abcdef0011": "abcdef001",
        "abcdef0022": "abcdef002",
        "abcdef1033": "abcdef10",
        "ffff000000": "ffff0000",
    }


# -- one model, however it is named ----------------------------------------------------------------------


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
def test_a_local_model_is_recognised_however_it_is_named(
    tmp_path, monkeypatch, tiny_embedder_dir, qwen_tokenizer
):
    from core.qwen_vl.replica import save_replica, tiny_config
    from core.settings import Settings
    from indexer.embedders.qwen3_vl import Qwen3VLEmbedder
    from indexer.ingest import Ingestor
    from indexer.setup import ingestor_from_parts, open_store
    from tests.conftest import TINY_INIT_RANGE

    shutil.copytree(tiny_embedder_dir, tmp_path / "models" / "tiny")
    shutil.copytree(tiny_embedder_dir, tmp_path / "elsewhere" / "copy-of-tiny")
    os.symlink(tmp_path / "models" / "tiny", tmp_path / "tiny-link")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("Revenue grew by 17 percent.")
    monkeypatch.chdir(tmp_path)
    env = {
        **os.environ,
        "MMSEARCH_DATA_DIR": str(tmp_path / "data"),
        "MMSEARCH_DEVICE": "cpu",
        "MMSEARCH_TEXT_EMBEDDER_MODEL": "",
        "HF_HUB_OFFLINE": "1",
    }

    def ingest(name: str, data: str = "data"):
        return invoke(
            "ingest", "docs", "--embedder", name, "--report", "-", env={**env, "MMSEARCH_DATA_DIR": data}
        )

    first = ingest("models/tiny")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["summary"]["added"] == 1
    with VectorStore.open(path=tmp_path / "data" / "qdrant") as store:  # recorded from anywhere
        assert store.schema()[CONTENT_VECTOR].model == str((tmp_path / "models" / "tiny").resolve())
    for name in ("./models/tiny/", str(tmp_path / "models" / "tiny"), "tiny-link", "elsewhere/copy-of-tiny"):
        again = ingest(name)
        assert again.exit_code == 0, (name, again.stderr)
        report = json.loads(again.stdout)
        assert (report["summary"]["unchanged"], report["units_embedded"]) == (1, 0), (
            name
        )  # nothing re-embedded

    # Same config, same file sizes, other weights (a fine-tune, say): another model, refused.
    save_replica(
        tmp_path / "other",
        tiny_config(qwen_tokenizer),
        qwen_tokenizer,
        seed=99,
        initializer_range=TINY_INIT_RANGE,
    )
    assert (tmp_path / "other" / "config.json").read_bytes() == (
        tmp_path / "models" / "tiny" / "config.json"
    ).read_bytes()
    refused = ingest("other")
    assert refused.exit_code == 2 and "MMSEARCH_COLLECTION" in refused.stderr

    # A store made by an earlier release recorded the name as given (relative): it keeps opening, and
    # its files are not indexed again.
    monkeypatch.setenv("MMSEARCH_TEXT_EMBEDDER_MODEL", "")
    settings = Settings(data_dir=tmp_path / "old", device="cpu", embedder_model="models/tiny")
    embedder = Qwen3VLEmbedder("models/tiny", device="cpu", dtype="float32")
    media = MediaStore(settings.media_dir)
    with open_store(settings, location=":memory:") as scratch:  # the options the CLI indexes with
        options = ingestor_from_parts(settings, scratch, media, embedder).options
    embedder.name = "models/tiny"  # what an earlier release recorded
    with open_store(settings) as store:
        assert not Ingestor(store, media, embedder, options=options).ingest(["docs"]).failed
        assert store.schema()[CONTENT_VECTOR].model == "models/tiny"
    old = ingest(str((tmp_path / "models" / "tiny").resolve()), data=str(tmp_path / "old"))
    assert old.exit_code == 0, old.stderr
    assert json.loads(old.stdout)["summary"]["unchanged"] == 1


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
def test_a_hub_id_and_a_local_copy_of_it_are_one_model(tmp_path, tiny_embedder_dir, cli_env):
    # The hub id's files in a Hugging Face cache, laid out as the hub client leaves them.
    repo, revision = "mmsearch-test/Qwen3-VL-Embedding-tiny", "0" * 40
    cache = tmp_path / "hub"
    snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    shutil.copytree(tiny_embedder_dir, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(revision)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("Revenue grew by 17 percent.")
    env = {**cli_env(tmp_path / "data"), "MMSEARCH_TEXT_EMBEDDER_MODEL": "", "HF_HUB_CACHE": str(cache)}
    first = mmsearch("ingest", str(tmp_path / "docs"), "--report", "-", env=env)  # the local copy
    assert first.returncode == 0, first.stderr
    by_id = mmsearch("ingest", str(tmp_path / "docs"), "--embedder", repo, "--report", "-", env=env)
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout)["summary"]["unchanged"] == 1
