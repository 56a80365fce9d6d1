"""Qwen3-VL-Embedding: one vector per text, image, video or any mix of them, many items per forward pass.

The prompt is the released embedder's (see :func:`render_embedding_prompt`): the instruction is the
system turn, the content (videos, images, then texts, concatenated) the user turn, and the generation
prompt closes it. The embedding is the final hidden state of the last prompt token, L2-normalised;
a Matryoshka size keeps its first ``dim`` values and normalises again.

Documents and queries go through the very same preprocessing; only the instruction differs.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.content import Content, parse_content
from core.device import attention_implementation, resolve_device, resolve_dtype
from core.errors import InputTooLongError, InvalidInputError
from core.media import DEFAULT_POLICY, MediaPolicy
from core.qwen_vl.backbone import EncodedInput, Qwen3VLBackbone, load_checkpoint
from core.qwen_vl.budget import VisionBudget
from core.qwen_vl.markers import render_chat
from core.qwen_vl.pipeline import run_batches
from core.settings import Settings
from core.threads import TOKENIZER_LOCK
from indexer.embedders.base import Embedder

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen3-VL-Embedding-2B"
# The released embedder's default instruction, used for everything stored.
DEFAULT_DOCUMENT_INSTRUCTION = "Represent the user's input."
# The query instruction of the release's retrieval examples (text and image queries alike).
DEFAULT_QUERY_INSTRUCTION = "Retrieve images or text relevant to the user's query."


def format_instruction(instruction: str | None, default: str) -> str:
    """The instruction as the released embedder puts it in the system turn.

    Surrounding whitespace is stripped; an empty instruction falls back to ``default``; an
    instruction whose last character is not Unicode punctuation gets a period appended.
    """
    text = (instruction or "").strip() or default.strip()
    if text and not unicodedata.category(text[-1]).startswith("P"):
        text += "."
    return text


def render_embedding_prompt(instruction: str, vision: Iterable[str], texts: Iterable[str]) -> str:
    """The full prompt of one item: instruction as system turn, then videos, images, texts (no separator).

    Args:
        instruction: already formatted by :func:`format_instruction`.
        vision: expanded placeholders of the item's videos then images.
        texts: the item's texts, in order.
    """
    return render_chat(instruction, "".join(vision) + "".join(texts))


class Qwen3VLEmbedder(Embedder):
    """Embeds text, images, videos and mixes of them with a Qwen3-VL-Embedding checkpoint.

    The full ``Qwen3VLForConditionalGeneration`` is loaded (hub id or local folder) but only its inner
    ``Qwen3VLModel`` runs: no LM head. Items are batched by a padded-token budget with right padding,
    and each item's vector is read at its own last token, so a vector does not depend on its batch.

    Args:
        model_name_or_path: hub id or local folder loadable by ``from_pretrained``.
        device: "cpu", "cuda", "cuda:N"; None picks cuda when available.
        dtype: torch dtype or its name; None picks bf16 on cuda (fp16 without bf16), fp32 on cpu.
        attn_implementation: "sdpa", "flash_attention_2", "eager"; None picks the best available.
        dim: Matryoshka size (1 to the model's hidden size); None keeps the full size.
        max_length: token limit of one item; longer items lose the tail of their text.
        batch_tokens: padded tokens per forward pass (items x longest item in the batch).
        budget: pixel budgets and video sampling (the released defaults when None).
        media_policy: size, pixel and source limits for loading media.
        document_instruction: instruction of everything embedded with :meth:`embed_documents`.
        query_instruction: default instruction of :meth:`embed_queries`; each call may override it.
        compile: compile the decoder layers with ``torch.compile`` (see ``Qwen3VLReranker``).
        vision_varlen: one packed flash-attention call per vision layer (see
            :mod:`core.qwen_vl.attention`); CUDA with fp16/bf16 only, and faster only with ``compile``.

    Raises:
        ModelLoadError: the checkpoint cannot be loaded or is not a Qwen3-VL checkpoint.
        InvalidInputError: ``dim`` out of range.
    """

    modalities = frozenset({"text", "image", "video"})

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        attn_implementation: str | None = None,
        dim: int | None = None,
        max_length: int = 8192,
        batch_tokens: int = 16384,
        budget: VisionBudget | None = None,
        media_policy: MediaPolicy = DEFAULT_POLICY,
        document_instruction: str = DEFAULT_DOCUMENT_INSTRUCTION,
        query_instruction: str = DEFAULT_QUERY_INSTRUCTION,
        compile: bool = False,
        vision_varlen: bool = False,
    ) -> None:
        if batch_tokens <= 0:
            raise InvalidInputError(f"batch_tokens must be positive, got {batch_tokens}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, dtype)
        attn = attention_implementation(self.device, self.dtype, attn_implementation)

        def check_dim(config: Any) -> None:
            hidden = int(config.text_config.hidden_size)
            if dim is not None and not 1 <= dim <= hidden:
                raise InvalidInputError(
                    f"dim must be between 1 and the model's hidden size {hidden}, got {dim}"
                )

        processor, full = load_checkpoint(
            model_name_or_path,
            dtype=self.dtype,
            attn_implementation=attn,
            role="embedder",
            setting="MMSEARCH_EMBEDDER_MODEL",
            validate=check_dim,
        )
        self.backbone = Qwen3VLBackbone(
            processor,
            full.model,
            device=self.device,
            dtype=self.dtype,
            budget=budget or VisionBudget(),
            media_policy=media_policy,
            compile=compile,
            vision_varlen=vision_varlen,
        )
        del full  # the LM head is never needed
        hidden = self.backbone.hidden_size
        dim = hidden if dim is None else dim
        self.name = model_name_or_path
        self.dim = dim
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.document_instruction = format_instruction(document_instruction, DEFAULT_DOCUMENT_INSTRUCTION)
        self.query_instruction = format_instruction(query_instruction, DEFAULT_QUERY_INSTRUCTION)
        logger.info(
            "loaded embedder %s on %s (%s, %s attention, dim %d of %d)",
            model_name_or_path,
            self.device,
            self.dtype,
            attn,
            dim,
            hidden,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Qwen3VLEmbedder:
        """Build from a :class:`core.settings.Settings`; keyword overrides win over the settings."""
        kwargs: dict[str, Any] = {
            "model_name_or_path": settings.embedder_model,
            **settings.model_options(),
            "dim": settings.embedding_dim,
            "batch_tokens": settings.embed_batch_tokens,
            "budget": VisionBudget.from_settings(settings),
            "media_policy": settings.media_policy(),
            "compile": settings.torch_compile,
            "vision_varlen": settings.vision_varlen,
        }
        return cls(**{**kwargs, **overrides})

    @property
    def tokenizer(self) -> Any:
        """The checkpoint's (fast) tokenizer."""
        return self.backbone.tokenizer

    # -- public API ---------------------------------------------------------------------------------

    def embed_documents(self, items: Sequence[Any]) -> np.ndarray:
        """Embed documents with the document instruction; returns float32 of shape (len(items), dim).

        Each item is a :class:`core.content.Content` or anything :func:`core.content.parse_content`
        accepts (a string, a PIL image, a mapping with text/image/video).

        Raises:
            InvalidInputError: an empty item, a wrong type, or ``items`` that is not a list.
            InputTooLongError: an item whose images and videos alone exceed ``max_length``.
            MediaError: an image or video that cannot be loaded; the message names the item.
        """
        return self.embed(items, instruction=self.document_instruction, role="document")

    def embed_queries(self, items: Sequence[Any], *, instruction: str | None = None) -> np.ndarray:
        """Embed queries with the query instruction (or ``instruction``); shape (len(items), dim).

        Raises the same errors as :meth:`embed_documents`.
        """
        if instruction is not None and not isinstance(instruction, str):
            raise InvalidInputError("instruction must be a string")
        return self.embed(
            items, instruction=format_instruction(instruction, self.query_instruction), role="query"
        )

    def embed(
        self, items: Sequence[Any], *, instruction: str | None = None, role: str = "item"
    ) -> np.ndarray:
        """Embed items with one instruction (the document instruction when None).

        Errors name the failing item as ``"{role} {i}"``.
        """
        instruction = format_instruction(instruction, self.document_instruction)
        if isinstance(items, (str, bytes, Mapping, Content)) or not isinstance(items, Sequence):
            raise InvalidInputError(f"{role}s must be given as a list")
        contents = [parse_content(item, where=f"{role} {i}") for i, item in enumerate(items)]
        for i, content in enumerate(contents):
            if content.is_empty:
                raise InvalidInputError(f"{role} {i} is empty: give it text, an image or a video")
        if not contents:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self.encode(contents, instruction=instruction, role=role)
        vectors = run_batches(encoded, self.launch, batch_tokens=self.batch_tokens)
        return vectors.cpu().numpy().astype(np.float32, copy=False)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) character span of every token of ``text``, as this model tokenizes it.

        Lets a text chunker count tokens exactly as the embedder will.
        """
        with TOKENIZER_LOCK:
            encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(int(start), int(end)) for start, end in encoding["offset_mapping"]]

    # -- stages: CPU preprocessing, device forward ----------------------------------------------------

    def encode(
        self, contents: Sequence[Content], *, instruction: str, role: str = "item"
    ) -> list[EncodedInput]:
        """CPU stage: load media, render and tokenize every item's prompt, truncate to ``max_length``.

        ``instruction`` goes into the system turn as given (see :func:`format_instruction`).
        """
        labels = [f"{role} {i}" for i in range(len(contents))]
        media = self.backbone.vision.prepare_all(contents, labels)
        prompts = [
            render_embedding_prompt(instruction, m.placeholders, c.texts)
            for c, m in zip(contents, media, strict=True)
        ]
        encoded = []
        for label, ids, m in zip(labels, self.backbone.tokenize(prompts), media, strict=True):
            kept = self.backbone.truncate(ids, self.max_length)
            if kept is None:
                raise InputTooLongError(
                    f"{label}: its images and videos need more than max_length={self.max_length} "
                    "tokens; lower the pixel budget or raise max_length"
                )
            encoded.append(EncodedInput(kept, m.images, m.videos))
        return encoded

    def forward(self, batch: Sequence[EncodedInput]) -> np.ndarray:
        """Device stage: embed one batch in a single forward pass; float32 unit vectors (len(batch), dim)."""
        return self.launch(batch).cpu().numpy().astype(np.float32, copy=False)

    def launch(self, batch: Sequence[EncodedInput]) -> torch.Tensor:
        """Start embedding one batch; returns the unit vectors as a device tensor without waiting."""
        hidden = self.backbone.last_hidden_state(batch, padding_side="right")
        # Right padding: each item's last prompt token sits at its own length - 1.
        last = torch.tensor([len(e.input_ids) - 1 for e in batch], device=hidden.device)
        pooled = hidden[torch.arange(len(batch), device=hidden.device), last].float()
        # Truncating before normalising equals normalise -> truncate -> renormalise (Matryoshka).
        return F.normalize(pooled[:, : self.dim], p=2, dim=-1)
