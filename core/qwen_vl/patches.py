"""Pixels to vision-tower patches, on whatever device the pixels are on.

The checkpoint's image and video processors do the same arithmetic on the CPU; doing it here lets
the backbone ship uint8 pixels to the GPU (a quarter of the bytes of float32 patches) and normalise
and rearrange them there, which takes the processor's ~100 ms per page off the CPU. The constants
(mean, std, rescale factor, patch sizes) are read from the checkpoint's processor, and a test holds
the output equal to the processor's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class PatchLayout:
    """How a checkpoint cuts pixels into patches and normalises them."""

    patch_size: int
    merge_size: int
    temporal_patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale_factor: float = 1 / 255
    do_rescale: bool = True
    do_normalize: bool = True

    @classmethod
    def from_processor(cls, image_processor: Any) -> PatchLayout:
        """Read the layout off a Qwen-VL image processor (fast or slow)."""
        p = image_processor
        return cls(
            patch_size=int(p.patch_size),
            merge_size=int(p.merge_size),
            temporal_patch_size=int(p.temporal_patch_size),
            mean=tuple(float(x) for x in p.image_mean),
            std=tuple(float(x) for x in p.image_std),
            rescale_factor=float(p.rescale_factor),
            do_rescale=bool(p.do_rescale),
            do_normalize=bool(p.do_normalize),
        )

    @property
    def factor(self) -> int:
        """Image sides must be multiples of this (one merged token covers factor x factor pixels)."""
        return self.patch_size * self.merge_size

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """``(t, h, w)`` in patches for frames of this size (an image is one frame)."""
        t = max(1, -(-num_frames // self.temporal_patch_size))
        return t, height // self.patch_size, width // self.patch_size

    def patchify(self, frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Normalise uint8 frames ``(T, H, W, 3)`` and lay them out as the vision tower reads them.

        An image is one frame; it is repeated to fill the temporal patch, as the processor does.
        Returns ``(t * h * w, 3 * temporal * patch * patch)`` in ``dtype``; arithmetic is in fp32.
        """
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3), got {tuple(frames.shape)}")
        tp, p, m = self.temporal_patch_size, self.patch_size, self.merge_size
        count, height, width, _ = frames.shape
        if height % self.factor or width % self.factor:
            raise ValueError(f"frame size {width}x{height} is not a multiple of {self.factor}")
        if count % tp:
            frames = torch.cat([frames, frames[-1:].expand(tp - count % tp, -1, -1, -1)])
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        if self.do_rescale and self.do_normalize:
            # The processor's fused form: (x - mean / r) / (std / r) with r the rescale factor.
            mean = torch.tensor(self.mean, device=x.device) / self.rescale_factor
            std = torch.tensor(self.std, device=x.device) / self.rescale_factor
            x = (x - mean[:, None, None]) / std[:, None, None]
        elif self.do_normalize:
            x = (x - torch.tensor(self.mean, device=x.device)[:, None, None]) / torch.tensor(
                self.std, device=x.device
            )[:, None, None]
        elif self.do_rescale:
            x = x * self.rescale_factor
        t, gh, gw = self.grid(x.shape[0], height, width)
        x = x.reshape(t, tp, 3, gh // m, m, p, gw // m, m, p)
        # -> (t, h/m, w/m, m, m, channel, temporal, p, p): merge groups contiguous, as the tower expects.
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(t * gh * gw, 3 * tp * p * p).to(dtype)
