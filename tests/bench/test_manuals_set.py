"""The Debian-manuals eval set (bench/manuals) is complete: pages, queries, and a judged page each."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from retriever.evaluation.dataset import load_dataset

FOLDER = Path(__file__).resolve().parents[2] / "bench" / "manuals"


def test_the_manuals_set_loads_with_every_query_judged_against_a_real_page():
    data = load_dataset(str(FOLDER))
    pages = {item.id for item in data.corpus}
    assert len(pages) >= 150 and len(data.queries) >= 40
    assert {q.id for q in data.queries} == set(data.qrels)
    for query_id, judged in data.qrels.items():
        assert judged and set(judged) <= pages, query_id
    per_manual = Counter(next(iter(data.qrels[q.id])).rsplit("-p", 1)[0] for q in data.queries)
    assert set(per_manual) == {"nettle", "fontconfig-user", "bzip2", "valgrind"}
    assert min(per_manual.values()) >= 8
    assert all(len(item.text) >= 200 for item in data.corpus)
