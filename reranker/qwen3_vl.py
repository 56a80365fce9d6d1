"""Qwen3-VL cross-encoder reranker: many pairs per forward pass, one projected logit per pair."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from core.content import Content, parse_content
from core.device import attention_implementation, resolve_device, resolve_dtype
from core.errors import InputTooLongError, InvalidInputError, ModelLoadError, located
from core.media import DEFAULT_POLICY, MediaPolicy
from core.qwen_vl.backbone import EncodedInput, Qwen3VLBackbone, load_checkpoint
from core.qwen_vl.budget import VisionBudget
from core.qwen_vl.feature_cache import VisionFeatureCache
from core.qwen_vl.pipeline import run_batches
from core.settings import Settings
from reranker.base import Reranker
from reranker.profiles import RerankerProfile, resolve_profile
from reranker.prompt import render_side

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen3-VL-Reranker-2B"


# One (query, document) pair: its prompt ids and the vision inputs of both sides.
EncodedPair = EncodedInput


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
        instruction: default instruction; each call may override it (default: the profile's).
        profile: how this checkpoint reads a pair and answers (:mod:`reranker.profiles`): a profile,
            a built-in profile's name, or a JSON file; None is the released Qwen3-VL rerankers'.
        vision_cache_mb: memory for the vision tower's output per document image (on the model's
            device), reused when a page is scored again; 0 turns the cache off. Exact: scores do
            not change.
        compile: compile the decoder layers with ``torch.compile`` (fuses the element-wise work
            around the matrix products; the first calls of a new shape take seconds to compile).
        vision_varlen: one packed flash-attention call per vision layer (see
            :mod:`core.qwen_vl.attention`); CUDA with fp16/bf16 only, and faster only with ``compile``.
    """

    backend = "qwen3-vl"

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
        instruction: str | None = None,
        vision_cache_mb: float = 0,
        compile: bool = False,
        vision_varlen: bool = False,
        profile: str | RerankerProfile | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, dtype)
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.profile = resolve_profile(profile)
        self.instruction = instruction or self.profile.instruction
        self.model_name = model_name_or_path
        attn = attention_implementation(self.device, self.dtype, attn_implementation)
        processor, full = load_checkpoint(
            model_name_or_path,
            dtype=self.dtype,
            attn_implementation=attn,
            role="reranker",
            setting="MMSEARCH_RERANKER_MODEL",
        )
        self.tokenizer = processor.tokenizer
        yes_id, no_id = self._answer_ids(self.profile.yes, self.profile.no)
        weight = full.get_output_embeddings().weight
        # The only row of the LM head the score needs, kept in fp32 for a stable projection.
        self.score_vector = (weight[yes_id].float() - weight[no_id].float()).detach().to(self.device)
        self.backbone = Qwen3VLBackbone(
            processor,
            full.model,
            device=self.device,
            dtype=self.dtype,
            budget=_budget_of(self.profile, budget or VisionBudget()),
            media_policy=media_policy,
            feature_cache=VisionFeatureCache(int(vision_cache_mb * 2**20)) if vision_cache_mb > 0 else None,
            compile=compile,
            vision_varlen=vision_varlen,
        )
        del full
        logger.info(
            "loaded reranker %s on %s (%s, %s attention)", model_name_or_path, self.device, self.dtype, attn
        )

    @property
    def image_token_id(self) -> int:
        """Id of ``<|image_pad|>``, one per merged image patch in a prompt."""
        return self.backbone.image_token_id

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Qwen3VLReranker:
        """Build from a :class:`core.settings.Settings`; keyword overrides win over the settings."""
        kwargs: dict[str, Any] = {
            "model_name_or_path": settings.reranker_model,
            **settings.model_options(),
            "max_length": settings.rerank_max_length,
            "batch_tokens": settings.rerank_batch_tokens,
            "budget": VisionBudget.from_settings(settings),
            "media_policy": settings.media_policy(),
            "vision_cache_mb": settings.rerank_vision_cache_mb,
            "compile": settings.torch_compile,
            "vision_varlen": settings.vision_varlen,
            "profile": settings.reranker_profile,
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
        scores = run_batches(pairs, self.launch, batch_tokens=self.batch_tokens)
        return scores.tolist()

    # -- stages: CPU preprocessing, GPU forward -------------------------------------------------------

    def encode(
        self, query: Content, documents: Sequence[Content], *, instruction: str | None = None
    ) -> list[EncodedPair]:
        """CPU stage: load media, build and tokenize each pair's prompt, truncate to ``max_length``."""
        with located("query"):
            query_media = self.backbone.vision.prepare(query)
        query_side = render_side(query_media.placeholders, query.texts, empty=self.profile.empty_side)
        labels = [f"document {i}" for i in range(len(documents))]
        docs_media = self.backbone.vision.prepare_all(documents, labels)
        instruction = instruction or self.instruction
        prompts = [
            self.profile.render(
                query_side,
                render_side(media.placeholders, doc.texts, empty=self.profile.empty_side),
                instruction,
            )
            for doc, media in zip(documents, docs_media, strict=True)
        ]
        pairs = []
        for label, ids, media in zip(labels, self.backbone.tokenize(prompts), docs_media, strict=True):
            kept = self.backbone.truncate(ids, self.max_length)
            if kept is None:
                raise InputTooLongError(
                    f"{label}: its images and videos need more than max_length={self.max_length} "
                    "tokens; lower the pixel budget or raise max_length"
                )
            pairs.append(
                EncodedPair(kept, query_media.images + media.images, query_media.videos + media.videos)
            )
        return pairs

    def forward(self, pairs: Sequence[EncodedPair]) -> list[float]:
        """Device stage: score one batch of encoded pairs in a single forward pass."""
        return self.launch(pairs).tolist()

    def launch(self, pairs: Sequence[EncodedPair]) -> torch.Tensor:
        """Start scoring one batch; returns the scores as a device tensor without waiting for them."""
        hidden = self.backbone.last_hidden_state(pairs, padding_side="left")
        # Left padding puts every pair's final prompt token in the last column.
        last = hidden[:, -1, :].float()
        return torch.sigmoid(last @ self.score_vector)


def _budget_of(profile: RerankerProfile, budget: VisionBudget) -> VisionBudget:
    """``budget`` with the image maximum the profile's model was trained with, when it names one.

    The profile is part of the model's contract, so it applies to a budget from the settings too.
    """
    if profile.image_max_pixels is None:
        return budget
    return replace(budget, image_max_pixels=profile.image_max_pixels)
