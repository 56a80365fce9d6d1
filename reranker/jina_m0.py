"""jina-reranker-m0: a Qwen2-VL backbone whose language-model head is replaced by a small MLP.

Scored as its publisher describes (the checkpoint's ``modeling.py``), with our own code and no remote
code: the prompt is plain text with the document before the query,
``**Document**:\\n{doc}\\n**Query**:\\n{query}`` (a picture is
``<|vision_start|><|image_pad|><|vision_end|>``); token id 100 is appended to every
sequence after left padding; the final hidden state (after the last norm) at that position goes
through ``Linear(H, H) -> ReLU -> Linear(H, 1)``, and the score is ``sigmoid(x - 2.65)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.content import Content, parse_content
from core.device import attention_implementation, resolve_device, resolve_dtype
from core.errors import ContentTypeError, InvalidInputError, MMSearchError, ModelLoadError, located
from core.media import DEFAULT_POLICY, MediaPolicy, load_image
from core.qwen_vl.batching import plan_batches
from core.settings import Settings
from reranker.base import Reranker

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "jinaai/jina-reranker-m0"
LOGIT_BIAS = 2.65
SCORE_TOKEN_ID = 100
MIN_PIXELS, MAX_PIXELS = 3136, 602112
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
LICENSE_NOTICE = (
    "jina-reranker-m0's weights are licensed CC-BY-NC-4.0: non-commercial use only "
    "(https://huggingface.co/jinaai/jina-reranker-m0); commercial use needs a license from Jina AI"
)
_license_noted = False  # the notice is logged once per process, however many copies load


@dataclass(frozen=True)
class JinaPair:
    """One encoded pair: its prompt, its pictures in prompt order, and ids whose length is its cost."""

    input_ids: list[int]
    prompt: str
    images: tuple[Any, ...] = ()


class JinaM0Reranker(Reranker):
    """Scores (query, document) pairs with jina-reranker-m0 (text and images; no video).

    Args:
        model_name_or_path: hub id or local folder of the checkpoint.
        device, dtype, attn_implementation: as for :class:`reranker.qwen3_vl.Qwen3VLReranker`.
        max_length: token limit of one pair.
        max_query_length: tokens kept for the query side; a text document keeps the rest.
        batch_tokens: padded tokens per forward pass (pairs x longest pair).
        media_policy: size, pixel and source limits for loading media.
    """

    backend = "jina-m0"
    reads_video = False

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_MODEL,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        attn_implementation: str | None = None,
        max_length: int = 10240,
        max_query_length: int = 512,
        batch_tokens: int = 16384,
        media_policy: MediaPolicy = DEFAULT_POLICY,
    ) -> None:
        from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, dtype)
        self.model_name = model_name_or_path
        self.max_length, self.max_query_length, self.batch_tokens = max_length, max_query_length, batch_tokens
        self.media_policy = media_policy
        attn = attention_implementation(self.device, self.dtype, attn_implementation)
        try:
            # The budget as `size` (min_pixels/max_pixels are deprecated in processor calls).
            self.processor = AutoProcessor.from_pretrained(
                model_name_or_path, size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
            )
            with _HeadKeysExpected():
                full = Qwen2VLForConditionalGeneration.from_pretrained(
                    model_name_or_path, dtype=self.dtype, attn_implementation=attn
                )
            head = _score_head(model_name_or_path, full.config.text_config.hidden_size)
        except MMSearchError:
            raise
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load reranker {model_name_or_path!r}: {exc}\nGive a hub id you can reach or a local "
                "folder (MMSEARCH_RERANKER_MODEL)."
            ) from exc
        self.processor.tokenizer.padding_side = "left"
        self.model = full.model.to(self.device).eval()
        self.head = head.to(self.device, self.dtype).eval()
        del full  # the language-model head is never used
        logger.info(
            "loaded reranker %s (jina-reranker-m0) on %s (%s)", model_name_or_path, self.device, self.dtype
        )
        global _license_noted
        if not _license_noted:
            logger.warning(LICENSE_NOTICE)
            _license_noted = True

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> JinaM0Reranker:
        """Build from a :class:`core.settings.Settings`; keyword overrides win."""
        kwargs: dict[str, Any] = {
            "model_name_or_path": settings.reranker_model,
            **settings.model_options(),
            "max_length": settings.rerank_max_length,
            "batch_tokens": settings.rerank_batch_tokens,
            "media_policy": settings.media_policy(),
        }
        return cls(**{**kwargs, **overrides})

    def score(self, query: Any, documents: Sequence[Any], *, instruction: str | None = None) -> list[float]:
        """Scores in (0, 1), in input order. ``instruction`` becomes the publisher's optional prefix line.

        Raises:
            InvalidInputError: an empty query or a wrong type.
            ContentTypeError: a video (this model reads text and images only).
            MediaError: a picture that cannot be loaded; the message names the item.
        """
        if isinstance(documents, (str, bytes, Mapping, Content)) or not isinstance(documents, Sequence):
            raise InvalidInputError("documents must be a list of documents")
        query_content = parse_content(query, where="query")
        if query_content.is_empty:
            raise InvalidInputError("query is empty: give it text or an image")
        docs = [parse_content(d, where=f"document {i}") for i, d in enumerate(documents)]
        pairs = self.encode(query_content, docs, instruction=instruction)
        scores = [0.0] * len(pairs)
        for batch in plan_batches([len(p.input_ids) for p in pairs], self.batch_tokens):
            for i, value in zip(batch, self.forward([pairs[i] for i in batch]), strict=True):
                scores[i] = value
        return scores

    def encode(
        self, query: Content, documents: Sequence[Content], *, instruction: str | None = None
    ) -> list[JinaPair]:
        """CPU stage: load pictures and build each pair's prompt (the API's batcher calls this too)."""
        query_images, query_text = self._side(query, "query", self.max_query_length)
        pairs = []
        for i, doc in enumerate(documents):
            doc_images, doc_text = self._side(doc, f"document {i}", self.max_length - self.max_query_length)
            prompt = f"**Document**:\n{doc_text}\n**Query**:\n{query_text}"
            prompt = f"{instruction}\n{prompt}" if instruction else prompt
            images = tuple(doc_images + query_images)  # in prompt order: the document comes first
            pairs.append(JinaPair(self._length_ids(prompt, images), prompt, images))
        return pairs

    def forward(self, pairs: Sequence[JinaPair]) -> list[float]:
        """Device stage: score one batch of encoded pairs in a single forward pass."""
        return self._forward([p.prompt for p in pairs], [im for p in pairs for im in p.images])

    def _length_ids(self, prompt: str, images: tuple[Any, ...]) -> list[int]:
        # Stand-in ids of the right length (text tokens + each picture's merged tokens + the score
        # token), so token-budget batching sees what the forward pass will cost.
        text = self.processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        processor = self.processor.image_processor
        merge = int(getattr(processor, "merge_size", 2)) ** 2
        tokens = sum(processor.get_number_of_image_patches(im.height, im.width, {}) // merge for im in images)
        return text + [SCORE_TOKEN_ID] * (tokens - len(images) + 1)

    def _side(self, content: Content, where: str, max_tokens: int) -> tuple[list[Any], str]:
        if content.videos:
            raise ContentTypeError(f"{where}: jina-reranker-m0 reads text and images, not video")
        pictures = []
        for i, source in enumerate(content.images):
            with located(f"{where}: image {i}"):
                pictures.append(load_image(source, policy=self.media_policy))
        text = "".join(content.texts)
        ids = self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > max_tokens:  # the publisher cuts long text to its budget
            text = self.processor.tokenizer.decode(ids[:max_tokens])
        return pictures, IMAGE * len(pictures) + text

    @torch.inference_mode()
    def _forward(self, prompts: list[str], images: list[Any]) -> list[float]:
        batch = self.processor(text=prompts, images=images or None, padding=True, return_tensors="pt")
        rows = batch["input_ids"].shape[0]
        # The score is read at an extra token appended after the (left) padding.
        batch["input_ids"] = torch.cat([batch["input_ids"], torch.full((rows, 1), SCORE_TOKEN_ID)], dim=1)
        batch["attention_mask"] = torch.cat(
            [batch["attention_mask"], torch.ones((rows, 1), dtype=torch.long)], dim=1
        )
        if "mm_token_type_ids" in batch:
            types = batch["mm_token_type_ids"]
            batch["mm_token_type_ids"] = torch.cat([types, torch.zeros((rows, 1), dtype=types.dtype)], dim=1)
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        hidden = self.model(**inputs, use_cache=False).last_hidden_state[:, -1]
        logits = self.head(hidden).float().squeeze(-1)
        return torch.sigmoid(logits - LOGIT_BIAS).tolist()


class _HeadKeysExpected(logging.Filter):
    """Drops transformers' load report while it lists only the score head's keys as unexpected (we
    read those ourselves, in :func:`_score_head`); any other missing or unexpected key still shows."""

    def __enter__(self) -> None:
        logging.getLogger("transformers.modeling_utils").addFilter(self)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("transformers.modeling_utils").removeFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        rows = [line for line in message.splitlines() if "| UNEXPECTED" in line or "| MISSING" in line]
        return not rows or not all(row.startswith("score.") and "UNEXPECTED" in row for row in rows)


def _score_head(model_name_or_path: str, hidden: int) -> torch.nn.Sequential:
    """The MLP head read from the checkpoint: ``score.0``/``score.2`` (or ``score.dense``/``out_proj``)."""
    from safetensors import safe_open

    folder = Path(model_name_or_path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model_name_or_path, allow_patterns=["*.safetensors", "*.json"]))
    names = {"score.0.": "0.", "score.2.": "2.", "score.dense.": "0.", "score.out_proj.": "2."}
    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as weights:
            for key in weights.keys():  # noqa: SIM118 - safe_open has no __iter__
                for prefix, short in names.items():
                    if key.startswith(prefix):
                        state[short + key[len(prefix) :]] = weights.get_tensor(key)
    head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    missing = {"0.weight", "0.bias", "2.weight", "2.bias"} - set(state)
    if missing:
        raise ModelLoadError(
            f"{model_name_or_path}: no score head in the checkpoint (missing {sorted(missing)})"
        )
    head.load_state_dict(state)
    return head
