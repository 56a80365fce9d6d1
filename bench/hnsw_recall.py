"""HNSW recall@50 and latency of Qdrant Edge against exact search, by ``hnsw_ef``, plain and filtered.

Hard data on purpose: 2048-d vectors around 200 centres with noise that dominates each dimension, so
neighbours are close to uniform in high dimensions (real embeddings are easier). A filter keeps one
tag in 20 (5% of the units); filtered searches run with ACORN off and on (``--acorn``). Writes a JSON
under bench/results/.

    .venv/bin/python bench/hnsw_recall.py --size 40000 --ef 0,128,256
    .venv/bin/python bench/hnsw_recall.py --size 40000 --ef 64,128,256 --acorn off,on
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import numpy as np


def build(folder: Path, size: int, dim: int) -> np.ndarray:
    """An Edge shard of ``size`` units with an HNSW index; returns their vectors (row i = id i + 1)."""
    import qdrant_edge as qe

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(200, dim)).astype(np.float32)
    params = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
    shard = qe.EdgeShard.create(str(folder), qe.EdgeConfig(vectors={"content": params}))
    shard.update(qe.UpdateOperation.create_field_index("tag", qe.PayloadSchemaType.Keyword))
    rows = []
    for start in range(0, size, 500):
        block = centres[rng.integers(0, 200, 500)] + 0.7 * rng.normal(size=(500, dim)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        rows.append(block)
        points = [
            qe.Point(
                str(uuid.UUID(int=start + i + 1)),
                {"content": block[i].tolist()},
                {"tag": f"t{(start + i) % 20}"},
            )
            for i in range(500)
        ]
        shard.update(qe.UpdateOperation.upsert_points(points))
    started = time.perf_counter()
    shard.optimize()
    print(f"index built in {time.perf_counter() - started:.1f} s")
    shard.close()
    return np.concatenate(rows)[:size]


def measure(
    folder: Path, vectors: np.ndarray, efs: list[int], queries: int, acorns: list[bool]
) -> list[dict]:
    import qdrant_edge as qe

    started = time.perf_counter()
    shard = qe.EdgeShard.load(str(folder))
    print(f"opened in {time.perf_counter() - started:.2f} s")
    tags = np.arange(len(vectors)) % 20
    rows = []
    # ACORN only changes filtered searches: unfiltered ones run once.
    cases = [(False, False)] + [(True, acorn) for acorn in acorns]
    for filtered, acorn in cases:
        for ef in efs:
            rng = np.random.default_rng(5)
            latencies, recalls = [], []
            for _ in range(queries):
                v = vectors[rng.integers(len(vectors))] + 0.3 * rng.normal(size=vectors.shape[1]).astype(
                    np.float32
                )
                v /= np.linalg.norm(v)
                condition = (
                    qe.Filter(must=[qe.FieldCondition("tag", match=qe.MatchValue("t3"))])
                    if filtered
                    else None
                )
                params = qe.SearchParams(
                    hnsw_ef=ef or None, acorn=qe.AcornSearchParams(enable=True) if acorn else None
                )
                request = qe.QueryRequest(
                    limit=50,
                    query=qe.Query.Nearest(v.tolist(), using="content"),
                    filter=condition,
                    params=params,
                )
                t = time.perf_counter()
                found = shard.query(request)
                latencies.append((time.perf_counter() - t) * 1000)
                sims = vectors @ v
                if filtered:
                    sims[tags != 3] = -9
                exact = set((np.argsort(-sims)[:50] + 1).tolist())
                recalls.append(len({uuid.UUID(str(p.id)).int for p in found} & exact) / 50)
            row = {
                "filtered": filtered,
                "acorn": acorn,
                "hnsw_ef": ef or "default",
                "recall@50": round(float(np.mean(recalls)), 4),
                "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                "p95_ms": round(float(np.percentile(latencies, 95)), 2),
            }
            print(row)
            rows.append(row)
    shard.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=40_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--ef", default="0,128,256", help="hnsw_ef values; 0 is the engine's default")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--acorn", default="off", help="ACORN for the filtered searches: off, on or off,on")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hnsw-recall-"))
    try:
        vectors = build(work / "shard", args.size, args.dim)
        acorns = [{"off": False, "on": True}[a.strip()] for a in args.acorn.split(",")]
        efs = [int(e) for e in args.ef.split(",")]
        rows = measure(work / "shard", vectors, efs, args.queries, acorns)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "hnsw_recall",
        "date": date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "size": args.size,
        "dim": args.dim,
        "queries": args.queries,
        "rows": rows,
    }
    path = args.out / f"hnsw-recall-{args.size}-{date.today().isoformat()}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
