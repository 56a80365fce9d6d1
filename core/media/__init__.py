"""Turn image and video *sources* into pixels, safely.

A source is a local path (``str`` or ``os.PathLike``), a ``file://`` URI, an ``http(s)://`` URL, a
``data:`` URI, raw ``bytes`` or, for images, a PIL image; a video may also be a list of frame sources.
Every byte count, pixel count and duration is checked against a :class:`MediaPolicy` *before* the
expensive work (reading, downloading, decoding) so hostile inputs fail fast with a typed error from
:mod:`core.errors`.

The package is split by concern: :mod:`core.media.sources` (policy and reading bytes),
:mod:`core.media.images` (decoding and resizing images) and :mod:`core.media.video` (sampling frames).
It stays light on purpose: PIL, numpy and the standard library only. PyAV is imported inside the
video functions so text-only users never load FFmpeg.
"""

from core.media.images import (
    MAX_ASPECT_RATIO,
    check_stored_image,
    load_image,
    resize_to_budget,
    smart_resize,
    stored_image_size,
)
from core.media.sources import DEFAULT_POLICY, MediaPolicy, describe_source, read_source_bytes
from core.media.video import FALLBACK_FPS, VideoFrames, load_video

__all__ = [
    "DEFAULT_POLICY",
    "FALLBACK_FPS",
    "MAX_ASPECT_RATIO",
    "MediaPolicy",
    "VideoFrames",
    "check_stored_image",
    "describe_source",
    "load_image",
    "load_video",
    "read_source_bytes",
    "resize_to_budget",
    "smart_resize",
    "stored_image_size",
]
