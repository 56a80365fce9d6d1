"""Shared kernel of mmsearch: content types, safe media loading, settings, device choice.

Importing this package is cheap: it pulls in neither torch nor any model code.
"""

from __future__ import annotations

from core.content import Content, parse_content
from core.errors import (
    ContentTypeError,
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
    EmptyVideoError,
    EncryptedDocumentError,
    InputTooLongError,
    InvalidInputError,
    MediaDecodeError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    MMSearchError,
    ModelLoadError,
    RemoteMediaError,
    SchemaMismatchError,
    StoreError,
    StoreLockedError,
    UnsupportedFormatError,
)

__all__ = [
    "Content",
    "ContentTypeError",
    "CorruptDocumentError",
    "DocumentError",
    "EmptyDocumentError",
    "EmptyVideoError",
    "EncryptedDocumentError",
    "InputTooLongError",
    "InvalidInputError",
    "MMSearchError",
    "MediaDecodeError",
    "MediaError",
    "MediaNotFoundError",
    "MediaTooLargeError",
    "ModelLoadError",
    "RemoteMediaError",
    "SchemaMismatchError",
    "StoreError",
    "StoreLockedError",
    "UnsupportedFormatError",
    "parse_content",
]
