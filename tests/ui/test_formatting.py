"""What the pages say about hits and jobs, computed by hand."""

from __future__ import annotations

import pytest

from ui.formatting import clock, job_progress, latency_rows, location, parse_tags, rank_movement, score_bars


@pytest.mark.parametrize(
    ("rank", "first", "text"),
    [(2, 9, "↑7 from #9"), (4, 1, "↓3 from #1"), (3, 3, "= #3"), (1, 2, "↑1 from #2")],
)
def test_rank_movement(rank, first, text):
    assert rank_movement(rank, first) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (75.9, "1:15"), (3723, "1:02:03"), (-4, "0:00")])
def test_clock(seconds, text):
    assert clock(seconds) == text


def test_location_of_pages_spans_and_text():
    assert location({"page": 3, "start_s": None}) == "page 3"
    assert location({"page": None, "start_s": 10.0, "end_s": 20.5}) == "0:10–0:20"
    assert location({"page": None, "start_s": 61.0, "end_s": None}) == "1:01"
    assert location({"page": None, "start_s": None}) == ""


def test_score_bars_scale_first_stage_to_the_best_and_clamp():
    hits = [
        {"rerank_score": 0.9, "first_stage_score": 0.5},
        {"rerank_score": None, "first_stage_score": 0.25},
        {"rerank_score": 1.2, "first_stage_score": -0.1},
    ]
    assert score_bars(hits) == [(0.9, 1.0), (None, 0.5), (1.0, 0.0)]
    assert score_bars([{"rerank_score": 0.5, "first_stage_score": -1.0}]) == [(0.5, 0.0)]


def test_latency_rows_in_pipeline_order_with_overhead_and_total():
    rows = latency_rows({"rerank": 100.0, "embed": 10.0, "search": 2.0, "hydrate": 8.0}, 130.0)
    assert rows == [
        ("Embed query", 10.0),
        ("Vector search", 2.0),
        ("Load pages", 8.0),
        ("Rerank", 100.0),
        ("HTTP and other", 10.0),
        ("Total", 130.0),
    ]
    # A faster round trip than the stage sum (clock skew) shows no negative overhead.
    assert latency_rows({"embed": 5.0}, 4.0) == [("Embed query", 5.0), ("Total", 4.0)]


def test_job_progress_states():
    files = [{"status": "added"}, {"status": "pending"}, {"status": "failed"}, {"status": "pending"}]
    assert job_progress({"state": "running", "files": files}) == (0.5, "Indexing: 2 of 4 files done")
    assert job_progress({"state": "queued", "files": files[1:2]}) == (0.0, "Waiting to start: 1 file")
    done = [{"status": "added"}, {"status": "failed"}]
    assert job_progress({"state": "done", "files": done}) == (1.0, "Done: 1 indexed, 1 failed")
    failed = job_progress({"state": "failed", "files": [], "error": "the store went away"})
    assert failed == (1.0, "The job failed: the store went away")


def test_parse_tags():
    assert parse_tags(" finance, 2024 ,, ") == ["finance", "2024"]
    assert parse_tags("") == []
