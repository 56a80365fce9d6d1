"""Ranking metrics as BEIR reports them (pytrec_eval's definitions), on ranked lists of document ids.

- Relevance is graded: qrels map a document to an integer grade; 0 or absent means not relevant.
- nDCG@k uses linear gain (grade / log2(rank + 1)), the ideal ordering of all judged documents.
- Recall@k is the share of relevant documents (grade > 0) found in the first k.
- MRR@k is 1 / rank of the first relevant document in the first k, else 0.
- A query with no relevant document in the qrels has no defined score and is left out of averages
  (reported as ``skipped``), as BEIR does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Qrels = Mapping[str, Mapping[str, int]]  # query id -> document id -> grade


def rank_by_score(scores: Mapping[str, float]) -> list[str]:
    """Document ids best first; equal scores are ordered by document id, so results are deterministic."""
    return sorted(scores, key=lambda doc: (-scores[doc], doc))


def dedupe(ranking: Sequence[str]) -> list[str]:
    """Keep each document's first (best) position: several units of one document count once."""
    seen: set[str] = set()
    out = []
    for doc in ranking:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def ndcg_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gain; 0 when nothing is relevant (callers skip such queries)."""
    dcg = sum(judged.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Relevant documents in the first k over all relevant documents."""
    relevant = {doc for doc, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """1 / rank of the first relevant document within the first k, else 0."""
    for i, doc in enumerate(ranking[:k]):
        if judged.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


@dataclass(frozen=True)
class Scores:
    """Mean metrics over the evaluated queries."""

    values: dict[str, float]
    queries: int  # queries with at least one relevant document
    skipped: int  # queries without any relevant document in the qrels


def evaluate(rankings: Mapping[str, Sequence[str]], qrels: Qrels, k: int) -> Scores:
    """nDCG@5/10, Recall@1/5/10/k and MRR@10, averaged over the queries that have relevant documents.

    Args:
        rankings: query id -> document ids, best first (duplicates count at their first position).
        qrels: query id -> document id -> grade.
        k: the candidate depth, for Recall@k.
    """
    cuts = sorted({1, 5, 10, k})
    names = ["nDCG@5", "nDCG@10", *(f"Recall@{c}" for c in cuts), "MRR@10"]
    totals = dict.fromkeys(names, 0.0)
    counted = skipped = 0
    for query, ranking in rankings.items():
        judged = qrels.get(query, {})
        if not any(g > 0 for g in judged.values()):
            skipped += 1
            continue
        ranked = dedupe(ranking)
        counted += 1
        totals["nDCG@5"] += ndcg_at(ranked, judged, 5)
        totals["nDCG@10"] += ndcg_at(ranked, judged, 10)
        for cut in cuts:
            totals[f"Recall@{cut}"] += recall_at(ranked, judged, cut)
        totals["MRR@10"] += mrr_at(ranked, judged, 10)
    means = {name: (total / counted if counted else 0.0) for name, total in totals.items()}
    return Scores(means, counted, skipped)
