"""One variable-length attention call per vision layer instead of one call per image.

With SDPA, transformers runs the vision tower's attention image by image: for 25 pages that is 25
kernel launches per layer plus a split and a concatenation of every activation, and a Python loop
that ``torch.compile`` cannot fuse across. PyTorch's ``varlen_attn`` (flash attention over packed
sequences with cumulative lengths) does the whole batch in one call, which is what transformers'
flash-attention path expects. We register it through transformers' public ``AttentionInterface``
and switch only the vision tower to it; the language model keeps its own kernel.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

# transformers routes any implementation whose name contains "flash" through the packed path.
VARLEN_ATTENTION = "mmsearch_flash_varlen"


def varlen_available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether this torch build has ``varlen_attn`` and the device/dtype can run it (CUDA, fp16/bf16)."""
    if device.type != "cuda" or dtype not in (torch.float16, torch.bfloat16):
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def _varlen_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from torch.nn.attention.varlen import varlen_attn

    if cu_seq_lens_q is None or attention_mask is not None or dropout:
        raise ValueError("the varlen vision attention takes packed sequences only (no mask, no dropout)")
    head_dim = query.shape[-1]
    if scaling is not None and abs(scaling - head_dim**-0.5) > 1e-6:
        raise ValueError(f"the varlen vision attention uses the default scale, not {scaling}")
    # transformers hands (1, heads, tokens, dim); varlen_attn reads (tokens, heads, dim).
    q, k, v = (t.squeeze(0).transpose(0, 1).contiguous() for t in (query, key, value))
    cu_q = cu_seq_lens_q.to(torch.int32)
    cu_k = cu_q if cu_seq_lens_k is None else cu_seq_lens_k.to(torch.int32)
    out = varlen_attn(q, k, v, cu_q, cu_k, max_length_q, max_length_k or max_length_q)
    return out.unsqueeze(0), None  # (1, tokens, heads, dim), as the flash path returns


def use_varlen_vision_attention(model: Any) -> None:
    """Switch the vision tower of a ``Qwen3VLModel`` to :func:`_varlen_attention`."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN_ATTENTION, _varlen_attention)
    model.visual.config._attn_implementation = VARLEN_ATTENTION
    logger.info("vision attention: one varlen flash-attention call per layer")
