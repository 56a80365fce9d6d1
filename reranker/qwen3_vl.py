"""Qwen3-VL cross-encoder reranker: many pairs per forward pass, one projected logit per pair."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.content import Content, parse_content
from core.device import attention_implementation, resolve_device, resolve_dtype
from core.errors import InputTooLongError, InvalidInputError, ModelLoadError, located
from core.media import DEFAULT_POLICY, MediaPolicy
from core.settings import Settings
from reranker.base import Reranker
from reranker.batching import plan_batches
from reranker.budget import VisionBudget
from reranker.prompt import (
    DEFAULT_INSTRUCTION,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    render_prompt,
    truncate_ids,
)
from reranker.vision import VisionInput, VisionPreprocessor

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen3-VL-Reranker-2B"


@dataclass(frozen=True)
class EncodedPair:
    """One (query, document) pair as token ids plus the vision inputs its pads stand for."""

    input_ids: list[int]
    images: tuple[VisionInput, ...]
    videos: tuple[VisionInput, ...]


class Qwen3VLReranker(Reranker):
    """Scores (query, document) pairs with a Qwen3-VL reranker checkpoint.

    Score = sigmoid(h_last . (w_yes - w_no)): the final hidden state of the last prompt position
    projected on one precomputed row, which equals sigmoid(logit_yes - logit_no) of the full LM head
    without ever computing the vocabulary logits.

    Args:
        model_name_or_path: hub id or local folder loadable by ``from_pretrained``.
        device: "cpu", "cuda", "cuda:N"; None picks cuda when available.
        dtype: torch dtype or its name; None picks bf16 on cuda (fp16 without bf16), fp32 on cpu.
        attn_implementation: "sdpa", "flash_attention_2", "eager"; None picks the best available.
        max_length: token limit of one pair; longer pairs lose the tail of their text.
        batch_tokens: padded tokens per forward pass (pairs x longest pair in the batch).
        budget: pixel budgets and video sampling.
        media_policy: size, pixel and source limits for loading media.
        instruction: default instruction; each call may override it.
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        attn_implementation: str | None = None,
        max_length: int = 10240,
        batch_tokens: int = 16384,
        budget: VisionBudget | None = None,
        media_policy: MediaPolicy = DEFAULT_POLICY,
        instruction: str = DEFAULT_INSTRUCTION,
    ) -> None:
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, dtype)
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.instruction = instruction
        self.model_name = model_name_or_path
        attn = attention_implementation(self.device, self.dtype, attn_implementation)
        try:
            processor = AutoProcessor.from_pretrained(model_name_or_path)
            full = Qwen3VLForConditionalGeneration.from_pretrained(
                model_name_or_path, dtype=self.dtype, attn_implementation=attn
            )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load reranker {model_name_or_path!r}: {exc}\n"
                "Give a hub id you can reach or a local folder (--model, MMSEARCH_RERANKER_MODEL); "
                "HF_HUB_OFFLINE=1 makes a missing model fail at once instead of after retries."
            ) from exc
        self.tokenizer = processor.tokenizer
        yes_id, no_id = self._answer_ids("yes", "no")
        weight = full.get_output_embeddings().weight
        # The only row of the LM head the score needs, kept in fp32 for a stable projection.
        self.score_vector = (weight[yes_id].float() - weight[no_id].float()).detach().to(self.device)
        self.model = full.model.to(self.device).eval()
        del full
        self.vision = VisionPreprocessor(processor, budget or VisionBudget(), media_policy)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.video_token_id = self.tokenizer.convert_tokens_to_ids(VIDEO_PAD)
        vision_ids = self.tokenizer.convert_tokens_to_ids([VISION_START, VISION_END])
        self._protected = np.array(
            sorted({*self.tokenizer.all_special_ids, *vision_ids, self.image_token_id, self.video_token_id})
        )
        logger.info(
            "loaded reranker %s on %s (%s, %s attention)", model_name_or_path, self.device, self.dtype, attn
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Qwen3VLReranker:
        """Build from a :class:`core.settings.Settings`; keyword overrides win over the settings."""
        kwargs: dict[str, Any] = {
            "model_name_or_path": settings.reranker_model,
            "device": settings.device,
            "dtype": settings.dtype,
            "attn_implementation": settings.attn_implementation,
            "max_length": settings.rerank_max_length,
            "batch_tokens": settings.rerank_batch_tokens,
            "budget": VisionBudget(
                image_min_pixels=settings.image_min_pixels,
                image_max_pixels=settings.image_max_pixels,
                video_fps=settings.video_fps,
                video_max_frames=settings.video_max_frames,
                video_min_pixels=settings.video_min_pixels,
                video_max_pixels=settings.video_max_pixels,
                video_total_pixels=settings.video_total_pixels,
            ),
            "media_policy": settings.media_policy(),
        }
        return cls(**{**kwargs, **overrides})

    def _answer_ids(self, yes: str, no: str) -> tuple[int, int]:
        ids = []
        for word in (yes, no):
            tokens = self.tokenizer.encode(word, add_special_tokens=False)
            if len(tokens) != 1:
                raise ModelLoadError(
                    f"the tokenizer splits {word!r} into {len(tokens)} tokens; need exactly one"
                )
            ids.append(tokens[0])
        return ids[0], ids[1]

    # -- public API ---------------------------------------------------------------------------------

    def score(self, query: Any, documents: Sequence[Any], *, instruction: str | None = None) -> list[float]:
        """Score every document against the query; returns floats in (0, 1), in input order.

        Raises:
            InvalidInputError: an empty query, a wrong type, or ``documents`` that is not a list.
            ContentTypeError: a mapping key other than text/image/video.
            MediaError: an image or video that cannot be loaded; the message names the item.
        """
        if isinstance(documents, (str, bytes, Mapping, Content)) or not isinstance(documents, Sequence):
            raise InvalidInputError("documents must be a list of documents")
        if instruction is not None and not isinstance(instruction, str):
            raise InvalidInputError("instruction must be a string")
        query_content = parse_content(query, where="query")
        if query_content.is_empty:
            raise InvalidInputError("query is empty: give it text, an image or a video")
        doc_contents = [parse_content(d, where=f"document {i}") for i, d in enumerate(documents)]
        if not doc_contents:
            return []
        pairs = self.encode(query_content, doc_contents, instruction=instruction)
        scores = [0.0] * len(pairs)
        for batch in plan_batches([len(p.input_ids) for p in pairs], self.batch_tokens):
            for i, value in zip(batch, self.forward([pairs[i] for i in batch]), strict=True):
                scores[i] = value
        return scores

    # -- stages: CPU preprocessing, GPU forward -------------------------------------------------------

    def encode(
        self, query: Content, documents: Sequence[Content], *, instruction: str | None = None
    ) -> list[EncodedPair]:
        """CPU stage: load media, build and tokenize each pair's prompt, truncate to ``max_length``."""
        with located("query"):
            prepared_query = self.vision.prepare(query)
        sides = []
        for i, doc in enumerate(documents):
            with located(f"document {i}"):
                sides.append(self.vision.prepare(doc))
        prompts = [
            render_prompt(prepared_query.text, side.text, instruction or self.instruction) for side in sides
        ]
        token_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        pairs = []
        for i, (ids, side) in enumerate(zip(token_ids, sides, strict=True)):
            kept = truncate_ids(ids, self.max_length, self._protected)
            if kept is None:
                raise InputTooLongError(
                    f"document {i}: its images and videos need more than max_length={self.max_length} "
                    "tokens; lower the pixel budget or raise max_length"
                )
            pairs.append(
                EncodedPair(kept, prepared_query.images + side.images, prepared_query.videos + side.videos)
            )
        return pairs

    @torch.inference_mode()
    def forward(self, pairs: Sequence[EncodedPair]) -> list[float]:
        """Device stage: score one batch of encoded pairs in a single forward pass."""
        inputs = self.collate(pairs)
        position_ids, _ = self.model.get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=inputs.get("video_grid_thw"),
            attention_mask=inputs["attention_mask"],
        )
        out = self.model(**inputs, position_ids=position_ids, use_cache=False)
        # Left padding puts every pair's final prompt token in the last column.
        last = out.last_hidden_state[:, -1, :].float()
        return torch.sigmoid(last @ self.score_vector).tolist()

    def collate(self, pairs: Sequence[EncodedPair]) -> dict[str, torch.Tensor]:
        """Left-pad a batch and gather its vision inputs in prompt order."""
        width = max(len(p.input_ids) for p in pairs)
        ids = torch.full((len(pairs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for row, pair in enumerate(pairs):
            n = len(pair.input_ids)
            ids[row, width - n :] = torch.tensor(pair.input_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        # Derived from the ids after padding and truncation, so it can never disagree with them.
        types = (ids == self.image_token_id).long() + 2 * (ids == self.video_token_id).long()
        batch = {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": types}
        images = [v for p in pairs for v in p.images]
        videos = [v for p in pairs for v in p.videos]
        if images:
            batch["pixel_values"] = torch.cat([v.pixel_values for v in images]).to(self.dtype)
            batch["image_grid_thw"] = torch.tensor([v.grid_thw for v in images], dtype=torch.long)
        if videos:
            batch["pixel_values_videos"] = torch.cat([v.pixel_values for v in videos]).to(self.dtype)
            batch["video_grid_thw"] = torch.tensor([v.grid_thw for v in videos], dtype=torch.long)
        return {k: v.to(self.device) for k, v in batch.items()}
