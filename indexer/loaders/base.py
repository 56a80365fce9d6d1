"""One interface for every format: ``load(path, options)`` yields a document's units lazily.

Loaders are generators so that a 1,000-page PDF or an hour of video is never held in memory: each
unit is produced, embedded and written before the next one is read. A loader raises a
:class:`core.errors.DocumentError` subclass (encrypted, corrupt, empty) or a
:class:`core.errors.MediaError` when the file cannot be indexed; the bulk run records it per file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.media import DEFAULT_POLICY, MediaPolicy
from indexer.units import Unit

# Counts tokens of a text the way the embedder will: returns each token's (start, end) char span.
TokenSpans = Callable[[str], list[tuple[int, int]]]


@dataclass(frozen=True)
class LoadOptions:
    """How loaders read and size content. Defaults follow the reranker's pixel budgets.

    Attributes:
        image_min_pixels, image_max_pixels: pixel budget of a page render or an image.
        policy: byte, pixel and duration limits (core.media).
        segment_seconds: length of one video segment.
        keyframe_fps: keyframes sampled per second of video.
        max_frames_per_segment: hard cap on keyframes in one segment.
        frame_max_pixels: pixel budget of one keyframe.
        chunk_tokens: longest text chunk, in tokens.
        chunk_overlap: tokens shared by consecutive chunks.
        token_spans: tokenizer used to count tokens; None uses a word/punctuation approximation.
        ocr: ``auto`` (PDF pages without a usable text layer, images, video keyframes), ``always``
            (every page too) or ``off`` (see :mod:`indexer.ocr`, :mod:`indexer.loaders.video`).
        office_converter: the LibreOffice ``soffice`` program that turns office files into PDF
            pages; None: office files are indexed as text only.
        office_timeout_s: seconds one conversion may take before the converter is killed.
    """

    image_min_pixels: int = 4 * 32 * 32
    image_max_pixels: int = 1800 * 32 * 32
    policy: MediaPolicy = DEFAULT_POLICY
    segment_seconds: float = 10.0
    keyframe_fps: float = 1.0
    max_frames_per_segment: int = 8
    frame_max_pixels: int = 768 * 32 * 32
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    token_spans: TokenSpans | None = None
    ocr: str = "auto"
    office_converter: str | None = None
    office_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.segment_seconds <= 0 or self.keyframe_fps <= 0:
            raise ValueError("segment_seconds and keyframe_fps must be positive")
        if self.max_frames_per_segment < 1:
            raise ValueError("max_frames_per_segment must be at least 1")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ValueError("chunk_overlap must be at least 0 and below chunk_tokens")
        if self.ocr not in ("auto", "always", "off"):
            raise ValueError(f"ocr must be auto, always or off, not {self.ocr!r}")
        if self.office_timeout_s <= 0:
            raise ValueError("office_timeout_s must be positive")


# A loader: a generator function over one file's units.
Loader = Callable[[Path, LoadOptions], Iterator[Unit]]
