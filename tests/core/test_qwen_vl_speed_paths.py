"""The pieces that make the Qwen3-VL path fast must compute exactly what the slow path computes.

Patches cut from uint8 pixels equal the checkpoint processor's output; prompts tokenized with their
pad runs spliced in equal the plain tokenizer's ids; the vision-feature cache is an exact, bounded LRU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.qwen_vl.feature_cache import VisionFeatureCache, VisionFeatures
from core.qwen_vl.markers import image_placeholder, render_chat, video_placeholder
from core.qwen_vl.patches import PatchLayout


@pytest.fixture(scope="module")
def processor(qwen_tokenizer):
    from core.qwen_vl.replica import build_processor

    return build_processor(qwen_tokenizer)


def _pixels(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("size", [(32, 32), (64, 96), (224, 160), (1024, 1280)])
def test_image_patches_equal_the_processor(processor, size):
    rng = np.random.default_rng(sum(size))
    pixels = _pixels(rng, size[1], size[0], 3)
    expected = processor.image_processor(images=[pixels], do_resize=False, return_tensors="pt")
    layout = PatchLayout.from_processor(processor.image_processor)
    ours = layout.patchify(torch.from_numpy(pixels)[None])
    assert tuple(expected["image_grid_thw"][0].tolist()) == layout.grid(1, size[1], size[0])
    assert ours.shape == expected["pixel_values"].shape
    torch.testing.assert_close(ours, expected["pixel_values"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("count", [2, 4, 6])
def test_video_patches_equal_the_processor(processor, count):
    rng = np.random.default_rng(count)
    clip = _pixels(rng, count, 64, 96, 3)
    expected = processor.video_processor(
        videos=[clip], do_resize=False, do_sample_frames=False, return_tensors="pt"
    )
    layout = PatchLayout.from_processor(processor.video_processor)
    ours = layout.patchify(torch.from_numpy(clip))
    assert tuple(expected["video_grid_thw"][0].tolist()) == layout.grid(count, 64, 96)
    torch.testing.assert_close(ours, expected["pixel_values_videos"], atol=1e-6, rtol=0)


def test_patchify_refuses_sizes_off_the_grid(processor):
    layout = PatchLayout.from_processor(processor.image_processor)
    with pytest.raises(ValueError, match="multiple of 32"):
        layout.patchify(torch.zeros(1, 40, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        layout.patchify(torch.zeros(32, 32, 3, dtype=torch.uint8))


def test_patchify_casts_to_the_asked_dtype(processor):
    layout = PatchLayout.from_processor(processor.image_processor)
    pixels = torch.from_numpy(_pixels(np.random.default_rng(0), 1, 64, 64, 3))
    half = layout.patchify(pixels, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), layout.patchify(pixels), atol=1e-2, rtol=1e-2)


def test_spliced_tokenization_equals_the_plain_tokenizer(tiny_reranker, qwen_tokenizer):
    prompts = [
        render_chat("sys", "no vision at all, just words"),
        render_chat("sys", "a page: " + image_placeholder(1280) + " and text after it"),
        render_chat("sys", image_placeholder(4) + image_placeholder(9) + "two images back to back"),
        render_chat("sys", video_placeholder([0.5, 2.5, 4.5], 6) + "a video" + image_placeholder(16)),
        render_chat("sys", "<|image_pad|> a lone pad written by hand <|video_pad|><|video_pad|>"),
        "",
    ]
    plain = [qwen_tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert tiny_reranker.backbone.tokenize(prompts) == plain


def _features(rows: int, seed: int = 0) -> VisionFeatures:
    g = torch.Generator().manual_seed(seed)
    return VisionFeatures(torch.randn(rows, 8, generator=g), (torch.randn(rows, 8, generator=g),))


def test_feature_cache_evicts_least_recently_used_within_its_bound():
    one = _features(4).nbytes  # 4 rows x 8 x 4 bytes x 2 tensors = 256
    cache = VisionFeatureCache(max_bytes=3 * one)
    for key in "abc":
        cache.put(key, _features(4, seed=ord(key)))
    assert cache.get("a") is not None  # a is now the most recent; b is the oldest
    cache.put("d", _features(4, seed=9))
    assert cache.get("b") is None
    assert {k for k in "acd" if cache.get(k) is not None} == set("acd")
    assert cache.nbytes == 3 * one <= cache.max_bytes
    cache.put("huge", _features(40))  # larger than the whole bound: never stored
    assert cache.get("huge") is None and len(cache) == 3


def test_feature_cache_stores_copies_not_views_of_a_batch():
    batch = torch.randn(10, 8)
    features = VisionFeatures(batch[2:6], (batch[2:6] * 2,))
    cache = VisionFeatureCache(max_bytes=1 << 20)
    cache.put("k", features)
    stored = cache.get("k")
    assert stored.embeds.untyped_storage().nbytes() == 4 * 8 * 4  # its own storage, not the batch's
    torch.testing.assert_close(stored.embeds, batch[2:6])
    batch.zero_()
    assert stored.embeds.abs().sum() > 0


def test_feature_cache_counts_hits_and_misses_and_replaces_keys():
    cache = VisionFeatureCache(max_bytes=1 << 20)
    assert cache.get("x") is None
    cache.put("x", _features(2, seed=1))
    cache.put("x", _features(3, seed=2))
    assert cache.get("x").embeds.shape[0] == 3
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
    assert cache.nbytes == _features(3).nbytes
    with pytest.raises(ValueError):
        VisionFeatureCache(0)
