"""Device, dtype and attention-kernel choice, decided in one place.

cuda -> bf16 (fp16 where the GPU has no bf16), cpu -> fp32. torch is imported lazily so that
importing :mod:`core` stays cheap for the UI.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from core.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: the one asked for, else cuda when available, else cpu."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} was asked for but CUDA is not available here")
    return resolved


def resolve_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """Return the compute dtype: the one asked for, else bf16/fp16 on cuda and fp32 elsewhere."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    name = _DTYPES.get(str(dtype).lower())
    if name is None:
        raise InvalidInputError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(set(_DTYPES)))}")
    return getattr(torch, name)


def attention_implementation(device: torch.device, dtype: torch.dtype, requested: str | None = None) -> str:
    """Pick the attention kernel: flash-attention 2 on a GPU with half precision when installed, else SDPA."""
    if requested and requested != "auto":
        return requested
    import torch

    half = dtype in (torch.float16, torch.bfloat16)
    if device.type == "cuda" and half and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"
