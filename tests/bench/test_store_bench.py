"""`bench/store.py` stays runnable: at a tiny size (150 units of 32 dims, 20 queries) both engines go
through build, cold-open/serve and warm reopen in their own processes, and the report holds every
figure with sane values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZE = 150

TIMINGS = [
    f"{kind}_{stat}_ms"
    for kind in ("dense", "filtered", "fused", "fused_filtered")
    for stat in ("p50", "p95", "mean")
]
FIELDS = [
    "engine",
    "size",
    "dim",
    "queries",
    "status",
    "units",
    "documents",
    "points",
    "upsert_pts_per_s",
    "upsert_s",
    "generate_s",
    "index_build_s",
    "open_s",
    "first_query_ms",
    "cold_open_s",
    "warm_cold_open_s",
    "recall_dense",
    "recall_filtered",
    "build_peak_rss_mib",
    "serve_peak_rss_mib",
    "build_peak_anon_mib",
    "serve_peak_anon_mib",
    "disk_bytes",
    "filter_selectivity_mean",
    "loadavg_start",
    *TIMINGS,
]


def test_the_tiny_run_reports_every_figure_for_both_engines(tmp_path):
    command = [sys.executable, "bench/store.py", "--sizes", str(SIZE), "--dim", "32", "--queries", "20"]
    command += ["--engines", "edge,local", "--tmp", str(tmp_path / "stores"), "--out", str(tmp_path / "out")]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert run.returncode == 0, run.stdout + run.stderr

    (path,) = (tmp_path / "out").glob("store-*.json")
    report = json.loads(path.read_text())
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["ram_gib"] > 0
    assert {"qdrant-edge-py", "qdrant-client"} <= set(report["versions"])
    rows = {row["engine"]: row for row in report["rows"]}
    assert set(rows) == {"edge", "local"}
    for engine, row in rows.items():
        missing = [name for name in FIELDS if name not in row]
        assert not missing, (engine, missing)
        assert row["status"] == "ok"
        assert row["size"] == row["units"] == row["points"] == SIZE
        assert 0 <= row["recall_dense"] <= 1 and 0 <= row["recall_filtered"] <= 1
        assert all(row[name] > 0 for name in TIMINGS), engine
        assert row["upsert_pts_per_s"] > 0 and row["cold_open_s"] > 0 and row["warm_cold_open_s"] > 0
        assert row["build_peak_rss_mib"] > 10 and row["serve_peak_rss_mib"] > 10
        assert 0 < row["serve_peak_anon_mib"] <= row["serve_peak_rss_mib"]
        assert row["disk_bytes"] > 0
        assert 0 < row["filter_selectivity_mean"] < 1
        assert row["dense_returned_mean"] == 50  # top-50 of 150 units
    edge, local = rows["edge"], rows["local"]
    assert edge["serve_points"] == SIZE and edge["indexed_vectors"] is not None
    assert edge["index_build_s"] is not None and edge["index_build_s"] >= 0
    assert local["index_build_s"] is None  # local mode has no index to build
    # Local mode searches exactly: its plain top-50 is the numpy ground truth.
    assert local["recall_dense"] == 1.0
    # The stores are deleted after the run (only the logs stay).
    assert not [p for p in (tmp_path / "stores").iterdir() if p.is_dir()]
    assert "| edge | 150 | 32 |" in run.stdout and "| local | 150 | 32 |" in run.stdout
