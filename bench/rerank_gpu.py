"""Reranker and embedder speed on a GPU, on a random-weight replica of the exact Qwen3-VL-2B architecture.

    python bench/rerank_gpu.py --out DIR                 # on the GPU machine (about 6 minutes)
    python bench/rerank_gpu.py --tiny --device cpu       # a dry run of every path on the tiny replica

Builds the replica (real Qwen vocabulary, random bf16 weights) and pages of exactly 1280 image tokens
(1024 x 1280 pixels), then scores ~20-token text queries against 25 pages each, every way:

- ``reference``: the official code's loop: the processor on the CPU, one pair per forward pass.
- ``simple batched``: the processor on the CPU for all 25 pairs, one padded forward pass of
  ``Qwen3VLModel``. Every other path's scores are checked against this one (bf16: within 0.02).
- ``mmsearch``: :class:`reranker.Qwen3VLReranker` (pixels normalised and patched on the GPU, pad runs
  spliced in as ids, media loaded by threads), at several token budgets; then with the vision-feature
  cache warm (a repeat query over pages already seen).
- ``embed``: :class:`indexer.embedders.qwen3_vl.Qwen3VLEmbedder` on pages, against a simple batched
  path of the same model.

Prints a table (pairs/s, ms per query of 25, peak GPU memory, achieved TFLOP/s and MFU) and writes it
with every score check to ``DIR/rerank_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.qwen_vl.attention import varlen_available
from core.qwen_vl.replica import build_qwen_tokenizer, qwen3_vl_2b_config, save_replica, tiny_config
from indexer.embedders.qwen3_vl import Qwen3VLEmbedder, render_embedding_prompt
from reranker import Qwen3VLReranker
from reranker.prompt import DEFAULT_INSTRUCTION, render_prompt

PEAK_TFLOPS = 989.0  # H100 SXM dense bf16, datasheet
QUERIES = [
    "What was the total revenue growth reported for the third quarter in the European region?",
    "Which product line had the highest operating margin according to the annual report chart?",
    "How many employees did the company have at the end of the fiscal year in the summary table?",
    "What risks related to supply chain disruption does the board mention for next year's outlook?",
    "Show the page with the quarterly cash flow statement and the capital expenditure breakdown.",
    "Which regions saw a decline in customer satisfaction scores compared with the previous survey?",
]


# The levers that change kernels, alone and together (eager varlen alone was slower: RESULTS.md).
VARIANTS = [
    {"label": "eager, SDPA vision", "compile": False, "varlen": False},
    {"label": "compiled, SDPA vision", "compile": True, "varlen": False},
    {"label": "compiled, varlen vision", "compile": True, "varlen": True},
]


def pages(count: int, size: tuple[int, int], seed: int) -> list[Image.Image]:
    """Page-like pictures: a light background, dark text-like bars, noise so nothing compresses away."""
    rng = np.random.default_rng(seed)
    width, height = size
    out = []
    for _ in range(count):
        page = np.full((height, width, 3), 235, dtype=np.uint8)
        for top in range(40, height - 40, 28):
            left, right = 40, int(rng.integers(width // 3, width - 40))
            page[top : top + 14, left:right] = rng.integers(0, 90, size=3, dtype=np.uint8)
        page = np.clip(page.astype(np.int16) + rng.integers(-12, 13, page.shape), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(page))
    return out


def pair_flops(config: Any, image_tokens: int, text_tokens: int) -> float:
    """Matmul FLOPs of one (text query, page) pair: vision tower plus language model (causal half)."""
    v, t = config.vision_config, config.text_config
    patches = image_tokens * v.spatial_merge_size**2
    d, ff = v.hidden_size, v.intermediate_size
    patch_in = 3 * v.temporal_patch_size * v.patch_size**2
    vision = 2 * patches * (patch_in * d + v.depth * (4 * d * d + 2 * d * ff))
    vision += v.depth * 4 * patches * patches * d  # full attention within the image
    merged_in = d * v.spatial_merge_size**2
    mergers = 1 + len(v.deepstack_visual_indexes)
    vision += mergers * 2 * image_tokens * (merged_in * merged_in + merged_in * v.out_hidden_size)
    h, heads, kv, hd = t.hidden_size, t.num_attention_heads, t.num_key_value_heads, t.head_dim
    per_token = 2 * (h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * t.intermediate_size)
    n = image_tokens + text_tokens
    language = t.num_hidden_layers * (n * per_token + 2 * n * n * heads * hd)  # causal: half of 4*n*n*d
    return float(vision + language), float(language)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1) -> tuple[float, Any]:
    """Median seconds of ``fn`` over ``repeats`` runs after ``warmup``; returns (seconds, last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


class SimplePaths:
    """The processor on the CPU and the stock ``Qwen3VLModel`` forward: the paths we compare against."""

    def __init__(self, model_dir: Path, device: torch.device, dtype: torch.dtype) -> None:
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.device = device
        self.processor = AutoProcessor.from_pretrained(model_dir)
        full = Qwen3VLForConditionalGeneration.from_pretrained(
            model_dir, dtype=dtype, attn_implementation="sdpa"
        )
        tok = self.processor.tokenizer
        weight = full.get_output_embeddings().weight
        yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
        self.score_vector = (weight[yes].float() - weight[no].float()).to(device)
        self.model = full.model.to(device).eval()
        del full

    def _inputs(self, prompts: list[str], images: list[Image.Image], padding_side: str) -> dict[str, Any]:
        self.processor.tokenizer.padding_side = padding_side
        inputs = self.processor(
            text=prompts, images=images, do_resize=False, padding=True, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in inputs.items()}

    @torch.inference_mode()
    def rerank(self, query: str, docs: list[Image.Image], one_per_forward: bool) -> list[float]:
        pad = "<|vision_start|><|image_pad|><|vision_end|>"
        prompts = [render_prompt(query, pad, DEFAULT_INSTRUCTION) for _ in docs]
        groups = [[i] for i in range(len(docs))] if one_per_forward else [list(range(len(docs)))]
        scores: list[float] = []
        for group in groups:
            inputs = self._inputs([prompts[i] for i in group], [docs[i] for i in group], "left")
            last = self.model(**inputs, use_cache=False).last_hidden_state[:, -1].float()
            scores.extend(torch.sigmoid(last @ self.score_vector).tolist())
        return scores

    @torch.inference_mode()
    def embed(self, docs: list[Image.Image], instruction: str) -> np.ndarray:
        pad = "<|vision_start|><|image_pad|><|vision_end|>"
        prompts = [render_embedding_prompt(instruction, [pad], []) for _ in docs]
        inputs = self._inputs(prompts, docs, "right")
        hidden = self.model(**inputs, use_cache=False).last_hidden_state
        last = inputs["attention_mask"].sum(-1) - 1
        pooled = hidden[torch.arange(len(docs), device=self.device), last].float()
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()


def profile(fn: Callable[[], Any], path: Path) -> None:
    """Kernel time of one call of ``fn``, by operator, to ``path`` (and its top rows to stdout)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    fn()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40)
    path.write_text(table)
    print("\n".join(table.splitlines()[:28]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/mmsearch-qwen3-vl-2b-replica"))
    parser.add_argument("--tiny", action="store_true", help="the tiny test replica (a dry run)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--queries", type=int, default=4, help="queries per timed path (25 pages each)")
    parser.add_argument("--docs", type=int, default=25)
    parser.add_argument("--reference-pairs", type=int, default=25, help="pairs timed on the reference loop")
    parser.add_argument("--embed-pages", type=int, default=100)
    parser.add_argument("--batch-tokens", default="36000", help="padded tokens per forward pass")
    parser.add_argument("--profile", action="store_true", help="write a kernel profile of one forward")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    }
    report.update(torch=torch.__version__, dtype=str(dtype), date=time.strftime("%Y-%m-%d"))

    tokenizer = build_qwen_tokenizer()
    config = tiny_config(tokenizer) if args.tiny else qwen3_vl_2b_config(tokenizer)
    if not (args.model_dir / "config.json").exists():
        start = time.perf_counter()
        save_replica(args.model_dir, config, tokenizer, seed=0, dtype=dtype, device=device)
        print(f"built the replica in {time.perf_counter() - start:.1f} s", flush=True)
    size = (1024, 1280)  # 32 x 40 merged tokens of 32 x 32 pixels: exactly 1280 image tokens
    image_tokens = (size[0] // 32) * (size[1] // 32)
    n = args.docs
    # Distinct pages for every query, so nothing is reused unless a path is meant to reuse it.
    corpus = [pages(n, size, seed=q) for q in range(args.queries + 1)]
    queries = [QUERIES[q % len(QUERIES)] for q in range(args.queries + 1)]
    query_tokens = [len(tokenizer.encode(q)) for q in queries]
    report["query_tokens"] = query_tokens
    rows: list[dict[str, Any]] = []

    def add(name: str, seconds_per_query: float, pairs: int, scores_ok: float | None, **extra: Any) -> None:
        text_tokens = 100  # system, instruction, query and the chat frame, about this long
        flops, language = pair_flops(config, image_tokens, text_tokens)
        per_pair = language if extra.get("vision_cached") else flops
        pairs_s = pairs / seconds_per_query
        tflops = per_pair * pairs_s / 1e12
        row = {
            "path": name,
            "pairs_per_s": pairs_s,
            "ms_per_query": 1000 * seconds_per_query * n / pairs,
            "peak_gib": peak_memory(device),
            "tflops": tflops,
            "mfu": tflops / PEAK_TFLOPS,
            "max_abs_diff_vs_simple": scores_ok,
            **extra,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    # -- the stock paths ----------------------------------------------------------------------------
    simple = SimplePaths(args.model_dir, device, dtype)
    reset_peak(device)
    work = list(zip(queries[1:], corpus[1:], strict=True))
    t, simple_scores = timed(lambda: [simple.rerank(q, d, False) for q, d in work], device, repeats=1)
    add("simple batched (processor on CPU, 25 pairs/forward)", t / args.queries, n, 0.0)
    reference_docs = corpus[1][: args.reference_pairs]
    reset_peak(device)
    t, ref_scores = timed(lambda: simple.rerank(queries[1], reference_docs, True), device, repeats=1)
    ref_diff = float(np.max(np.abs(np.array(ref_scores) - np.array(simple_scores[0][: len(ref_scores)]))))
    add("reference loop (processor on CPU, 1 pair/forward)", t, len(reference_docs), ref_diff)
    reference_pairs_s = rows[-1]["pairs_per_s"]
    flat = np.array(simple_scores).ravel()
    report["score_spread"] = {"min": float(flat.min()), "max": float(flat.max()), "std": float(flat.std())}
    print("scores of the simple path:", report["score_spread"], flush=True)
    simple_vectors = simple.embed(corpus[0][:16], "Represent the user's input.")
    simple = None  # free the GPU for the next model
    torch.cuda.empty_cache() if device.type == "cuda" else None
    # The same pairs in fp32: how far each bf16 path is from the exact scores, not only from each other.
    truth_model = SimplePaths(args.model_dir, device, torch.float32)
    truth = np.array([truth_model.rerank(q, d, False) for q, d in work])
    truth_model = None
    report["simple_bf16_vs_fp32"] = float(np.max(np.abs(np.array(simple_scores) - truth)))
    print("simple bf16 path vs fp32:", report["simple_bf16_vs_fp32"], flush=True)
    torch.cuda.empty_cache() if device.type == "cuda" else None

    # -- mmsearch reranker and embedder, one variant at a time ----------------------------------------
    from core.content import parse_content

    q0, d0 = parse_content(queries[1]), [parse_content(p) for p in corpus[1]]
    stream = [p for group in corpus for p in group][: args.embed_pages]
    budget = int(args.batch_tokens.split(",")[0])
    report["embed"] = []
    for variant in VARIANTS:
        label, compile_, varlen = variant["label"], variant["compile"], variant["varlen"]
        if varlen and not varlen_available(device, dtype):
            print(f"skipping {label}: no varlen attention in this torch build", flush=True)
            continue
        reranker = Qwen3VLReranker(
            str(args.model_dir), device=device, dtype=dtype, vision_cache_mb=4096, compile=compile_,
            vision_varlen=varlen, batch_tokens=budget,
        )  # fmt: skip
        cache = reranker.backbone.feature_cache

        def uncached(reranker=reranker, cache=cache):
            cache.clear()  # every page is new to the reranker
            return [reranker.score(q, d) for q, d in work]

        reset_peak(device)
        t, ours = timed(uncached, device, 2, warmup=2 if compile_ else 1)
        diff = float(np.max(np.abs(np.array(ours) - np.array(simple_scores))))
        vs_fp32 = float(np.max(np.abs(np.array(ours) - truth)))
        add(f"mmsearch {label}", t / args.queries, n, diff, batch_tokens=budget, max_abs_diff_vs_fp32=vs_fp32)
        if not compile_ and not varlen:
            # Where the time goes without overlap: CPU encoding vs the device forward.
            t_encode, pairs = timed(lambda r=reranker: r.encode(q0, d0), device, 3)
            t_forward, _ = timed(lambda r=reranker, p=pairs: r.forward(p), device, 3)
            report["stages_ms"] = {"encode_cpu": 1000 * t_encode, "forward_device": 1000 * t_forward}
            print(json.dumps(report["stages_ms"]), flush=True)
        # Vision features cached: the same pages again, under other queries.
        cache.clear()
        reranker.score(queries[0], corpus[1])
        reset_peak(device)
        t, repeat = timed(lambda r=reranker: [r.score(q, corpus[1]) for q in queries[1:]], device, 2)
        diff = float(np.max(np.abs(np.array(repeat[0]) - np.array(simple_scores[0]))))
        add(f"mmsearch {label}, vision cached", t / args.queries, n, diff, vision_cached=True)
        report.setdefault("cache", {"entries": len(cache), "mib": cache.nbytes / 2**20})
        if args.profile and compile_ and varlen:
            cached_pairs = reranker.encode(q0, d0)
            profile(lambda r=reranker, p=cached_pairs: r.forward(p), args.out / "profile_compiled_cached.txt")
        reranker = cache = None
        torch.cuda.empty_cache() if device.type == "cuda" else None
        embedder = Qwen3VLEmbedder(
            str(args.model_dir), device=device, dtype=dtype, batch_tokens=budget, compile=compile_,
            vision_varlen=varlen,
        )  # fmt: skip
        vectors = embedder.embed_documents(corpus[0][:16])
        reset_peak(device)
        t, _ = timed(lambda e=embedder: e.embed_documents(stream), device, 1, warmup=2 if compile_ else 1)
        flops, _ = pair_flops(config, image_tokens, 30)
        pages_s = len(stream) / t
        report["embed"].append({
            "path": f"embed pages, mmsearch {label}",
            "pages_per_s": pages_s,
            "peak_gib": peak_memory(device),
            "tflops": flops * pages_s / 1e12,
            "mfu": flops * pages_s / 1e12 / PEAK_TFLOPS,
            "max_abs_diff_vs_simple": float(np.max(np.abs(vectors - simple_vectors))),
            "min_cosine_vs_simple": float(np.min(np.sum(vectors * simple_vectors, axis=1))),
        })  # fmt: skip
        print(json.dumps(report["embed"][-1]), flush=True)
        embedder = None
        torch.cuda.empty_cache() if device.type == "cuda" else None
    best = max((r for r in rows if r["path"].startswith("mmsearch") and "cached" not in r["path"]),
               key=lambda r: r["pairs_per_s"])  # fmt: skip

    report["rows"] = rows
    report["speedup_vs_reference"] = best["pairs_per_s"] / reference_pairs_s
    (args.out / "rerank_gpu.json").write_text(json.dumps(report, indent=2))
    print(f"\n{report['device']}, {dtype}, pages of {image_tokens} image tokens, {n} pages per query, "
          f"query tokens {query_tokens}")  # fmt: skip
    print(f"{'path':<58}{'pairs/s':>9}{'ms/query':>10}{'GiB':>7}{'TFLOP/s':>9}{'MFU':>6}{'max|Δ|':>9}"
          f"{'vs fp32':>9}")  # fmt: skip
    for r in rows:
        d, f = r["max_abs_diff_vs_simple"], r.get("max_abs_diff_vs_fp32", float("nan"))
        print(f"{r['path']:<58}{r['pairs_per_s']:>9.1f}{r['ms_per_query']:>10.0f}{r['peak_gib']:>7.1f}"
              f"{r['tflops']:>9.0f}{r['mfu']:>6.0%}{d:>9.4f}{f:>9.4f}")  # fmt: skip
    for e in report["embed"]:
        print(f"{e['path']:<58}{e['pages_per_s']:>9.1f}{'pages/s':>10}{e['peak_gib']:>7.1f}"
              f"{e['tflops']:>9.0f}{e['mfu']:>6.0%}{e['max_abs_diff_vs_simple']:>9.4f}")  # fmt: skip
    print(f"best mmsearch path vs reference loop: {report['speedup_vs_reference']:.1f}x; "
          f"stages at the best budget: {report['stages_ms']}")  # fmt: skip


if __name__ == "__main__":
    main()
