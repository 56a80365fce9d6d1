"""The Qwen3-VL chat format: special markers, vision placeholders and the chat frame around a prompt.

Both the reranker and the embedder render their prompts from these pieces rather than through a
checkpoint's chat template, so the layout is ours to test against the published strings.
"""

from __future__ import annotations

from collections.abc import Sequence

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
# What add_generation_prompt=True leaves at the end of every prompt (no think block).
GENERATION_SUFFIX = f"{IM_END}\n{IM_START}assistant\n"


def image_placeholder(num_tokens: int) -> str:
    """An image in the prompt, its pad repeated once per merged vision token."""
    return VISION_START + IMAGE_PAD * num_tokens + VISION_END


def video_placeholder(timestamps: Sequence[float], tokens_per_step: int) -> str:
    """A video in the prompt: every temporal step gets its time stamp and its own vision block.

    This is what the Qwen3-VL processor makes of the chat template's
    ``<|vision_start|><|video_pad|><|vision_end|>``.
    """
    return "".join(
        f"<{t:.1f} seconds>" + VISION_START + VIDEO_PAD * tokens_per_step + VISION_END for t in timestamps
    )


def render_chat(system: str, user: str) -> str:
    """A system turn, a user turn and the generation prompt, as the Qwen3-VL chat template renders them."""
    return f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{user}{GENERATION_SUFFIX}"
