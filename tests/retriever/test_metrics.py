"""Metrics against values computed by hand (written out below), including ties, graded relevance and
queries without judgements."""

from __future__ import annotations

import math

import pytest

from retriever.evaluation.metrics import dedupe, evaluate, mrr_at, ndcg_at, rank_by_score, recall_at

L2 = math.log2


def test_ndcg_binary_by_hand():
    # Relevant: a, c. Ranking a, b, c: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3).
    judged = {"a": 1, "c": 1}
    assert ndcg_at(["a", "b", "c"], judged, 10) == pytest.approx(1.5 / (1 + 1 / L2(3)))
    assert ndcg_at(["a", "c", "b"], judged, 10) == pytest.approx(1.0)
    assert ndcg_at(["b", "x", "y"], judged, 10) == 0.0
    # The cut: at k=1 only "b" counts.
    assert ndcg_at(["b", "a", "c"], judged, 1) == 0.0


def test_ndcg_graded_uses_linear_gain_and_the_ideal_order():
    judged = {"a": 3, "b": 1, "c": 2}
    # Ranking b, c, a: DCG = 1/1 + 2/log2(3) + 3/2; IDCG (a, c, b) = 3/1 + 2/log2(3) + 1/2.
    expected = (1 + 2 / L2(3) + 3 / 2) / (3 + 2 / L2(3) + 1 / 2)
    assert ndcg_at(["b", "c", "a"], judged, 10) == pytest.approx(expected)
    # At k=2 the ideal list is cut too: IDCG@2 = 3 + 2/log2(3).
    assert ndcg_at(["b", "c", "a"], judged, 2) == pytest.approx((1 + 2 / L2(3)) / (3 + 2 / L2(3)))


def test_zero_grades_are_not_relevant():
    judged = {"a": 0, "b": 2}
    assert recall_at(["a"], judged, 1) == 0.0
    assert mrr_at(["a", "b"], judged, 10) == 0.5
    assert ndcg_at(["a", "b"], judged, 10) == pytest.approx((2 / L2(3)) / 2)


def test_recall_and_mrr_by_hand():
    judged = {"a": 1, "b": 1, "c": 1, "d": 1}
    ranking = ["x", "a", "y", "b", "z", "c"]
    assert recall_at(ranking, judged, 1) == 0.0
    assert recall_at(ranking, judged, 2) == 0.25
    assert recall_at(ranking, judged, 5) == 0.5
    assert recall_at(ranking, judged, 100) == 0.75
    assert mrr_at(ranking, judged, 10) == 0.5
    assert mrr_at(ranking, judged, 1) == 0.0


def test_ties_are_broken_by_document_id_so_results_are_deterministic():
    scores = {"d3": 0.5, "d1": 0.9, "d2": 0.5, "d0": 0.1}
    assert rank_by_score(scores) == ["d1", "d2", "d3", "d0"]
    # Whichever tied document is relevant decides the metrics, the same way every run.
    assert mrr_at(rank_by_score(scores), {"d3": 1}, 10) == pytest.approx(1 / 3)


def test_duplicates_count_at_their_best_position():
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
    scores = evaluate({"q": ["a", "a", "a", "b"]}, {"q": {"b": 1}}, k=2)
    assert scores.values["Recall@1"] == 0.0 and scores.values["MRR@10"] == 0.5


def test_evaluate_averages_judged_queries_and_skips_the_rest():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "q3": {"z": 0}}  # q3: nothing relevant
    rankings = {"q1": ["a", "b"], "q2": ["c", "x", "b"], "q3": ["z"], "q4": ["a"]}  # q4: no qrels at all
    scores = evaluate(rankings, qrels, k=3)
    assert (scores.queries, scores.skipped) == (2, 2)
    q2_ndcg10 = (1 + 2 / 2) / (2 + 1 / L2(3))
    assert scores.values["nDCG@10"] == pytest.approx((1.0 + q2_ndcg10) / 2)
    assert scores.values["MRR@10"] == pytest.approx((1.0 + 1.0) / 2)
    assert scores.values["Recall@1"] == pytest.approx((1.0 + 0.5) / 2)
    assert scores.values["Recall@3"] == pytest.approx(1.0)
    assert list(scores.values) == [
        "nDCG@5",
        "nDCG@10",
        "Recall@1",
        "Recall@3",
        "Recall@5",
        "Recall@10",
        "MRR@10",
    ]


def test_recall_at_k_equal_to_a_fixed_cut_is_listed_once():
    scores = evaluate({"q": ["a", "b"]}, {"q": {"b": 1}}, k=10)
    assert [n for n in scores.values if n.startswith("Recall")] == ["Recall@1", "Recall@5", "Recall@10"]
    assert scores.values["Recall@10"] == 1.0


def test_no_judged_queries_gives_zeros_not_an_error():
    scores = evaluate({"q": ["a"]}, {}, k=5)
    assert scores.queries == 0 and scores.skipped == 1 and all(v == 0.0 for v in scores.values.values())
