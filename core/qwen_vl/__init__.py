"""What the Qwen3-VL models of mmsearch share: the reranker (``reranker/``) and the embedder (``indexer/``).

Importing this package is cheap (no torch, transformers or PyAV): it holds the chat format, pixel
budgets, token-budget batching and truncation. The heavy parts are submodules loaded on first use:

- :mod:`core.qwen_vl.vision`: media to pixel patches and prompt placeholders.
- :mod:`core.qwen_vl.backbone`: checkpoint loading, collation, M-RoPE positions and the forward pass.
- :mod:`core.qwen_vl.replica`: random-weight checkpoints with the real Qwen vocabulary (tests, benchmarks).
"""

from __future__ import annotations

from core.qwen_vl.batching import plan_batches
from core.qwen_vl.budget import VisionBudget
from core.qwen_vl.markers import (
    GENERATION_SUFFIX,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    image_placeholder,
    render_chat,
    video_placeholder,
)
from core.qwen_vl.truncation import SUFFIX_TOKENS, truncate_ids

# ``model_type`` in the config.json of the checkpoints this code runs.
QWEN3_VL_MODEL_TYPES = frozenset({"qwen3_vl"})

__all__ = [
    "GENERATION_SUFFIX",
    "IMAGE_PAD",
    "QWEN3_VL_MODEL_TYPES",
    "SUFFIX_TOKENS",
    "VIDEO_PAD",
    "VISION_END",
    "VISION_START",
    "VisionBudget",
    "image_placeholder",
    "plan_batches",
    "render_chat",
    "truncate_ids",
    "video_placeholder",
]
