"""The evaluation harness on generated datasets with known answers, with real models: MiniLM ranks
distinct topics correctly, so the first stage must score (near) perfectly; the random tiny reranker
reorders, and its numbers must match the metrics recomputed from the rankings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from core.settings import Settings
from retriever.evaluation.dataset import DatasetError, load_folder
from retriever.evaluation.runner import Config, Models, run_sweep, sweep
from tests.conftest import make_chart
from tests.retriever.eval_data import TOPICS, build_image_dataset, build_text_dataset


@pytest.fixture(scope="module")
def text_dataset(tmp_path_factory):
    return build_text_dataset(tmp_path_factory.mktemp("eval") / "topics")


@pytest.fixture(scope="module")
def text_results(text_dataset, tmp_path_factory, minilm, tiny_reranker):
    data = load_folder(text_dataset)
    # The dense legs alone, and the default fusion with the keyword leg.
    configs = sweep([3, 10], [None], [False, True], [False, True], legs=["content+text", None])
    models = Models(minilm, minilm, {"tiny": tiny_reranker})
    # Small page renders keep the tiny reranker quick on PDF pages; MiniLM reads their text layer.
    settings = Settings(_env_file=None, device="cpu", image_max_pixels=64 * 32 * 32)
    return data, configs, run_sweep(data, settings, configs, models, tmp_path_factory.mktemp("work"))


def test_the_dataset_is_read_with_pages_text_and_judgements(text_dataset):
    data = load_folder(text_dataset)
    assert len(data.corpus) == len(TOPICS) and len(data.queries) == len(TOPICS) + 1
    pages = [item for item in data.corpus if item.page is not None]
    assert [p.page for p in pages] == [1, 2, 3] and all(p.file.name == "topics.pdf" for p in pages)
    assert data.qrels["q-bees"] == {"doc-bees": 2, "doc-volcano": 1}


def test_distinct_topics_are_found_by_the_first_stage(text_results):
    data, configs, results = text_results
    assert [r.config for r in results] == configs
    for r in results:
        scores = r.first_stage
        assert scores.queries == len(TOPICS) and scores.skipped == 1  # the unjudged query is left out
        if r.config.legs is not None:  # dense only: each topic's own item first (bees may put volcano first)
            assert scores.values["Recall@1"] >= 7 / 8
        else:
            # With bm25 fused in, the stemmed "rise" of the tides query also matches "magma rises" and
            # "the dough rises": in a corpus of 8 items that word carries a high IDF, so one more query
            # may lose its first place. Paraphrases over tiny corpora are the keyword leg's worst case.
            assert scores.values["Recall@1"] >= 6 / 8
        if r.config.k >= len(data.corpus):
            assert scores.values[f"Recall@{r.config.k}"] == 1.0  # every item is a candidate
        else:  # only the bees query's second, partly relevant item may fall outside the first k
            assert scores.values[f"Recall@{r.config.k}"] >= 15 / 16
        assert scores.values["MRR@10"] >= 0.9 and scores.values["nDCG@10"] >= 0.9


def test_reranked_and_first_stage_scores_follow_from_the_rankings(text_results):
    data, _, results = text_results
    by_config = {r.config: r for r in results}
    for r in results:
        assert (r.reranked is None) == (not r.config.rerank)
        if r.reranked is not None:
            # Same candidates as the first stage, reordered: recall at the full depth cannot change.
            assert r.reranked.values[f"Recall@{r.config.k}"] == r.first_stage.values[f"Recall@{r.config.k}"]
            assert all(0.0 <= v <= 1.0 for v in r.reranked.values.values())
            assert r.latency_ms["total_p50"] >= r.latency_ms["first_stage_p50"]
            # Every query (the unjudged one too) had min(k, units) candidates scored, timed.
            assert r.speed.pairs == len(data.queries) * min(r.config.k, len(TOPICS))
            assert r.speed.pairs_per_s > 0 and r.speed.ms_per_25 == pytest.approx(
                25_000 / r.speed.pairs_per_s
            )
        else:
            assert r.speed is None
        # Reranking does not change what the first stage found.
        twin = by_config[replace(r.config, rerank=not r.config.rerank)]
        assert twin.first_stage.values == pytest.approx(r.first_stage.values)
    # The text vector is a second index: it holds the same units.
    units = {r.config.text_vector: r.indexed_units for r in results}
    assert units[True] == units[False] == len(TOPICS)  # 5 text items + 3 PDF pages, one unit each


def test_rerankers_are_compared_on_the_same_candidates(
    text_results, tmp_path, minilm, tiny_reranker, tiny_jina
):
    data, _, single = text_results
    models = Models(minilm, None, {"tiny": tiny_reranker, "jina": tiny_jina})
    configs = sweep([10], [None], [False], [True], ["tiny", "jina"])
    assert [c.label for c in configs] == ["k=10, content, rerank tiny", "k=10, content, rerank jina"]
    settings = Settings(_env_file=None, device="cpu", image_max_pixels=64 * 32 * 32)
    tiny, jina = run_sweep(data, settings, configs, models, tmp_path / "work")
    # One first stage, scored by both: the same candidates, so the same first-stage numbers and pairs.
    assert tiny.first_stage.values == jina.first_stage.values
    assert tiny.speed.pairs == jina.speed.pairs == len(data.queries) * len(TOPICS)
    # The tiny reranker scores as it did alone (a second reranker changes nothing about the first)...
    alone = next(r for r in single if r.config == Config(10, None, False, True))
    assert tiny.reranked.values == pytest.approx(alone.reranked.values)
    # ...and jina, another random model, orders the candidates differently.
    assert jina.reranked.values != pytest.approx(tiny.reranked.values)
    with pytest.raises(ValueError, match="no reranker called 'other'; loaded: tiny, jina"):
        run_sweep(data, settings, [Config(10, reranker="other")], models, tmp_path / "work")


def test_an_image_query_finds_its_own_picture(tmp_path, tiny_clip):
    # Sides that are multiples of 32 within the budget: the indexed picture keeps the file's pixels.
    pictures = {f"chart{i}": make_chart(160 + 32 * i, 128, seed=40 + i) for i in range(5)}
    data = load_folder(build_image_dataset(tmp_path / "pictures", pictures))
    (result,) = run_sweep(
        data, Settings(_env_file=None), [Config(k=5, rerank=False)], Models(tiny_clip), tmp_path / "work"
    )
    # Random CLIP weights, but a picture is nearest to itself.
    assert result.first_stage.values["Recall@1"] == 1.0 and result.first_stage.queries == 5


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
def test_the_cli_writes_a_table_json_and_a_chart(
    text_dataset, tmp_path, minilm_dir, tiny_reranker_dir, tiny_jina_dir
):
    out = tmp_path / "out"
    second = shutil.copytree(text_dataset, tmp_path / "topics-copy")
    command = [sys.executable, "-m", "app", "eval", str(text_dataset), str(second), "--k", "5"]
    command += ["--embedder", str(minilm_dir), "--out", str(out), "--rerank", "both"]
    command += ["--reranker", f"tiny={tiny_reranker_dir},jina={tiny_jina_dir}"]
    run = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600
    )
    assert run.returncode == 0, run.stderr
    for column in ("dataset", "nDCG@5", "nDCG@10", "pairs/s", "ms/25 pairs", "reranked: jina", "first stage"):
        assert column in run.stdout
    report = json.loads((out / "results.json").read_text())
    assert report["rerankers"] == {
        "tiny": {"model": str(tiny_reranker_dir), "backend": "qwen3-vl"},
        "jina": {"model": str(tiny_jina_dir), "backend": "jina-m0"},
    }
    assert [d["name"] for d in report["datasets"]] == ["topics", "topics-copy"]
    for dataset in report["datasets"]:
        assert (dataset["corpus"], dataset["queries"], dataset["judged_queries"]) == (8, 9, 8)
        configs = dataset["configurations"]
        assert [c["label"] for c in configs] == [
            "k=5, content, no rerank",
            "k=5, content, rerank tiny",
            "k=5, content, rerank jina",
        ]
        assert configs[0]["reranked"] is None and configs[0]["rerank_speed"] is None
        assert configs[1]["first_stage"]["Recall@5"] == 1.0
        for config in configs[1:]:
            speed = config["rerank_speed"]
            assert speed["pairs"] == 9 * 5 and speed["pairs_per_s"] > 0  # 9 queries, 5 candidates each
            assert set(config["reranked"]) >= {"nDCG@5", "nDCG@10"}
    chart = Image.open(out / "chart.png")
    assert chart.width >= 900 and chart.height >= 500  # quality bars for 6 configurations and speed bars


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda root: (root / "queries.jsonl").unlink(), "queries.jsonl: missing"),
        (
            lambda root: (root / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\nnot json\n'),
            "corpus.jsonl:2: not JSON",
        ),
        (
            lambda root: (root / "corpus.jsonl").write_text('{"_id": "a", "file": "../outside.png"}\n'),
            "outside the dataset",
        ),
        (
            lambda root: (root / "qrels" / "test.tsv").write_text(
                "query-id\tcorpus-id\tscore\nq-bees\tdoc-bees\thigh\n"
            ),
            "test.tsv:2",
        ),
        (
            lambda root: (root / "qrels" / "test.tsv").write_text(
                "query-id\tcorpus-id\tscore\nq-none\tdoc-bees\t1\n"
            ),
            "no query",
        ),
    ],
)
def test_broken_datasets_are_refused_with_file_and_line(tmp_path, breakage, message):
    root = build_text_dataset(tmp_path / "broken")
    breakage(root)
    with pytest.raises(DatasetError, match=message):
        load_folder(root)


def test_bad_cli_input_exits_2_with_the_reason(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "app", "eval", *args], capture_output=True, text=True, timeout=120
        )

    missing = run(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "datasets" in missing.stderr
    assert run(str(tmp_path), "--k", "0").returncode == 2
    assert "on, off or both" in run(str(tmp_path), "--rerank", "maybe").stderr


def test_a_relative_work_folder_scores_text_items_as_an_absolute_one(
    text_dataset, tmp_path, monkeypatch, minilm
):
    # Text items are written as files under the work folder; hits name them by absolute path.
    data = load_folder(text_dataset)
    settings = Settings(_env_file=None, device="cpu", image_max_pixels=64 * 32 * 32)
    config = Config(10, rerank=False, legs="bm25")
    monkeypatch.chdir(tmp_path)
    (relative,) = run_sweep(data, settings, [config], Models(minilm, None, {}), Path("work"))
    (absolute,) = run_sweep(data, settings, [config], Models(minilm, None, {}), tmp_path / "absolute")
    assert relative.first_stage.values == absolute.first_stage.values
    assert absolute.first_stage.values["Recall@5"] >= 6 / 8
