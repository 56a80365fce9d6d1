"""Loading a Qwen3-VL checkpoint and running its inner model on padded batches.

The reranker and the embedder differ only in their prompt, their padding side and what they read
off the final hidden states; everything else (loading, vision preprocessing, truncation, collation,
M-RoPE positions, the forward pass) lives here once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from core.errors import MMSearchError, ModelLoadError
from core.media import MediaPolicy
from core.qwen_vl import QWEN3_VL_MODEL_TYPES
from core.qwen_vl.attention import use_varlen_vision_attention, varlen_available
from core.qwen_vl.budget import VisionBudget
from core.qwen_vl.feature_cache import VisionFeatureCache, VisionFeatures
from core.qwen_vl.markers import IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START
from core.qwen_vl.truncation import truncate_ids
from core.qwen_vl.vision import VisionInput, VisionPreprocessor
from core.threads import TOKENIZER_LOCK

logger = logging.getLogger(__name__)

# A run of one vision pad. The pads are added special tokens, which the tokenizer splits out before
# anything else, so tokenizing the text between runs and splicing the runs back in as ids gives the
# same ids as tokenizing the whole prompt, at a fraction of the cost for a 1,280-token page.
_PAD_RUN = re.compile(f"(?:{re.escape(IMAGE_PAD)})+|(?:{re.escape(VIDEO_PAD)})+")


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
        model_name_or_path: hub id or local folder loadable by ``from_pretrained``, or a local LoRA
            adapter folder (``adapter_config.json``), which is merged into the base model it names.
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

    # Which command-line option names the model depends on the command: the CLI adds its own hint.
    hint = f"Give a hub id you can reach or a local folder ({setting})."
    # A LoRA adapter folder (adapter_config.json) loads its base model and is merged into it, so
    # the forward pass costs the same as the base model's.
    base = _adapter_base(model_name_or_path)
    adapter = model_name_or_path if base else None
    source = base or model_name_or_path
    try:
        config = AutoConfig.from_pretrained(source)
        model_type = getattr(config, "model_type", None)
        if model_type not in QWEN3_VL_MODEL_TYPES:
            raise ModelLoadError(
                f"cannot load {role} {model_name_or_path!r}: it is a {model_type!r} checkpoint, "
                "not Qwen3-VL (model_type 'qwen3_vl')"
            )
        if validate is not None:
            validate(config)
        processor = AutoProcessor.from_pretrained(source)
        model = Qwen3VLForConditionalGeneration.from_pretrained(
            source, dtype=dtype, attn_implementation=attn_implementation
        )
        if adapter is not None:
            model = _merge_adapter(model, adapter, role)
    except MMSearchError:
        raise  # already says what is wrong (including a validate() refusal)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load {role} {model_name_or_path!r}: {exc}\n{hint}") from exc
    return processor, model


def _adapter_base(model_name_or_path: str) -> str | None:
    """The base model a local LoRA adapter folder names, or None when the folder is a full checkpoint."""
    config = Path(model_name_or_path) / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read the adapter config {config}: {exc}") from exc
    if not base:
        raise ModelLoadError(f"{config} names no base_model_name_or_path; merge the adapter or add it")
    return str(base)


def _merge_adapter(model: Any, adapter: str, role: str) -> Any:
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelLoadError(
            f"{role} {adapter!r} is a LoRA adapter: loading it needs the `peft` package (pip install peft), "
            "or give a merged checkpoint"
        ) from exc
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    logger.info("merged the LoRA adapter %s into its base model", adapter)
    return merged


class Qwen3VLBackbone:
    """Tokenizer, vision preprocessing and the inner ``Qwen3VLModel`` of one checkpoint.

    Args:
        processor: the checkpoint's processor (tokenizer, image and video processors).
        model: the inner ``Qwen3VLModel`` (``full.model``); the LM head is never run.
        device: where the model runs; it is moved there.
        dtype: dtype of the pixel values fed to the vision tower (the model's dtype).
        budget: pixel budgets and video sampling.
        media_policy: size, pixel and source limits for loading media.
        feature_cache: keeps the vision tower's output per image across calls (exact; see
            :mod:`core.qwen_vl.feature_cache`); None computes it every time.
        compile: ``torch.compile`` the language model's decoder layers and the vision blocks' MLPs,
            which fuses their element-wise work (norms, rotary embeddings, activations). Shapes are
            compiled as dynamic, so new batch sizes and lengths do not recompile.
        vision_varlen: run the vision attention as one packed flash-attention call per layer
            (:mod:`core.qwen_vl.attention`); needs CUDA and fp16/bf16, else SDPA is kept. Pays only
            together with ``compile`` (bench/RESULTS.md).
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
        feature_cache: VisionFeatureCache | None = None,
        compile: bool = False,
        vision_varlen: bool = False,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.tokenizer = processor.tokenizer
        self.model = model.to(device).eval()
        self.feature_cache = feature_cache
        self.vision_varlen = vision_varlen and varlen_available(device, dtype)
        if vision_varlen and not self.vision_varlen:
            logger.warning("varlen vision attention needs CUDA with fp16/bf16 and torch >= 2.9; using SDPA")
        if self.vision_varlen:
            use_varlen_vision_attention(self.model)
        if compile:
            for layer in self.model.language_model.layers:
                layer.compile(dynamic=True)
            for block in self.model.visual.blocks:
                # SDPA walks the images in a Python loop that would recompile for every new number of
                # images; only the varlen path lets the whole block compile.
                (block if self.vision_varlen else block.mlp).compile(dynamic=True)
        self.vision = VisionPreprocessor(
            processor,
            budget,
            media_policy,
            hash_images=feature_cache is not None,
            is_cached=feature_cache.contains if feature_cache is not None else None,
        )
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
        texts: list[str] = []
        plans: list[list[str | tuple[int, int]]] = []
        for prompt in prompts:
            plan: list[str | tuple[int, int]] = []
            start = 0
            for run in _PAD_RUN.finditer(prompt):
                plan.append(prompt[start : run.start()])
                marker = IMAGE_PAD if run.group().startswith(IMAGE_PAD) else VIDEO_PAD
                pad = self.image_token_id if marker == IMAGE_PAD else self.video_token_id
                plan.append((pad, len(run.group()) // len(marker)))
                start = run.end()
            plan.append(prompt[start:])
            texts.extend(p for p in plan if isinstance(p, str) and p)
            plans.append(plan)
        with TOKENIZER_LOCK:
            encoded = iter(self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
        out = []
        for plan in plans:
            ids: list[int] = []
            for part in plan:
                if isinstance(part, tuple):
                    ids.extend([part[0]] * part[1])
                elif part:
                    ids.extend(next(encoded))
            out.append(ids)
        return out

    def truncate(self, ids: Sequence[int], max_length: int) -> list[int] | None:
        """See :func:`core.qwen_vl.truncation.truncate_ids`; special and vision tokens are protected."""
        return truncate_ids(ids, max_length, self.protected)

    def collate(
        self, items: Sequence[EncodedInput], *, padding_side: Literal["left", "right"]
    ) -> dict[str, torch.Tensor]:
        """Pad a batch on one side into ids, mask and token types (CPU tensors)."""
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
        return {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": types}

    def vision_features(self, inputs: Sequence[VisionInput]) -> list[VisionFeatures]:
        """The vision tower's output for each image or video, from the cache where it holds them.

        Everything not cached runs through the tower in one call. Pixels travel to the device as
        uint8 and are normalised and cut into patches there.
        """
        found: list[VisionFeatures | None] = [None] * len(inputs)
        cache = self.feature_cache
        if cache is not None:
            for i, item in enumerate(inputs):
                if item.key is not None:
                    found[i] = cache.get(item.key)
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            patches = torch.cat([self._patches(inputs[i]) for i in missing])
            grids = [inputs[i].grid_thw for i in missing]
            grid = torch.tensor(grids, dtype=torch.long).to(self.device, non_blocking=True)
            merged, deepstack = _tower_output(self.model.visual(patches, grid_thw=grid))
            # Sizes from the host copy of the grids: reading the device tensor would wait for the GPU.
            sizes = [t * h * w // self.vision.merge_size**2 for t, h, w in grids]
            per_item = zip(merged.split(sizes), *(level.split(sizes) for level in deepstack), strict=True)
            for i, (embeds, *levels) in zip(missing, per_item, strict=True):
                found[i] = VisionFeatures(embeds, tuple(levels))
                if cache is not None and inputs[i].key is not None:
                    cache.put(inputs[i].key, found[i])
        return found  # type: ignore[return-value]

    def _patches(self, item: VisionInput) -> torch.Tensor:
        layout = self.vision.video_layout if VIDEO_PAD in item.placeholder else self.vision.layout
        frames = item.pixels().to(self.device, non_blocking=True)
        return layout.patchify(frames, dtype=self.dtype)

    @torch.inference_mode()
    def last_hidden_state(
        self, items: Sequence[EncodedInput], *, padding_side: Literal["left", "right"]
    ) -> torch.Tensor:
        """One forward pass over a padded batch; returns the final hidden states (batch, width, hidden).

        M-RoPE positions are computed here from the token types and the attention mask, so padding on
        either side leaves every sequence's positions exactly as if it ran alone. The vision features
        are placed into the token embeddings here too (what ``Qwen3VLModel.forward`` does), so cached
        features can stand in for the vision tower.
        """
        inputs = self.collate(items, padding_side=padding_side)
        images = [v for item in items for v in item.images]
        videos = [v for item in items for v in item.videos]
        grids = {
            name: torch.tensor([v.grid_thw for v in group], dtype=torch.long)
            for name, group in (("image_grid_thw", images), ("video_grid_thw", videos))
            if group
        }
        # On CPU tensors: the index walks each row in Python, and on the GPU every step would sync.
        position_ids, _ = self.model.get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=grids.get("image_grid_thw"),
            video_grid_thw=grids.get("video_grid_thw"),
            attention_mask=inputs["attention_mask"],
        )
        position_ids = position_ids.to(self.device, non_blocking=True)
        ids = inputs["input_ids"].to(self.device, non_blocking=True)
        attention_mask = inputs["attention_mask"].to(self.device, non_blocking=True)
        embeds = self.model.get_input_embeddings()(ids)
        features = self.vision_features(images + videos)
        image_feats, video_feats = features[: len(images)], features[len(images) :]
        # Masks are built on the host ids: nothing here makes the CPU wait for the GPU, so the next
        # batch's preprocessing can run while this one computes.
        host_ids = inputs["input_ids"]
        image_mask, video_mask = host_ids == self.image_token_id, host_ids == self.video_token_id
        visual_mask = image_mask | video_mask
        deepstack = None
        if features:
            flat = embeds.view(-1, embeds.shape[-1])
            for mask, feats in ((image_mask, image_feats), (video_mask, video_feats)):
                rows = mask.view(-1).nonzero().squeeze(1)
                flat[rows.to(self.device, non_blocking=True)] = _stack(
                    [f.embeds for f in feats], embeds, len(rows)
                )
            # Deepstack features follow the visual positions in row-major order, images and videos mixed.
            in_visual = (
                image_mask[visual_mask].nonzero().squeeze(1),
                video_mask[visual_mask].nonzero().squeeze(1),
            )
            deepstack = []
            for level in range(len(features[0].deepstack)):
                joint = embeds.new_empty(int(visual_mask.sum()), embeds.shape[-1])
                for rows, feats in zip(in_visual, (image_feats, video_feats), strict=True):
                    if feats:
                        joint[rows.to(self.device, non_blocking=True)] = _stack(
                            [f.deepstack[level] for f in feats], embeds, len(rows)
                        )
                deepstack.append(joint)
        out = self.model.language_model(
            input_ids=None,
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            visual_pos_masks=visual_mask.to(self.device, non_blocking=True) if features else None,
            deepstack_visual_embeds=deepstack,
            use_cache=False,
        )
        return out.last_hidden_state


def _tower_output(output: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(merged tokens, deepstack features) of the vision tower: a model output, or an older tuple."""
    if isinstance(output, tuple):
        return output[0], list(output[1])
    return output.pooler_output, list(output.deepstack_features)


def _stack(parts: list[torch.Tensor], embeds: torch.Tensor, count: int) -> torch.Tensor:
    if not parts:
        if count:
            raise ValueError(f"{count} vision pad tokens but no image or video to fill them")
        return embeds.new_zeros(0, embeds.shape[-1])
    stacked = torch.cat(parts).to(embeds.dtype)
    if stacked.shape[0] != count:
        raise ValueError(f"{count} vision pad tokens but {stacked.shape[0]} vision features")
    return stacked
