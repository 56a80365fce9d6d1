"""Pixel budgets and video sampling of the Qwen3-VL models (torch-free, so settings can build it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings


@dataclass(frozen=True)
class VisionBudget:
    """How many pixels an image or video may spend.

    The defaults are those of the released Qwen3-VL reranker and embedder, which share them.
    """

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

    @classmethod
    def from_settings(cls, settings: Settings) -> VisionBudget:
        """The budget a :class:`core.settings.Settings` describes (shared by reranker and embedder)."""
        return cls(
            image_min_pixels=settings.image_min_pixels,
            image_max_pixels=settings.image_max_pixels,
            video_fps=settings.video_fps,
            video_max_frames=settings.video_max_frames,
            video_min_pixels=settings.video_min_pixels,
            video_max_pixels=settings.video_max_pixels,
            video_total_pixels=settings.video_total_pixels,
        )
