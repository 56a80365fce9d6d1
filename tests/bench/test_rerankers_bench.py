"""`bench/rerankers.py` stays runnable: its dry run (tiny replicas of both architectures, CPU) builds
the replicas, times every reranker and writes its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
def test_the_dry_run_times_every_backend(tmp_path):
    command = [sys.executable, "bench/rerankers.py", "--tiny", "--device", "cpu", "--batches", "1"]
    command += ["--models", str(tmp_path / "models"), "--out", str(tmp_path / "out")]
    run = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "rerankers.json").read_text())
    rows = {row["reranker"]: row for row in report["rows"]}
    assert list(rows) == ["qwen3-vl-2b (tiny)", "qwen3-vl-2b @640 (tiny)", "jina-m0 (tiny)"]
    assert all(row["pairs_per_s"] > 0 and row["scores_in_0_1"] for row in rows.values())
    # jina's processor (28-pixel patches, its own budget) reads the same page as fewer tokens.
    assert rows["jina-m0 (tiny)"]["tokens_per_pair"] != rows["qwen3-vl-2b (tiny)"]["tokens_per_pair"]
    assert "jina-m0 (tiny)" in run.stdout
