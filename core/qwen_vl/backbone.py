"""Loading a Qwen3-VL checkpoint and running its inner model on padded batches.

The reranker and the embedder differ only in their prompt, their padding side and what they read
off the final hidden states; everything else (loading, vision preprocessing, truncation, collation,
M-RoPE positions, the forward pass) lives here once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from core.errors import MMSearchError, ModelLoadError
from core.media import MediaPolicy
from core.qwen_vl import QWEN3_VL_MODEL_TYPES
from core.qwen_vl.budget import VisionBudget
from core.qwen_vl.markers import IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START
from core.qwen_vl.truncation import truncate_ids
from core.qwen_vl.vision import VisionInput, VisionPreprocessor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedInput:
    """One prompt as token ids plus the vision inputs its pads stand for, in prompt order."""

    input_ids: list[int]
    images: tuple[VisionInput, ...] = ()
    videos: tuple[VisionInput, ...] = ()


def load_checkpoint(
    model_name_or_path: str,
    *,
    dtype: torch.dtype,
    attn_implementation: str,
    role: str,
    setting: str,
    validate: Callable[[Any], None] | None = None,
) -> tuple[Any, Any]:
    """Load the processor and the full ``Qwen3VLForConditionalGeneration`` of a hub id or local folder.

    Args:
        model_name_or_path: hub id or local folder loadable by ``from_pretrained``.
        dtype: parameter dtype.
        attn_implementation: attention kernel name.
        role: what the model is for, in error messages ("reranker", "embedder").
        setting: the environment variable that chooses the model, named in error messages.
        validate: called with the checkpoint's config before anything heavy loads, so a caller can
            reject arguments that do not fit the model (e.g. an embedding size) at once.

    Returns:
        ``(processor, model)``; callers keep what they need of the model (its inner ``model``, a row
        of the LM head) and drop the rest.

    Raises:
        ModelLoadError: the checkpoint cannot be found or read, or is not a Qwen3-VL checkpoint.
    """
    from transformers import AutoConfig, AutoProcessor, Qwen3VLForConditionalGeneration

    hint = (
        f"Give a hub id you can reach or a local folder (--model, {setting}); "
        "HF_HUB_OFFLINE=1 makes a missing model fail at once instead of after retries."
    )
    try:
        config = AutoConfig.from_pretrained(model_name_or_path)
        model_type = getattr(config, "model_type", None)
        if model_type not in QWEN3_VL_MODEL_TYPES:
            raise ModelLoadError(
                f"cannot load {role} {model_name_or_path!r}: it is a {model_type!r} checkpoint, "
                "not Qwen3-VL (model_type 'qwen3_vl')"
            )
        if validate is not None:
            validate(config)
        processor = AutoProcessor.from_pretrained(model_name_or_path)
        model = Qwen3VLForConditionalGeneration.from_pretrained(
            model_name_or_path, dtype=dtype, attn_implementation=attn_implementation
        )
    except MMSearchError:
        raise  # already says what is wrong (including a validate() refusal)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load {role} {model_name_or_path!r}: {exc}\n{hint}") from exc
    return processor, model


class Qwen3VLBackbone:
    """Tokenizer, vision preprocessing and the inner ``Qwen3VLModel`` of one checkpoint.

    Args:
        processor: the checkpoint's processor (tokenizer, image and video processors).
        model: the inner ``Qwen3VLModel`` (``full.model``); the LM head is never run.
        device: where the model runs; it is moved there.
        dtype: dtype of the pixel values fed to the vision tower (the model's dtype).
        budget: pixel budgets and video sampling.
        media_policy: size, pixel and source limits for loading media.
    """

    def __init__(
        self,
        processor: Any,
        model: Any,
        *,
        device: torch.device,
        dtype: torch.dtype,
        budget: VisionBudget,
        media_policy: MediaPolicy,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.tokenizer = processor.tokenizer
        self.model = model.to(device).eval()
        self.vision = VisionPreprocessor(processor, budget, media_policy)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.video_token_id = self.tokenizer.convert_tokens_to_ids(VIDEO_PAD)
        vision_ids = self.tokenizer.convert_tokens_to_ids([VISION_START, VISION_END])
        self.protected = np.array(
            sorted({*self.tokenizer.all_special_ids, *vision_ids, self.image_token_id, self.video_token_id})
        )

    @property
    def hidden_size(self) -> int:
        """Width of the final hidden states."""
        return int(self.model.config.text_config.hidden_size)

    def tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of fully rendered prompts (the prompts already hold every special token)."""
        if not prompts:
            return []
        return self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]

    def truncate(self, ids: Sequence[int], max_length: int) -> list[int] | None:
        """See :func:`core.qwen_vl.truncation.truncate_ids`; special and vision tokens are protected."""
        return truncate_ids(ids, max_length, self.protected)

    def collate(
        self, items: Sequence[EncodedInput], *, padding_side: Literal["left", "right"]
    ) -> dict[str, torch.Tensor]:
        """Pad a batch on one side and gather its vision inputs in prompt order, on the model's device."""
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        width = max(len(item.input_ids) for item in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item.input_ids)
            span = slice(width - n, width) if padding_side == "left" else slice(0, n)
            ids[row, span] = torch.tensor(item.input_ids, dtype=torch.long)
            mask[row, span] = 1
        # Derived from the ids after padding and truncation, so it can never disagree with them.
        types = (ids == self.image_token_id).long() + 2 * (ids == self.video_token_id).long()
        batch = {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": types}
        images = [v for item in items for v in item.images]
        videos = [v for item in items for v in item.videos]
        if images:
            batch["pixel_values"] = torch.cat([v.pixel_values for v in images]).to(self.dtype)
            batch["image_grid_thw"] = torch.tensor([v.grid_thw for v in images], dtype=torch.long)
        if videos:
            batch["pixel_values_videos"] = torch.cat([v.pixel_values for v in videos]).to(self.dtype)
            batch["video_grid_thw"] = torch.tensor([v.grid_thw for v in videos], dtype=torch.long)
        return {k: v.to(self.device) for k, v in batch.items()}

    @torch.inference_mode()
    def last_hidden_state(
        self, items: Sequence[EncodedInput], *, padding_side: Literal["left", "right"]
    ) -> torch.Tensor:
        """One forward pass over a padded batch; returns the final hidden states (batch, width, hidden).

        M-RoPE positions are computed here from the token types and the attention mask, so padding on
        either side leaves every sequence's positions exactly as if it ran alone.
        """
        inputs = self.collate(items, padding_side=padding_side)
        position_ids, _ = self.model.get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=inputs.get("video_grid_thw"),
            attention_mask=inputs["attention_mask"],
        )
        out = self.model(**inputs, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state
