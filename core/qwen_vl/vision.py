"""Turn content into what a Qwen3-VL model reads: pixel patches, grids and prompt placeholders.

Images are resized to the pixel budget with :func:`core.media.resize_to_budget` (the rule of the
released preprocessing) and kept as uint8 pixels; :mod:`core.qwen_vl.patches` normalises them and
cuts them into patches on the model's device, with the constants of the checkpoint's processor. The
reranker and the embedder both go through this one class, so documents and queries are preprocessed
identically.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.content import Content, StoredImage
from core.errors import MediaDecodeError, located
from core.media import (
    MediaPolicy,
    describe_source,
    load_image,
    load_video,
    resize_to_budget,
    smart_resize,
    stored_image_size,
)
from core.qwen_vl.budget import VisionBudget
from core.qwen_vl.markers import image_placeholder, video_placeholder
from core.qwen_vl.patches import PatchLayout


@dataclass(frozen=True)
class VisionInput:
    """One image or video, sized to its budget: uint8 pixels, patch grid and expanded placeholder.

    ``key`` (set when the preprocessor hashes) names the pixels for the vision-feature cache: a
    content hash of the pixels, so equal pictures share cached features whatever their source, or
    for a :class:`core.content.StoredImage` its identity, target size and budget, which costs
    nothing. ``frames`` is None when the features were cached at preprocessing time: ``loader``
    decodes the pixels should they be needed after all (the entry was evicted meanwhile).
    """

    frames: torch.Tensor | None  # uint8 (frames, height, width, 3); an image is one frame
    grid_thw: tuple[int, int, int]
    placeholder: str
    key: str | None = None
    loader: Callable[[], torch.Tensor] | None = None

    def pixels(self) -> torch.Tensor:
        """The uint8 frames, decoded now if they were left lazy."""
        if self.frames is not None:
            return self.frames
        if self.loader is None:
            raise ValueError("a vision input with neither frames nor a loader")
        return self.loader()


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
    """Loads media safely and sizes them to the budget; patches are cut later, on the model's device.

    Args:
        processor: the checkpoint's processor; only its patch layout and normalisation are read.
        budget: pixel budgets and video sampling.
        policy: size, pixel and source limits for loading media.
        hash_images: give every image a cache key (for a vision-feature cache): a content hash of
            its pixels, or the identity of a :class:`core.content.StoredImage`.
        is_cached: whether the feature cache holds a key now (no side effect); a stored image whose
            key it holds is not decoded at all.
        workers: threads that load media in parallel (decoding, resizing and hashing drop the GIL);
            None picks up to 8 by CPU count.
    """

    def __init__(
        self,
        processor: Any,
        budget: VisionBudget,
        policy: MediaPolicy,
        *,
        hash_images: bool = False,
        is_cached: Callable[[str], bool] | None = None,
        workers: int | None = None,
    ) -> None:
        self.layout = PatchLayout.from_processor(processor.image_processor)
        video = PatchLayout.from_processor(processor.video_processor)
        if (video.patch_size, video.merge_size) != (self.layout.patch_size, self.layout.merge_size):
            raise ValueError("the image and video processors disagree on the patch layout")
        self.video_layout = video
        self.budget = budget
        self.policy = policy
        self.hash_images = hash_images
        self.is_cached = is_cached
        self.merge_size = self.layout.merge_size
        self.factor = self.layout.factor
        self.temporal_patch = video.temporal_patch_size
        self.workers = workers if workers is not None else min(8, os.cpu_count() or 1)

    def prepare_all(self, contents: Sequence[Content], labels: Sequence[str]) -> list[PreparedMedia]:
        """:meth:`prepare` every content, in parallel threads; an error names its item's label."""

        def one(i: int) -> PreparedMedia:
            with located(labels[i]):
                return self.prepare(contents[i])

        with_media = [i for i, c in enumerate(contents) if c.images or c.videos]
        if self.workers <= 1 or len(with_media) < 2:
            return [one(i) for i in range(len(contents))]
        out = [PreparedMedia()] * len(contents)
        with ThreadPoolExecutor(
            min(self.workers, len(with_media)), thread_name_prefix="mmsearch-media"
        ) as pool:
            # map() re-raises the first failure in input order, so the error is deterministic.
            for i, media in zip(with_media, pool.map(one, with_media), strict=True):
                out[i] = media
        return out

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
        if isinstance(source, StoredImage) and self.hash_images:
            return self._stored_image(source)
        pixels = self._image_pixels(source)
        grid = self.layout.grid(1, pixels.shape[0], pixels.shape[1])
        tokens = grid[0] * grid[1] * grid[2] // self.merge_size**2
        key = _content_key(pixels) if self.hash_images else None
        return VisionInput(torch.from_numpy(pixels)[None], grid, image_placeholder(tokens), key)

    def _image_pixels(self, source: Any) -> np.ndarray:
        picture = load_image(source, policy=self.policy)
        picture = resize_to_budget(
            picture,
            min_pixels=self.budget.image_min_pixels,
            max_pixels=self.budget.image_max_pixels,
            factor=self.factor,
        )
        return np.array(picture.convert("RGB"))  # a writable copy that torch can share

    def _stored_image(self, source: StoredImage) -> VisionInput:
        """A stored image sized from its header and keyed by its identity: no pixel is hashed, and
        none is decoded when the cache already holds its features."""
        width, height = stored_image_size(source, policy=self.policy)
        b = self.budget
        target = smart_resize(
            height, width, factor=self.factor, min_pixels=b.image_min_pixels, max_pixels=b.image_max_pixels
        )
        grid = self.layout.grid(1, target[0], target[1])
        tokens = grid[0] * grid[1] * grid[2] // self.merge_size**2
        key = (
            f"stored:{source.path}|{source.identity}|{target[0]}x{target[1]}"
            f"|{b.image_min_pixels}-{b.image_max_pixels}/{self.factor}"
        )

        def decode() -> torch.Tensor:
            pixels = self._image_pixels(source)
            if pixels.shape[:2] != target:
                # The file changed between reading its header and its pixels: the placeholder would lie.
                raise MediaDecodeError(
                    f"{describe_source(source)}: the image changed while it was read "
                    f"({pixels.shape[1]}x{pixels.shape[0]}, expected {target[1]}x{target[0]})"
                )
            return torch.from_numpy(pixels)[None]

        if self.is_cached is not None and self.is_cached(key):
            return VisionInput(None, grid, image_placeholder(tokens), key, decode)
        # A miss is decoded here, in the parallel preprocessing, so a broken file fails like any other.
        return VisionInput(decode(), grid, image_placeholder(tokens), key)

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
        grid = self.video_layout.grid(len(array), height, width)
        # One timestamp per temporal step: the mean time of the frames merged into it.
        steps = [
            sum(stamps[i : i + self.temporal_patch]) / self.temporal_patch
            for i in range(0, len(stamps), self.temporal_patch)
        ]
        per_step = grid[1] * grid[2] // self.merge_size**2
        return VisionInput(torch.from_numpy(array), grid, video_placeholder(steps, per_step))

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


def _content_key(pixels: np.ndarray) -> str:
    # Shape first, so two pictures with the same bytes in another shape never collide.
    # sha256 runs on the CPU's SHA instructions: about twice blake2b's speed on x86 servers.
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(memoryview(pixels).cast("B"))  # hashlib drops the GIL here: threads hash in parallel
    return digest.hexdigest()
