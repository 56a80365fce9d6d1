"""Pairs per second of the tiny random reranker on CPU: one pair per forward pass vs batched.

    .venv/bin/python bench/rerank_cpu.py [--pairs 32] [--repeats 5]

Builds the tiny Qwen3-VL replica the tests use (real Qwen vocabulary, random weights), scores one
text query against a mix of text and page-image documents three ways, checks the scores agree, and
prints a table. Absolute numbers say little about the 2B model; the ratio shows the batching gain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.qwen_vl.replica import build_qwen_tokenizer, save_replica, tiny_config
from reranker import Qwen3VLReranker
from tests.conftest import TINY_INIT_RANGE, TINY_SEED, make_chart
from tests.reranker.reference import ReferenceScorer, Side


def documents(count: int, folder: Path) -> list:
    """Half text passages of varied length, half page-like images of varied size."""
    docs = []
    for i in range(count):
        if i % 2:
            path = folder / f"page{i}.png"
            make_chart(160 + 40 * (i % 5), 120 + 30 * (i % 4), seed=i).save(path)
            docs.append({"image": str(path)})
        else:
            docs.append(f"Passage {i}: " + "revenue grew in the quarter and costs fell. " * (1 + i % 7))
    return docs


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    query = "How much did revenue grow this quarter?"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokenizer = build_qwen_tokenizer()
        model_dir = save_replica(
            folder / "tiny",
            tiny_config(tokenizer),
            tokenizer,
            seed=TINY_SEED,
            initializer_range=TINY_INIT_RANGE,
        )
        docs = documents(args.pairs, folder)
        ours = Qwen3VLReranker(str(model_dir), device="cpu", dtype="float32")
        reference = ReferenceScorer(model_dir)
        sides = [Side(images=[Path(d["image"])]) if isinstance(d, dict) else Side(text=d) for d in docs]

        def one_per_forward():
            ours.batch_tokens = 1  # every pair alone in its forward pass
            return ours.score(query, docs)

        def batched():
            ours.batch_tokens = 16384
            return ours.score(query, docs)

        rows = []
        t_ref, s_ref = timed(lambda: [reference.score(Side(text=query), s) for s in sides], args.repeats)
        rows.append(("reference loop (processor + full LM head, 1 pair/forward)", t_ref, s_ref))
        t_one, s_one = timed(one_per_forward, args.repeats)
        rows.append(("ours, 1 pair/forward", t_one, s_one))
        t_batch, s_batch = timed(batched, args.repeats)
        rows.append(("ours, token-budget batches (16384 tokens)", t_batch, s_batch))

    print(f"\n{args.pairs} pairs, tiny Qwen3-VL replica, fp32, {torch.get_num_threads()} CPU threads, "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'method':<62}{'s/call':>9}{'pairs/s':>10}{'max |Δ| vs ref':>16}")
    for name, seconds, scores in rows:
        drift = max(abs(a - b) for a, b in zip(scores, s_ref, strict=True))
        print(f"{name:<62}{seconds:>9.3f}{args.pairs / seconds:>10.1f}{drift:>16.2e}")
    print(f"batched vs 1 pair/forward: {t_one / t_batch:.1f}x; batched vs reference: {t_ref / t_batch:.1f}x")


if __name__ == "__main__":
    main()
