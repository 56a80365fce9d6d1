"""What a query or a document is: any mix of texts, images and videos.

The same shape is accepted by the Python API and (later) the REST API: a plain string, or a mapping
with any of ``text``, ``image`` and ``video``. Media stay as *sources* here (a path, URL, bytes, data
URI or PIL image); :mod:`core.media` turns them into pixels, so parsing never touches the disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from core.errors import ContentTypeError, EmptyVideoError, InvalidInputError


@dataclass(frozen=True)
class StoredImage:
    """An image file of the media store, named with a stable identity; nothing is read until needed.

    ``identity`` changes whenever the file does (the retriever uses unit id, file size and
    ``mtime_ns``), so it can stand for the pixels: the vision-feature cache is keyed by it (with the
    target size and budget) and a cached page is neither hashed nor decoded. It is a trusted,
    server-side source (hydration builds it; JSON input never can): reading it ignores
    ``MediaPolicy.allow_local_files``, while the pixel limit still applies.
    """

    path: str
    identity: str

    def __fspath__(self) -> str:
        return self.path


ImageSource = str | os.PathLike | bytes | Image.Image | StoredImage
# A video is one file-like source, or the frames of a clip in time order.
VideoSource = str | os.PathLike | bytes | tuple[ImageSource, ...]

CONTENT_KEYS = ("text", "image", "video")


@dataclass(frozen=True)
class Content:
    """One side of a (query, document) pair. Order inside the prompt is videos, images, texts."""

    texts: tuple[str, ...] = ()
    images: tuple[ImageSource, ...] = ()
    videos: tuple[VideoSource, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.texts or self.images or self.videos)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The kinds present, e.g. ``("image", "text")``."""
        kinds = (("video", self.videos), ("image", self.images), ("text", self.texts))
        return tuple(name for name, items in kinds if items)


def _is_image_source(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike, bytes, bytearray, Image.Image, StoredImage))


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _parse_texts(value: Any, where: str) -> tuple[str, ...]:
    texts = _as_list(value)
    for text in texts:
        if not isinstance(text, str):
            raise InvalidInputError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    return tuple(t for t in texts if t != "")


def _parse_images(value: Any, where: str) -> tuple[ImageSource, ...]:
    images = _as_list(value)
    for i, image in enumerate(images):
        if not _is_image_source(image):
            raise InvalidInputError(
                f"{where}: image {i} must be a path, URL, data URI, bytes or PIL image, "
                f"got {type(image).__name__}"
            )
    return tuple(bytes(x) if isinstance(x, bytearray) else x for x in images)


def _parse_video(value: Any, where: str) -> VideoSource:
    if isinstance(value, (str, os.PathLike, bytes, bytearray)):
        return bytes(value) if isinstance(value, bytearray) else value
    if isinstance(value, Sequence):
        if len(value) == 0:
            raise EmptyVideoError(f"{where}: video given as a list of frames has no frames")
        return _parse_images(list(value), f"{where}: video frame")
    raise InvalidInputError(
        f"{where}: 'video' must be a path, URL, bytes or a list of frames, got {type(value).__name__}"
    )


def parse_content(value: Any, *, where: str = "input") -> Content:
    """Turn user input into :class:`Content`.

    Args:
        value: a string (text), a PIL image, a :class:`Content`, or a mapping with any of
            ``text`` (str or list of str), ``image`` (one source or a list) and ``video`` (one
            source, or a list of frames).
        where: how to name this input in error messages, e.g. ``"document 3"``.

    Raises:
        ContentTypeError: a mapping key other than text/image/video.
        InvalidInputError: a value of the wrong type.
        EmptyVideoError: a video given as an empty list of frames.
    """
    if isinstance(value, Content):
        return value
    if isinstance(value, str):
        return Content(texts=(value,) if value else ())
    if isinstance(value, Image.Image):
        return Content(images=(value,))
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in CONTENT_KEYS]
        if unknown:
            raise ContentTypeError(
                f"{where}: unknown content type {unknown[0]!r}; use any of {', '.join(CONTENT_KEYS)}"
            )
        texts = _parse_texts(value["text"], where) if value.get("text") is not None else ()
        images = _parse_images(value["image"], where) if value.get("image") is not None else ()
        videos = (_parse_video(value["video"], where),) if value.get("video") is not None else ()
        return Content(texts=texts, images=images, videos=videos)
    if isinstance(value, (bytes, bytearray, os.PathLike)):
        raise ContentTypeError(
            f"{where}: a bare {type(value).__name__} is ambiguous; pass {{'image': ...}} or {{'video': ...}}"
        )
    raise InvalidInputError(
        f"{where}: expected a string or a mapping with text/image/video, got {type(value).__name__}"
    )
