"""Cutting an over-long prompt to a token limit without breaking its structure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# "<|im_end|>\n<|im_start|>assistant\n" (markers.GENERATION_SUFFIX): truncation never cuts these tokens.
SUFFIX_TOKENS = 5


def truncate_ids(ids: Sequence[int], max_length: int, protected: np.ndarray) -> list[int] | None:
    """Cut a token sequence to ``max_length`` the way the released Qwen3-VL models do.

    Every protected token (special and vision tokens) and the final :data:`SUFFIX_TOKENS` are kept;
    ordinary tokens are kept from the start until the budget is spent, so the tail of the longest text
    goes first. Returns None when the protected tokens alone do not fit.
    """
    if len(ids) <= max_length:
        return list(ids)
    body = np.asarray(ids[:-SUFFIX_TOKENS])
    is_protected = np.isin(body, protected)
    budget = max_length - SUFFIX_TOKENS - int(is_protected.sum())
    if budget < 0:
        return None
    keep = is_protected | (np.cumsum(~is_protected) <= budget)
    return body[keep].tolist() + list(ids[-SUFFIX_TOKENS:])
