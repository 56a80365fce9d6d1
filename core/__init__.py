"""Shared kernel of mmsearch: content types, safe media loading, settings, device choice.

Importing this package is cheap: it pulls in neither torch nor any model code.
"""

from __future__ import annotations

from core.content import Content, parse_content
from core.errors import (
    ContentTypeError,
    EmptyVideoError,
    InputTooLongError,
    InvalidInputError,
    MediaDecodeError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    MMSearchError,
    ModelLoadError,
    RemoteMediaError,
)

__all__ = [
    "Content",
    "ContentTypeError",
    "EmptyVideoError",
    "InputTooLongError",
    "InvalidInputError",
    "MMSearchError",
    "MediaDecodeError",
    "MediaError",
    "MediaNotFoundError",
    "MediaTooLargeError",
    "ModelLoadError",
    "RemoteMediaError",
    "parse_content",
]
