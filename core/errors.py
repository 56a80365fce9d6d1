"""Typed errors raised by library code.

Every message says what was wrong and, where it helps, what to do. The HTTP layer maps these
classes to status codes; nothing below it formats responses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class MMSearchError(Exception):
    """Base class of every error mmsearch raises on purpose."""

    def within(self, where: str) -> MMSearchError:
        """Return a copy of this error whose message is prefixed by ``where`` (e.g. "document 3").

        Lets a caller that knows which item failed name it without losing the error's type.
        """
        return type(self)(f"{where}: {self}")


@contextmanager
def located(where: str) -> Iterator[None]:
    """Re-raise any :class:`MMSearchError` from the block with ``where`` in front of its message."""
    try:
        yield
    except MMSearchError as exc:
        raise exc.within(where) from exc


class InvalidInputError(MMSearchError, ValueError):
    """The caller passed something of the wrong shape or type."""


class ContentTypeError(InvalidInputError):
    """A query or document holds a content kind we do not know (only text, image, video exist)."""


class InputTooLongError(InvalidInputError):
    """An input cannot fit the model's context even after truncating its text."""


class MediaError(MMSearchError):
    """An image or video could not be loaded."""


class MediaNotFoundError(MediaError, FileNotFoundError):
    """A referenced media file does not exist."""


class MediaDecodeError(MediaError):
    """The bytes are not a decodable image or video."""


class MediaTooLargeError(MediaError):
    """The media is over a size, pixel or duration limit."""


class RemoteMediaError(MediaError):
    """A URL was refused by policy or could not be fetched."""


class EmptyVideoError(MediaError):
    """A video yielded no frames."""


class ModelLoadError(MMSearchError):
    """A model checkpoint could not be loaded or is not the expected architecture."""


class UnknownModelError(MMSearchError):
    """A request names a model that is not loaded."""


class DocumentError(MMSearchError):
    """A document file cannot be indexed (the bulk run reports it and goes on with the next file)."""


class UnsupportedFormatError(DocumentError):
    """No loader knows this file type."""


class EncryptedDocumentError(DocumentError):
    """The document is password protected."""


class CorruptDocumentError(DocumentError):
    """The file is damaged or not what its extension says."""


class EmptyDocumentError(DocumentError):
    """The document holds nothing to index (no pages, no frames, no text)."""


class StoreError(MMSearchError):
    """The vector store cannot be used as asked."""


class StoreLockedError(StoreError):
    """Another process holds the embedded on-disk store."""


class SchemaMismatchError(StoreError):
    """An existing collection was built by another embedder or with other vector sizes."""


class LegacyStoreError(StoreError):
    """The data dir holds a store written by the old engine; ``mmsearch store migrate`` converts it."""


class IngestInterrupted(Exception):
    """Ingestion was stopped on purpose (the server is shutting down): nothing is rolled back, so the
    next run resumes where this one stopped. Not an :class:`MMSearchError`: no user input caused it."""
