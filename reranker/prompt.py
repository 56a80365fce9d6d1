"""The Qwen3-VL reranker prompt, rendered exactly as the released model was trained on it.

We render the chat format ourselves rather than through a checkpoint's chat template: the layout is
part of the scoring contract (a wrong template puts every image score near 0.5), and owning it makes
it testable against the published string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
EMPTY_SIDE = "NULL"

VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
# "<|im_end|>\n<|im_start|>assistant\n": truncation never cuts these final tokens.
SUFFIX_TOKENS = 5


def image_placeholder(num_tokens: int) -> str:
    """An image in the prompt, its pad repeated once per merged vision token."""
    return VISION_START + IMAGE_PAD * num_tokens + VISION_END


def video_placeholder(timestamps: Sequence[float], tokens_per_step: int) -> str:
    """A video in the prompt: every temporal step gets its time stamp and its own vision block."""
    return "".join(
        f"<{t:.1f} seconds>" + VISION_START + VIDEO_PAD * tokens_per_step + VISION_END for t in timestamps
    )


def render_side(vision: Iterable[str], texts: Iterable[str]) -> str:
    """One side's content: videos, then images (already rendered), then texts; ``NULL`` when empty."""
    body = "".join(vision) + "".join(texts)
    return body if body else EMPTY_SIDE


def render_prompt(query: str, document: str, instruction: str, system: str = SYSTEM_PROMPT) -> str:
    """The full chat prompt for one pair, given each side already rendered by :func:`render_side`."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n<Instruct>: {instruction}<Query>:{query}\n<Document>:{document}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def truncate_ids(ids: Sequence[int], max_length: int, protected: np.ndarray) -> list[int] | None:
    """Cut a token sequence to ``max_length`` the way the released reranker does.

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
