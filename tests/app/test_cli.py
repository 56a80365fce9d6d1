"""The `mmsearch` console script, run as a real subprocess against the tiny checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def scored(tiny_reranker_dir, media):
    docs = [str(media["chart"]), str(media["notes"]), "The cat sat on the mat.", str(media["clip"])]
    result = run_cli("rerank", "revenue growth", *docs, "--model", str(tiny_reranker_dir), "--json")
    return docs, result


def test_rerank_prints_every_document_ranked(scored, tiny_reranker, media):
    docs, result = scored
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert sorted(r["index"] for r in rows) == [0, 1, 2, 3]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    # Files were read as what they are: the same scores as the library gives for that content.
    expected = tiny_reranker.score(
        "revenue growth",
        [{"image": docs[0]}, media["notes"].read_text(), "The cat sat on the mat.", {"video": docs[3]}],
    )
    by_index = {r["index"]: r["score"] for r in rows}
    assert [round(by_index[i], 4) for i in range(4)] == [round(s, 4) for s in expected]


def test_rerank_table_with_image_query_and_top_n(tiny_reranker_dir, tiny_reranker, media):
    docs = ["a bar chart", str(media["chart"]), "plain text", str(media["wide"])]
    result = run_cli("rerank", str(media["photo"]), *docs, "--top-n", "2", "--model", str(tiny_reranker_dir))
    assert result.returncode == 0, result.stderr
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    assert [row[0] for row in rows] == ["1", "2"]  # rank column, cut at --top-n
    # The query file was read as an image: the table matches the library's ranking of that query.
    ranked = tiny_reranker.rank(
        {"image": str(media["photo"])},
        ["a bar chart", {"image": docs[1]}, "plain text", {"image": docs[3]}],
        top_n=2,
    )
    assert [int(row[2]) for row in rows] == [hit.index for hit in ranked]
    assert [float(row[1]) for row in rows] == [round(hit.score, 4) for hit in ranked]


def test_rerank_reports_bad_input_without_a_traceback(tiny_reranker_dir, media):
    result = run_cli("rerank", "q", "missing-file.png", "--model", str(tiny_reranker_dir))
    assert result.returncode == 2
    assert "missing-file.png" in result.stderr and "Traceback" not in result.stderr
    corrupt = run_cli("rerank", "q", str(media["corrupt"]), "--model", str(tiny_reranker_dir))
    assert corrupt.returncode == 2 and "document 0" in corrupt.stderr and "Traceback" not in corrupt.stderr


def test_missing_model_is_a_clear_error(tmp_path):
    result = run_cli("rerank", "q", "doc", "--model", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "cannot load reranker" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("spec", ["0/3", "4/3", "a/b"])
def test_ingest_refuses_a_bad_shard_before_loading_anything(tmp_path, spec):
    result = run_cli(
        "ingest", str(tmp_path), "--shard", spec, env_extra={"MMSEARCH_DATA_DIR": str(tmp_path / "d")}
    )
    assert result.returncode == 2
    assert "--shard" in result.stderr and ("I/N" in result.stderr or "1 <= I <= N" in result.stderr)
    assert not (tmp_path / "d").exists()  # refused before the store was opened
