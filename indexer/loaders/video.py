"""Video loader: consecutive segments of a video, each with a few keyframes, decoded as a stream.

Frames are decoded one after the other and only the sampled ones are converted to images, so memory
holds one segment's keyframes at most, however long the video. Times come from each frame's
pts and time base, never from the declared frame rate (wrong for some streams, see
:func:`core.media.video.stream_fps`), and the video's end is where its last frame ends (an mkv's
declared duration also covers its audio).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from core.errors import (
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
    InvalidInputError,
    MediaTooLargeError,
)
from core.media import describe_source, resize_to_budget
from core.media.sources import MediaPolicy, check_pixels, local_file_size
from core.media.video import stream_duration, stream_fps
from indexer.loaders import subtitles
from indexer.loaders.base import LoadOptions
from indexer.units import VIDEO, Unit

logger = logging.getLogger(__name__)

EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")

# Tolerance on times computed in floating point (grid points, pts * time_base), in seconds.
_EPS = 1e-6


def _too_long(label: str, seconds: float, policy: MediaPolicy) -> MediaTooLargeError:
    return MediaTooLargeError(
        f"{label}: video is {seconds:.1f} s long; the limit is {policy.max_video_seconds:g} s"
    )


def _frames(container: Any, stream: Any, label: str, policy: MediaPolicy) -> Iterator[tuple[float, Any]]:
    """Yield ``(seconds from the video's start, frame)`` in decoding order, enforcing the limits."""
    import av

    decode_errors = (av.FFmpegError, OSError, ValueError, EOFError)
    origin = None
    if stream.start_time is not None and stream.time_base is not None:
        origin = float(stream.start_time * stream.time_base)
    step = 1.0 / stream_fps(stream)  # only for frames without a pts
    previous = None
    count = 0
    iterator = container.decode(stream)
    while True:
        try:
            frame = next(iterator, None)
        except decode_errors as exc:
            at = f" after {previous:.2f} s" if previous is not None else ""
            raise CorruptDocumentError(f"{label}: cannot decode frame {count + 1}{at} ({exc})") from exc
        if frame is None:
            return
        if frame.time is not None:
            if origin is None:
                origin = frame.time
            seconds = max(0.0, frame.time - origin)
        else:
            seconds = 0.0 if previous is None else previous + step
        if seconds > policy.max_video_seconds:
            raise _too_long(label, seconds, policy)
        check_pixels(frame.width, frame.height, policy, label, what=f"frame {count}")
        yield seconds, frame
        previous = seconds
        count += 1


def _frame_seconds(frame: Any) -> float | None:
    """How long a frame is shown, from its own duration field, if it has one (PyAV 14+)."""
    duration, time_base = getattr(frame, "duration", None), getattr(frame, "time_base", None)
    if duration and time_base:
        return float(duration * time_base)
    return None


def _keyframe(frame: Any, options: LoadOptions, label: str, seconds: float) -> Image.Image:
    import av

    try:
        image = frame.to_image()
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise CorruptDocumentError(f"{label}: cannot convert the frame at {seconds:.2f} s ({exc})") from exc
    try:
        # No upscaling to a minimum here: the reranker applies its own when it scores.
        return resize_to_budget(
            image,
            min_pixels=min(options.image_min_pixels, options.frame_max_pixels),
            max_pixels=options.frame_max_pixels,
            factor=32,
        )
    except InvalidInputError as exc:  # an aspect ratio over 200
        raise DocumentError(f"{label}: cannot be indexed: {exc}") from exc


def load_video_file(path: Path, options: LoadOptions) -> Iterator[Unit]:
    """Yield a video's consecutive segments of ``options.segment_seconds``, each with its keyframes.

    Within a segment, keyframes are taken every ``1 / keyframe_fps`` seconds from the segment's
    start; when that would give more than ``max_frames_per_segment``, the spacing widens to spread
    exactly that many over the segment. Each keyframe is the first frame at or after its grid time,
    resized to ``frame_max_pixels`` (sides multiples of 32). The last segment ends where the last
    frame ends. A stretch of a segment's length with no frame at all (a variable-frame-rate still)
    gives no unit.

    The byte limit, the declared duration and the frame size are checked against ``options.policy``
    before decoding; the duration and frame size are checked again on every decoded frame.

    Args:
        path: the video file.
        options: segment length, sampling rate, frame cap and pixel budget, media policy.

    Yields:
        Units of modality ``"video"`` with ``start_s``/``end_s``, ``frames`` and ``timestamps``
        (seconds from the start of the video), titled with the file name without extension; ``text``
        is what a sidecar ``.srt``/``.vtt`` shows during the segment (:mod:`indexer.loaders.subtitles`).

    Raises:
        CorruptDocumentError: not a video PyAV can open, or a frame fails to decode.
        EmptyDocumentError: no video stream, or no decodable frame.
        MediaTooLargeError: over the byte, duration or frame pixel limit.
        MediaNotFoundError: the file does not exist.
    """
    import av  # lazy: loads FFmpeg's shared libraries

    path = Path(path)
    label = describe_source(path)
    policy = options.policy
    local_file_size(path, policy, policy.max_video_bytes, "video")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise CorruptDocumentError(f"{label}: not a video we can decode ({exc})") from exc
    with container:
        if not container.streams.video:
            raise EmptyDocumentError(f"{label}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        declared = stream_duration(container, stream)
        if declared is not None and declared > policy.max_video_seconds:
            raise _too_long(label, declared, policy)
        ctx = stream.codec_context
        if ctx.width and ctx.height:
            check_pixels(ctx.width, ctx.height, policy, label, what="video frame")
        cues = subtitles.load_sidecar(path, label)
        yield from _segments(container, stream, options, path.stem, label, cues)


def _segments(
    container: Any,
    stream: Any,
    options: LoadOptions,
    title: str,
    label: str,
    cues: Sequence[subtitles.Cue] = (),
) -> Iterator[Unit]:
    length = options.segment_seconds
    # Widening the spacing when the cap binds spreads the capped keyframes over the whole segment.
    spacing = max(1.0 / options.keyframe_fps, length / options.max_frames_per_segment)
    index = 0  # of the next unit
    segment = 0  # number of the segment being filled
    slot = 0  # next grid point of the segment: segment * length + slot * spacing
    frames: list[Image.Image] = []
    stamps: list[float] = []
    last_seconds, video_end = 0.0, 0.0
    fallback_shown = 1.0 / stream_fps(stream)  # for a first frame that does not say how long it lasts

    def unit(end: float) -> Unit:
        return Unit(
            index=index,
            modality=VIDEO,
            title=title,
            text=subtitles.text_between(cues, segment * length, end),
            frames=tuple(frames),
            timestamps=tuple(stamps),
            start_s=segment * length,
            end_s=end,
        )

    decoded = 0
    for seconds, frame in _frames(container, stream, label, options.policy):
        decoded += 1
        shown = _frame_seconds(frame)
        if shown is None:
            shown = seconds - last_seconds if decoded > 1 and seconds > last_seconds else fallback_shown
        last_seconds = seconds
        video_end = max(video_end, seconds + shown)
        current = max(segment, math.floor(seconds / length + _EPS))
        if current != segment:
            if frames:
                yield unit((segment + 1) * length)
                index += 1
            segment, slot, frames, stamps = current, 0, [], []
        start = segment * length
        if len(frames) < options.max_frames_per_segment and seconds >= start + slot * spacing - _EPS:
            frames.append(_keyframe(frame, options, label, seconds))
            stamps.append(seconds)
            slot = math.floor((seconds - start) / spacing + _EPS) + 1  # the next grid point after it
    if frames:
        yield unit(max(video_end, stamps[-1]))
        index += 1
    if index == 0:
        raise EmptyDocumentError(f"{label}: the video has no decodable frames")
    logger.debug("%s: %d frames decoded, %d segments, %.2f s", label, decoded, index, video_end)
