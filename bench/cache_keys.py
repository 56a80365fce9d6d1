"""CPU cost of preparing cached page images: decoded pixels + sha256 key vs a StoredImage identity key.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cache_keys.py [--pages 25] [--repeats 7]

Writes ``--pages`` page renders at the reranker's real page budget (1280 image tokens: 1024x1280
pixels, PNG level 1 as the media store writes them) into a media store, fills the tiny reranker's
vision-feature cache with both kinds of keys, then times one query's worth of CPU preparation
(hydrate + preprocess + cache lookup, every page a hit) two ways in the same run:

- old: hydration decodes each page to a PIL RGB image; the preprocessor resizes it and hashes its
  pixels (sha256) for the cache key;
- new: hydration returns a :class:`core.content.StoredImage` (one ``os.stat`` plus a header and
  end-of-file check); the preprocessor reads the header, computes the target size and keys the
  cache by identity + target size + budget, decoding nothing.

Prints a table and writes bench/results/cache_keys.json. The model is the tiny replica: only the
preparation is timed, which does not depend on the model's size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from PIL import Image, ImageDraw

from core.content import Content
from core.qwen_vl.budget import VisionBudget
from core.qwen_vl.replica import build_qwen_tokenizer, save_replica, tiny_config
from indexer.media_store import MediaStore
from reranker import Qwen3VLReranker
from retriever.search import Retriever
from tests.conftest import TINY_INIT_RANGE, TINY_SEED, make_chart

PAGE_TOKENS = 1280
PAGE_SIZE = (1024, 1280)  # width, height: 32 x 40 blocks of 32x32 pixels = 1280 image tokens
QUERY = "How much did revenue grow this quarter?"


def render(seed: int, noisy: bool) -> Image.Image:
    """A page render: white, with lines of text-like marks and a bar chart (compresses like a real
    PDF render); ``noisy`` uses the tests' chart with a noise background (a worst case to decode)."""
    if noisy:
        return make_chart(*PAGE_SIZE, seed=seed)
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", PAGE_SIZE, "white")
    draw = ImageDraw.Draw(image)
    for y in range(80, 900, 22):
        x = 80
        while x < PAGE_SIZE[0] - 120:
            word = int(rng.integers(20, 90))
            draw.rectangle([x, y, x + word, y + 11], fill=(30, 30, 30))
            x += word + 9
    for i in range(8):
        top = 1200 - int(rng.integers(60, 260))
        draw.rectangle(
            [100 + 100 * i, top, 160 + 100 * i, 1200], fill=tuple(int(c) for c in rng.integers(0, 200, 3))
        )
    return image


def old_document(media: MediaStore, payload: dict) -> Content:
    """Hydration before StoredImage: the page decoded to RGB pixels (Retriever._picture)."""
    with Image.open(media.resolve(payload["image"])) as image:
        return Content(images=(image.convert("RGB"),))


def prepare(reranker: Qwen3VLReranker, documents: list[Content]) -> int:
    """Preprocess every document and look its page up in the cache; returns the hits."""
    backbone = reranker.backbone
    media = backbone.vision.prepare_all(documents, [f"document {i}" for i in range(len(documents))])
    return sum(backbone.feature_cache.get(m.images[0].key) is not None for m in media)


def measure(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up (page cache, thread pool)
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return {"cpu_ms": statistics.median(cpu), "wall_ms": statistics.median(wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--noisy", action="store_true", help="noise-filled pages (slow to decode)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "cache_keys.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = save_replica(
            root / "model",
            tiny_config(build_qwen_tokenizer()),
            build_qwen_tokenizer(),
            seed=TINY_SEED,
            initializer_range=TINY_INIT_RANGE,
        )
        reranker = Qwen3VLReranker(
            str(model),
            device="cpu",
            dtype="float32",
            budget=VisionBudget(image_max_pixels=PAGE_TOKENS * 32 * 32),
            vision_cache_mb=2048,
        )
        media = MediaStore(root / "media")
        retriever = Retriever(store=None, media=media, embedder=None)  # hydration reads only the media
        payloads = []
        for i in range(args.pages):
            unit_id = f"{i:02d}page{i:026d}"
            folder = media.unit_dir(unit_id)
            folder.mkdir(parents=True)
            render(i, args.noisy).save(folder / "image.png", format="PNG", compress_level=1)
            payloads.append((unit_id, {"modality": "page", "image": f"{unit_id[:2]}/{unit_id}/image.png"}))

        png_bytes = statistics.mean(media.resolve(p["image"]).stat().st_size for _, p in payloads)

        def hydrate_old() -> list[Content]:
            return [old_document(media, p) for _, p in payloads]

        def hydrate_new() -> list[Content]:
            return [retriever.document(p, unit_id=u) for u, p in payloads]

        # Fill the cache under both kinds of keys (one scoring pass each), and check the scores agree.
        old_scores = reranker.score(QUERY, hydrate_old())
        new_scores = reranker.score(QUERY, hydrate_new())
        max_diff = max(abs(a - b) for a, b in zip(old_scores, new_scores, strict=True))
        assert prepare(reranker, hydrate_old()) == prepare(reranker, hydrate_new()) == args.pages
        tokens = reranker.backbone.vision.prepare(hydrate_new()[0]).images[0].grid_thw
        rows = {
            "old: decode + sha256 key": {
                "hydrate": measure(hydrate_old, args.repeats),
                "total": measure(lambda: prepare(reranker, hydrate_old()), args.repeats),
            },
            "new: StoredImage identity key": {
                "hydrate": measure(hydrate_new, args.repeats),
                "total": measure(lambda: prepare(reranker, hydrate_new()), args.repeats),
            },
        }
    old, new = (r["total"]["cpu_ms"] for r in rows.values())
    result = {
        "pages": args.pages,
        "page_kind": "noisy chart" if args.noisy else "white page render",
        "png_bytes_mean": png_bytes,
        "page_size": list(PAGE_SIZE),
        "image_tokens_per_page": tokens[1] * tokens[2] // 4,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
        "speedup_cpu": old / new,
        "max_score_diff_old_vs_new_keys": max_diff,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.pages} cached pages of {result['image_tokens_per_page']} image tokens, per query (median)")
    print("| path | hydrate CPU ms | preprocess + lookup CPU ms | total CPU ms | total wall ms |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        h, t = r["hydrate"]["cpu_ms"], r["total"]["cpu_ms"]
        print(f"| {name} | {h:.1f} | {t - h:.1f} | {t:.1f} | {r['total']['wall_ms']:.1f} |")
    print(
        f"speed-up (CPU): {result['speedup_cpu']:.0f}x; max score difference old vs new keys {max_diff:.1e}"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
