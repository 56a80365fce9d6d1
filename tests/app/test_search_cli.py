"""`mmsearch search`: the two-stage search from the command line, over an index built by `ingest`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def invoke(*args: str, env: dict[str, str]):
    from app.cli.main import cli

    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_embedder_dir):
    """examples/ (tagged "demo") and a notes folder (tagged "notes") indexed by `mmsearch ingest`."""
    root = tmp_path_factory.mktemp("search-cli")
    examples = Path(shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("*.py")))
    notes = root / "notes"
    notes.mkdir()
    (notes / "garden.txt").write_text("The committee approved the new greenhouse budget for the garden.")
    env = {
        **os.environ,
        "MMSEARCH_DATA_DIR": str(root / "data"),
        "MMSEARCH_EMBEDDER_MODEL": "",  # search must find the collection's embedder by itself
        "MMSEARCH_TEXT_EMBEDDER_MODEL": "",
        "MMSEARCH_DEVICE": "cpu",
        "MMSEARCH_IMAGE_MAX_PIXELS": str(48 * 32 * 32),
        "MMSEARCH_VIDEO_MIN_PIXELS": str(4 * 32 * 32),
        "MMSEARCH_VIDEO_MAX_PIXELS": str(8 * 32 * 32),
        "MMSEARCH_VIDEO_SEGMENT_SECONDS": "2",
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "80",
    }
    for folder, tag in ((examples, "demo"), (notes, "notes")):
        done = invoke("ingest", str(folder), "--tags", tag, "--embedder", str(tiny_embedder_dir), env=env)
        assert done.exit_code == 0, done.stderr
    return env, examples, notes


def hits(result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_first_stage_order_is_the_retrievers(indexed, tiny_embedder):
    from core.settings import Settings
    from indexer.media_store import MediaStore
    from indexer.setup import open_store
    from retriever import Retriever

    env, _, _ = indexed
    found = hits(invoke("search", "How much did revenue grow?", "--no-rerank", "--json", "-n", "5", env=env))
    assert [h["rank"] for h in found] == [1, 2, 3, 4, 5]
    settings = Settings(data_dir=Path(env["MMSEARCH_DATA_DIR"]))
    with open_store(settings) as store:
        retriever = Retriever.from_settings(settings, store, MediaStore(settings.media_dir), tiny_embedder)
        expected = retriever.search("How much did revenue grow?", top_n=5, rerank=False)
    assert [h["unit_id"] for h in found] == [h.unit_id for h in expected.hits]
    assert [round(h["score"], 5) for h in found] == [round(h.first_stage_score, 5) for h in expected.hits]
    assert all(h["rerank_score"] is None for h in found)


def test_reranked_search_prints_a_ranked_table(indexed, tiny_reranker_dir):
    env, _, _ = indexed
    result = invoke("search", "revenue chart", "--reranker", str(tiny_reranker_dir), "-n", "4", env=env)
    assert result.exit_code == 0, result.stderr
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    ]
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    scores = [float(row[1]) for row in rows]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert "4 hits of" in result.stderr and "rerank" in result.stderr
    as_json = hits(invoke("search", "revenue chart", "--reranker", str(tiny_reranker_dir), "--json", env=env))
    assert all(h["rerank_score"] == h["score"] for h in as_json)
    assert [h["score"] for h in as_json] == sorted((h["score"] for h in as_json), reverse=True)


def test_filters_narrow_the_search(indexed):
    env, examples, _ = indexed
    pages = hits(invoke("search", "revenue", "--no-rerank", "--json", "--modality", "page", env=env))
    assert pages and {h["modality"] for h in pages} == {"page"} and all(h["page"] for h in pages)
    for page in pages:  # the query's word, boxed on the page and spanned in the snippet
        assert [m["text"] for m in page["highlights"] if m["kind"] == "term"] == ["Revenue"]
        assert [page["snippet"][s["start"] : s["end"]] for s in page["snippet_spans"]] == ["Revenue"]
    tagged = hits(invoke("search", "budget", "--no-rerank", "--json", "--tag", "notes", env=env))
    assert {Path(h["source"]).name for h in tagged} == {"garden.txt"}
    under = hits(invoke("search", "budget", "--no-rerank", "--json", "--source", str(examples), env=env))
    assert under and all(Path(h["source"]).parent == examples.resolve() for h in under)
    table = invoke("search", "revenue", "--no-rerank", "--modality", "page", env=env)
    assert "p. 1" in table.stdout


def test_search_with_an_image(indexed):
    env, examples, _ = indexed
    found = hits(
        invoke("search", "--image", str(examples / "revenue-chart.png"), "--no-rerank", "--json", env=env)
    )
    assert found


def test_nothing_matched_and_bad_input_are_said_plainly(indexed, tmp_path):
    env, _, _ = indexed
    none = invoke("search", "budget", "--no-rerank", "--tag", "no-such-tag", env=env)
    assert none.exit_code == 1
    assert "nothing matched (of 0 candidates): try other words or fewer filters" in none.stderr
    bad = invoke("search", "budget", "--modality", "slides", env=env)
    assert bad.exit_code == 2 and "--modality 'slides': use one of page, image, video, text" in bad.stderr
    empty_query = invoke("search", env=env)
    assert empty_query.exit_code == 2 and "give a QUERY, an --image, or both" in empty_query.stderr
    empty = invoke("search", "budget", env={**env, "MMSEARCH_DATA_DIR": str(tmp_path / "nothing")})
    assert empty.exit_code == 2
    assert "is empty: index files first, e.g. mmsearch ingest PATH" in empty.stderr


def test_another_embedder_is_refused(indexed, minilm_dir):
    env, _, _ = indexed
    result = invoke("search", "budget", "--no-rerank", "--embedder", str(minilm_dir), env=env)
    assert result.exit_code == 2
    assert "was built with the embedder" in result.stderr and "Traceback" not in result.stderr


def test_search_as_a_process_at_80_columns(indexed):
    env, _, _ = indexed
    done = subprocess.run(
        [sys.executable, "-m", "app", "search", "greenhouse budget", "--no-rerank", "-n", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    header = next(line for line in done.stdout.splitlines() if "rank" in line)
    assert all(word in header for word in ("rank", "score", "document", "where", "snippet"))
    assert "2 hits of" in done.stderr


def test_the_table_marks_the_query_s_words_in_plain_text():
    from app.cli.search_command import SNIPPET_CHARS, marked_snippet
    from retriever import TERM, Hit, TextSpan

    snippet = "[bold red]Revenue[/] grew: [link=http://evil.example]revenue[/link] " + "x" * 100
    hit = Hit(
        unit_id="u", doc_id="d", rank=1, first_stage_rank=1, first_stage_score=0.5, rerank_score=None,
        modality="text", title="t", source="s", snippet=snippet,
        snippet_spans=(
            TextSpan(snippet.index("Revenue"), snippet.index("Revenue") + 7, TERM),
            TextSpan(snippet.index("revenue["), snippet.index("revenue[") + 7, TERM),
            TextSpan(70, 120, TERM),  # across the cut
            TextSpan(100, 120, TERM),  # past it
        ),
    )  # fmt: skip
    text = marked_snippet(hit)
    assert text.plain == snippet[: SNIPPET_CHARS - 1] + "…"  # markup characters are text
    assert [(text.plain[s.start : s.end], str(s.style)) for s in text.spans] == [
        ("Revenue", "bold yellow"),
        ("revenue", "bold yellow"),
        (snippet[70 : SNIPPET_CHARS - 1], "bold yellow"),  # cut with the snippet
    ]
