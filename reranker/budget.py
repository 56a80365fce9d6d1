"""Pixel budgets and video sampling of the reranker (torch-free, so settings can build it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VisionBudget:
    """How many pixels an image or video may spend; the defaults are the released reranker's."""

    image_min_pixels: int = 4 * 32 * 32
    image_max_pixels: int = 1800 * 32 * 32
    video_fps: float = 1.0
    video_max_frames: int = 64
    video_min_pixels: int = 128 * 32 * 32
    video_max_pixels: int = 768 * 32 * 32  # one frame
    video_total_pixels: int = 10 * 768 * 32 * 32  # all frames together

    def __post_init__(self) -> None:
        if self.image_min_pixels > self.image_max_pixels:
            raise ValueError("image_min_pixels must not exceed image_max_pixels")
        if self.video_min_pixels > self.video_max_pixels:
            raise ValueError("video_min_pixels must not exceed video_max_pixels")
        if self.video_fps <= 0 or self.video_max_frames < 2:
            raise ValueError("video_fps must be positive and video_max_frames at least 2")
