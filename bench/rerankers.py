"""Speed of the reranker backends side by side, timed as published comparisons time them: batches of
25 (query, page) pairs, on random-weight replicas of each exact architecture.

    python bench/rerankers.py --out DIR                                  # on the GPU machine
    python bench/rerankers.py --tiny --device cpu --batches 2 --out DIR  # a dry run on tiny replicas

The rerankers, each through the class mmsearch serves it with (new pages every batch: the vision
cache is off):

- ``qwen3-vl-2b``: :class:`reranker.Qwen3VLReranker` on Qwen3-VL-2B (Qwen3-VL-Reranker-2B's shape),
  pages at its full budget (1280 image tokens for a 1024 x 1280 page).
- ``qwen3-vl-2b @640``: the same model with a profile whose image budget is 640 tokens, as a
  fine-tune with a smaller budget (Qwen3RerankerMM-2B style) would run.
- ``jina-m0``: :class:`reranker.JinaM0Reranker` on Qwen2-VL-2B with the MLP head (jina-reranker-m0's
  shape) and its own pixel budget (the same page becomes about 768 tokens).

Prints a table (pairs/s, ms per batch of 25, tokens per pair, peak GPU memory) and writes it to
``DIR/rerankers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.rerank_gpu import QUERIES, pages, peak_memory, reset_peak, sync
from core.content import parse_content
from core.qwen_vl.replica import (
    build_qwen_tokenizer,
    qwen2_vl_2b_config,
    qwen3_vl_2b_config,
    save_jina_replica,
    save_replica,
    tiny_config,
    tiny_qwen2_vl_config,
)
from reranker import JinaM0Reranker, Qwen3VLReranker
from reranker.profiles import QWEN3_VL_RERANKER

DOCS = 25


def build(root: Path, tiny: bool, device: torch.device, dtype: torch.dtype) -> dict[str, Path]:
    """The replicas, built once under ``root`` (a 2B model builds in seconds on a GPU)."""
    tokenizer = build_qwen_tokenizer()
    qwen, jina = (
        root / ("tiny-qwen3-vl" if tiny else "qwen3-vl-2b"),
        root / ("tiny-jina" if tiny else "jina-m0"),
    )
    if not (qwen / "config.json").exists():
        config = tiny_config(tokenizer) if tiny else qwen3_vl_2b_config(tokenizer)
        save_replica(qwen, config, tokenizer, dtype=dtype, device=device)
    if not (jina / "config.json").exists():
        config = tiny_qwen2_vl_config(tokenizer) if tiny else qwen2_vl_2b_config(tokenizer)
        save_jina_replica(jina, tokenizer, config=config, dtype=dtype, device=device)
    return {"qwen": qwen, "jina": jina}


def contenders(
    dirs: dict[str, Path], device: torch.device, dtype: torch.dtype, budget: int
) -> list[tuple[str, Any]]:
    common = {"device": device, "dtype": dtype, "batch_tokens": budget}
    smaller = replace(QWEN3_VL_RERANKER, name="640-token budget", image_max_pixels=640 * 32 * 32)
    return [
        ("qwen3-vl-2b", lambda: Qwen3VLReranker(str(dirs["qwen"]), vision_cache_mb=0, **common)),
        (
            "qwen3-vl-2b @640",
            lambda: Qwen3VLReranker(str(dirs["qwen"]), vision_cache_mb=0, profile=smaller, **common),
        ),
        ("jina-m0", lambda: JinaM0Reranker(str(dirs["jina"]), **common)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--models", type=Path, default=Path("/tmp/mmsearch-replicas"))
    parser.add_argument("--tiny", action="store_true", help="tiny replicas and small pages (a dry run)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, default=50, help="timed batches of 25 pairs per reranker")
    parser.add_argument("--batch-tokens", type=int, default=36000, help="padded tokens per forward pass")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    args.out.mkdir(parents=True, exist_ok=True)
    dirs = build(args.models, args.tiny, device, dtype)
    size = (256, 320) if args.tiny else (1024, 1280)
    # A few distinct sets of pages, cycled: enough that no reranker sees one set twice in a row.
    sets = [pages(DOCS, size, seed=s) for s in range(4)]
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype),
        "date": time.strftime("%Y-%m-%d"),
        "page_pixels": list(size),
        "batches": args.batches,
        "rows": [],
    }
    for name, load in contenders(dirs, device, dtype, args.batch_tokens):
        name += " (tiny)" if args.tiny else ""
        reranker = load()
        pairs = reranker.encode(parse_content(QUERIES[0]), [parse_content(p) for p in sets[0]])
        tokens = statistics.fmean(len(p.input_ids) for p in pairs)
        reranker.score(QUERIES[0], sets[0])  # warm-up: allocation and kernel choice
        reset_peak(device)
        times, scores = [], []
        for b in range(args.batches):
            sync(device)
            started = time.perf_counter()
            scores += reranker.score(QUERIES[b % len(QUERIES)], sets[b % len(sets)])
            sync(device)
            times.append(time.perf_counter() - started)
        row = {
            "reranker": name,
            "pairs_per_s": DOCS * len(times) / sum(times),
            "ms_per_batch_median": 1000 * statistics.median(times),
            "ms_per_batch_mean": 1000 * statistics.fmean(times),
            "tokens_per_pair": tokens,
            "peak_gib": peak_memory(device),
            "scores_in_0_1": all(0.0 <= s <= 1.0 for s in scores),
        }
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
        reranker = None
        torch.cuda.empty_cache() if device.type == "cuda" else None
    (args.out / "rerankers.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\n{report['device']}, {report['dtype']}, {args.batches} batches of {DOCS} pages {size[0]}x{size[1]}"
    )
    print(f"{'reranker':<24} {'pairs/s':>9} {'ms/25 median':>13} {'tokens/pair':>12} {'peak GiB':>9}")
    for row in report["rows"]:
        print(
            f"{row['reranker']:<24} {row['pairs_per_s']:>9.1f} {row['ms_per_batch_median']:>13.0f} "
            f"{row['tokens_per_pair']:>12.0f} {row['peak_gib']:>9.1f}"
        )


if __name__ == "__main__":
    main()
