"""Turn content into what a Qwen3-VL model reads: pixel patches, grids and prompt placeholders.

Images are resized to the pixel budget with :func:`core.media.resize_to_budget` (the rule of the
released preprocessing) and handed to the checkpoint's own image/video processors with resizing
off, so normalisation and patch layout always match the checkpoint. The reranker and the embedder
both go through this one class, so documents and queries are preprocessed identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.content import Content
from core.errors import located
from core.media import MediaPolicy, load_image, load_video, resize_to_budget, smart_resize
from core.qwen_vl.budget import VisionBudget
from core.qwen_vl.markers import image_placeholder, video_placeholder


@dataclass(frozen=True)
class VisionInput:
    """One image or video, preprocessed: its patches, grid and expanded prompt placeholder."""

    pixel_values: torch.Tensor  # (patches, channels * temporal_patch * patch * patch)
    grid_thw: tuple[int, int, int]
    placeholder: str


@dataclass(frozen=True)
class PreparedMedia:
    """The media of one :class:`Content`, preprocessed, with their placeholders in prompt order."""

    videos: tuple[VisionInput, ...] = ()
    images: tuple[VisionInput, ...] = ()

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Expanded placeholders in the order the prompt holds them: videos, then images."""
        return tuple(v.placeholder for v in self.videos) + tuple(im.placeholder for im in self.images)


class VisionPreprocessor:
    """Loads media safely and converts them with the checkpoint's processors."""

    def __init__(self, processor: Any, budget: VisionBudget, policy: MediaPolicy) -> None:
        self.image_processor = processor.image_processor
        self.video_processor = processor.video_processor
        if getattr(self.video_processor, "cap_pixels_per_frame", False) is None:
            # We size frames ourselves (do_resize=False), so the cap never applies; choosing the
            # reference behaviour only silences transformers' warning about its coming default.
            self.video_processor.cap_pixels_per_frame = True
        self.budget = budget
        self.policy = policy
        self.merge_size = int(self.image_processor.merge_size)
        self.factor = int(self.image_processor.patch_size) * self.merge_size
        self.temporal_patch = int(self.video_processor.temporal_patch_size)

    def prepare(self, content: Content) -> PreparedMedia:
        """Load and preprocess every medium of ``content``; errors name the failing item."""
        videos, images = [], []
        for i, source in enumerate(content.videos):
            with located(f"video {i}"):
                videos.append(self.video(source))
        for i, source in enumerate(content.images):
            with located(f"image {i}"):
                images.append(self.image(source))
        return PreparedMedia(videos=tuple(videos), images=tuple(images))

    def image(self, source: Any) -> VisionInput:
        """Preprocess one image source."""
        picture = load_image(source, policy=self.policy)
        picture = resize_to_budget(
            picture,
            min_pixels=self.budget.image_min_pixels,
            max_pixels=self.budget.image_max_pixels,
            factor=self.factor,
        )
        out = self.image_processor(images=[picture], do_resize=False, return_tensors="pt")
        grid = tuple(int(x) for x in out["image_grid_thw"][0])
        tokens = grid[0] * grid[1] * grid[2] // self.merge_size**2
        return VisionInput(out["pixel_values"], grid, image_placeholder(tokens))

    def video(self, source: Any) -> VisionInput:
        """Preprocess one video (a file-like source or a list of frames)."""
        clip = load_video(
            source, fps=self.budget.video_fps, max_frames=self.budget.video_max_frames, policy=self.policy
        )
        frames, stamps = list(clip.frames), list(clip.timestamps)
        # The vision tower eats frames in temporal pairs: repeat the last frame to complete one.
        while len(frames) % self.temporal_patch:
            frames.append(frames[-1])
            stamps.append(stamps[-1])
        height, width = self._frame_size(frames[0], len(frames))
        array = np.stack([_resized(f, width, height) for f in frames])
        out = self.video_processor(
            videos=[array], do_resize=False, do_sample_frames=False, return_tensors="pt"
        )
        grid = tuple(int(x) for x in out["video_grid_thw"][0])
        # One timestamp per temporal step: the mean time of the frames merged into it.
        steps = [
            sum(stamps[i : i + self.temporal_patch]) / self.temporal_patch
            for i in range(0, len(stamps), self.temporal_patch)
        ]
        per_step = grid[1] * grid[2] // self.merge_size**2
        return VisionInput(out["pixel_values_videos"], grid, video_placeholder(steps, per_step))

    def _frame_size(self, frame: Image.Image, num_frames: int) -> tuple[int, int]:
        # A frame's budget shrinks as frames are added so the whole clip fits video_total_pixels.
        b = self.budget
        max_pixels = max(
            min(b.video_max_pixels, b.video_total_pixels / num_frames * self.temporal_patch),
            int(b.video_min_pixels * 1.05),
        )
        return smart_resize(
            frame.height,
            frame.width,
            factor=self.factor,
            min_pixels=b.video_min_pixels,
            max_pixels=max_pixels,
        )


def _resized(frame: Image.Image, width: int, height: int) -> np.ndarray:
    if frame.size != (width, height):
        frame = frame.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(frame.convert("RGB"))
