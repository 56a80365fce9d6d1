"""bf16 on a GPU against fp32: the released precision must not move scores by more than 0.02."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_scores_within_002_of_fp32(tiny_reranker_dir, media, frames):
    from reranker import Qwen3VLReranker

    docs = [
        "Revenue grew by 12 percent.",
        {"image": str(media["chart"])},
        {"image": str(media["photo"]), "text": "a photo"},
        {"video": frames(4, size=(512, 288))},
        "word " * 300,
    ]
    fp32 = Qwen3VLReranker(str(tiny_reranker_dir), device="cuda", dtype="float32").score("sales", docs)
    bf16_model = Qwen3VLReranker(str(tiny_reranker_dir), device="cuda")
    assert bf16_model.dtype == torch.bfloat16
    bf16 = bf16_model.score("sales", docs)
    np.testing.assert_allclose(bf16, fp32, atol=0.02, rtol=0)


def _pages(count: int, size=(256, 320)) -> list:
    from tests.conftest import make_chart

    return [{"image": make_chart(*size, seed=50 + i), "text": f"page {i}"} for i in range(count)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("varlen", [False, True])
def test_compiled_and_varlen_paths_score_within_002_of_eager(tiny_reranker_dir, varlen):
    from reranker import Qwen3VLReranker

    docs = ["Revenue grew by 12 percent.", *_pages(5), *_pages(2, size=(512, 160)), "word " * 200]
    eager = Qwen3VLReranker(str(tiny_reranker_dir), device="cuda").score("sales", docs)
    fast = Qwen3VLReranker(str(tiny_reranker_dir), device="cuda", compile=True, vision_varlen=varlen)
    assert fast.backbone.vision_varlen is varlen
    for _ in range(2):  # the first call compiles; the second runs the compiled code
        np.testing.assert_allclose(fast.score("sales", docs), eager, atol=0.02, rtol=0)
    # Other batch sizes and image sizes run through the same compiled code.
    np.testing.assert_allclose(fast.score("sales", docs[3:6]), eager[3:6], atol=0.02, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cached_vision_features_give_the_same_scores_on_gpu(tiny_reranker_dir):
    from reranker import Qwen3VLReranker

    docs = _pages(6)
    model = Qwen3VLReranker(str(tiny_reranker_dir), device="cuda", vision_cache_mb=64)
    first = model.score("sales", docs)
    again = model.score("sales", docs)
    assert model.backbone.feature_cache.hits == len(docs)
    np.testing.assert_allclose(again, first, atol=1e-6, rtol=0)  # the same tensors the tower produced
