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
