"""A deliberately plain reference scorer for the Qwen3-VL reranker, written from the published facts.

One pair per forward pass, the full LM head, sigmoid(logit_yes - logit_no); images preprocessed by
the official ``qwen_vl_utils.fetch_image``; prompt rendered from the published format with an f-string.
Nothing here is imported from ``reranker`` so the two cannot share a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
IMAGE_MIN, IMAGE_MAX = 4 * 32 * 32, 1800 * 32 * 32


@dataclass
class Side:
    """One side of a pair for the reference: at most one video (frames + times), images, text."""

    text: str | None = None
    images: list[Any] = field(default_factory=list)
    video: list[Image.Image] | None = None
    video_fps: float = 1.0
    video_indices: list[int] | None = None


def render(query: Side, document: Side, instruction: str = INSTRUCTION) -> str:
    def side(s: Side) -> str:
        # transformers 5 expands a bare <|video_pad|> into "<t seconds><|vision_start|>...<|vision_end|>"
        # per step, which is what the released processor made of the template's
        # "<|vision_start|><|video_pad|><|vision_end|>".
        out = "<|video_pad|>" if s.video is not None else ""
        out += "<|vision_start|><|image_pad|><|vision_end|>" * len(s.images)
        out += s.text or ""
        return out or "NULL"

    return (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n<Instruct>: {instruction}"
        f"<Query>:{side(query)}\n<Document>:{side(document)}<|im_end|>\n<|im_start|>assistant\n"
    )


class ReferenceScorer:
    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.model = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
        tok = self.processor.tokenizer
        self.yes, self.no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")

    @torch.no_grad()
    def score(self, query: Side, document: Side, instruction: str = INSTRUCTION) -> float:
        from qwen_vl_utils.vision_process import fetch_image
        from transformers.video_utils import VideoMetadata

        images = [
            fetch_image({"image": str(im) if isinstance(im, Path) else im,
                         "min_pixels": IMAGE_MIN, "max_pixels": IMAGE_MAX}, image_patch_size=16)
            for s in (query, document) for im in s.images
        ]  # fmt: skip
        videos, metadata = [], []
        for s in (query, document):
            if s.video is not None:
                videos.append(np.stack([np.asarray(f.convert("RGB")) for f in s.video]))
                indices = s.video_indices or list(range(len(s.video)))
                metadata.append(VideoMetadata(total_num_frames=max(indices) + 1, fps=s.video_fps,
                                              frames_indices=indices))  # fmt: skip
        kwargs: dict[str, Any] = {"do_resize": False, "return_tensors": "pt"}
        if videos:
            kwargs.update(videos=videos, video_metadata=metadata, do_sample_frames=False)
        inputs = self.processor(text=[render(query, document, instruction)], images=images or None, **kwargs)
        logits = self.model(**inputs).logits[0, -1]
        return torch.sigmoid(logits[self.yes] - logits[self.no]).item()
