"""Videos: sampling frames from a video file (decoded with PyAV) or from a list of frame sources.

PyAV is imported inside the functions that decode, so importing this module never loads FFmpeg.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from core.content import ImageSource, VideoSource
from core.errors import (
    EmptyVideoError,
    InvalidInputError,
    MediaDecodeError,
    MediaTooLargeError,
    MMSearchError,
    located,
)
from core.media.images import load_image
from core.media.sources import (
    DEFAULT_POLICY,
    MediaPolicy,
    check_pixels,
    classify,
    describe_source,
    local_file_size,
    read_classified,
)

logger = logging.getLogger(__name__)

# Frame rate assumed when a container does not say (the common film rate).
FALLBACK_FPS = 24.0


@dataclass(frozen=True)
class VideoFrames:
    """Frames sampled from a video.

    Attributes:
        frames: the sampled frames, RGB, in time order.
        timestamps: seconds from the start of the source, one per frame.
        source_fps: the frame rate the timestamps refer to.
    """

    frames: tuple[Image.Image, ...]
    timestamps: tuple[float, ...]
    source_fps: float

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.timestamps):
            raise InvalidInputError(
                f"VideoFrames needs one timestamp per frame, got {len(self.frames)} frames "
                f"and {len(self.timestamps)} timestamps"
            )


# --------------------------------------------------------------------------------------------------
# Videos
# --------------------------------------------------------------------------------------------------


def _floor_even(x: float) -> int:
    return math.floor(x / 2) * 2


def _ceil_even(x: float) -> int:
    return math.ceil(x / 2) * 2


def _sample_count(total: int, src_fps: float, fps: float, min_frames: int, max_frames: int) -> int:
    """How many of ``total`` frames to keep: qwen-vl-utils' smart_nframes, but never failing.

    An even count as the model pairs frames; clips too short for two frames give what they have.
    """
    n = total / src_fps * fps
    n = min(max(n, _ceil_even(min_frames)), _floor_even(max_frames))
    n = _floor_even(min(n, total))
    if n < 2:
        n = 1 if total == 1 else min(total, 2)
    return max(1, min(n, max_frames))  # max_frames == 1 asks for exactly one frame


def _sample_indices(total: int, count: int) -> list[int]:
    return sorted({int(i) for i in np.linspace(0, total - 1, count).round()})


def _video_from_frames(
    frames: Sequence[ImageSource], fps: float, max_frames: int, policy: MediaPolicy
) -> VideoFrames:
    if len(frames) == 0:
        raise EmptyVideoError("video given as a list of frames has no frames")
    positions = (
        _sample_indices(len(frames), max_frames) if len(frames) > max_frames else list(range(len(frames)))
    )
    images = []
    for i in positions:  # only the kept frames are loaded
        with located(f"video frame {i}"):
            images.append(load_image(frames[i], policy=policy))
    return VideoFrames(tuple(images), tuple(i / fps for i in positions), float(fps))


def stream_fps(stream: Any) -> float:
    """Frames per second a PyAV video stream declares, or :data:`FALLBACK_FPS` when it says nothing."""
    # Known gap: raw h264 streams report average_rate 25 whatever the real rate (guessed_rate is
    # right there), so their timestamps are scaled wrongly; containers (mp4, mkv, webm) are fine.
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return FALLBACK_FPS


def stream_duration(container: Any, stream: Any) -> float | None:
    """Duration in seconds a PyAV video stream (else its container) declares, or None when unknown."""
    # mkv has no per-stream duration; the container's covers every track, so a video with longer
    # audio is over-estimated and sampling keeps only what decoding reaches (a warning is logged).
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    return None


def _decode_video(
    open_container: Callable[[], Any],
    label: str,
    *,
    fps: float,
    min_frames: int,
    max_frames: int,
    policy: MediaPolicy,
) -> VideoFrames:
    import av  # lazy: loads FFmpeg's shared libraries

    decode_errors = (av.FFmpegError, OSError, ValueError, EOFError)

    def open_checked() -> Any:
        try:
            return open_container()
        except decode_errors as exc:
            raise MediaDecodeError(f"{label}: not a video we can decode ({exc})") from exc

    def too_long(seconds: float) -> MediaTooLargeError:
        return MediaTooLargeError(
            f"{label}: video is {seconds:.1f} s long; the limit is {policy.max_video_seconds:g} s"
        )

    def frames_of(container: Any, stream: Any) -> Any:
        """Yield (index, frame) in presentation order, enforcing the duration and pixel limits."""
        index = -1
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.time is not None and frame.time - start > policy.max_video_seconds:
                    raise too_long(frame.time - start)
                check_pixels(frame.width, frame.height, policy, label, what=f"frame {index}")
                yield index, frame
        except MMSearchError:
            raise
        except decode_errors as exc:
            raise MediaDecodeError(f"{label}: cannot decode frame {index + 1} ({exc})") from exc

    def sample(container: Any, stream: Any, total: int) -> VideoFrames:
        count = _sample_count(total, src_fps, fps, min_frames, max_frames)
        wanted = _sample_indices(total, count)
        wanted_set, last = set(wanted), wanted[-1]
        logger.debug("%s: %d frames at %.3f fps, keeping %d", label, total, src_fps, len(wanted))
        kept: list[int] = []
        images: list[Image.Image] = []
        for index, frame in frames_of(container, stream):
            if index in wanted_set:  # streaming: only wanted frames are ever converted and held
                try:
                    images.append(frame.to_image())
                except decode_errors as exc:
                    raise MediaDecodeError(f"{label}: cannot convert frame {index} ({exc})") from exc
                kept.append(index)
            if index >= last:
                break
        if not images:
            raise EmptyVideoError(f"{label}: the video has no decodable frames")
        if len(kept) < len(wanted):
            logger.warning(
                "%s: expected %d frames but the video ended early; kept %d of %d sampled frames",
                label,
                total,
                len(kept),
                len(wanted),
            )
        return VideoFrames(tuple(images), tuple(i / src_fps for i in kept), src_fps)

    def video_stream(container: Any) -> Any:
        if not container.streams.video:
            raise EmptyVideoError(f"{label}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return stream

    with open_checked() as container:
        stream = video_stream(container)
        src_fps = stream_fps(stream)
        duration = stream_duration(container, stream)
        if duration is None and stream.frames > 0:
            duration = stream.frames / src_fps
        if duration is not None and duration > policy.max_video_seconds:
            raise too_long(duration)
        ctx = stream.codec_context
        if ctx.width and ctx.height:
            check_pixels(ctx.width, ctx.height, policy, label, what="video frame")
        if stream.frames > 0:
            return sample(container, stream, stream.frames)
        if duration:
            return sample(container, stream, max(1, round(duration * src_fps)))

    # Nothing in the headers says how long it is: count by decoding (keeping no frame), then sample.
    with open_checked() as container:
        total = sum(1 for _ in frames_of(container, video_stream(container)))
    if total == 0:
        raise EmptyVideoError(f"{label}: the video has no decodable frames")
    with open_checked() as container:
        return sample(container, video_stream(container), total)


def load_video(
    source: VideoSource,
    *,
    fps: float = 1.0,
    max_frames: int = 64,
    min_frames: int = 4,
    policy: MediaPolicy = DEFAULT_POLICY,
) -> VideoFrames:
    """Sample frames from a video, or take them from a list of frame sources.

    A video file is sampled at ``fps`` frames per second, clamped to ``[min_frames, max_frames]`` and
    to an even count (the qwen-vl-utils rule), at evenly spaced frame indices; decoding streams and
    keeps only the sampled frames. A list of frames is used as is, or ``max_frames`` evenly spaced
    frames of it, timed at ``fps``.

    Args:
        source: a path, ``file://`` URI, URL, data URI or bytes of a video file, or a list/tuple of
            image sources (the frames, in time order).
        fps: frames per second to sample; for a list of frames, the rate they were taken at.
        max_frames: most frames returned.
        min_frames: fewest frames returned when the video has that many.
        policy: permissions and limits to apply.

    Returns:
        The sampled RGB frames with their timestamps.

    Raises:
        EmptyVideoError: no video stream, no decodable frame, or an empty list of frames.
        MediaDecodeError: corrupt or non-video data; the message names the failing frame.
        MediaTooLargeError: over the byte, duration or frame pixel limit.
        MediaNotFoundError: a path that does not exist.
        RemoteMediaError: a URL refused by the policy or that could not be fetched.
        InvalidInputError: bad arguments, a refused local path or a source of the wrong type.
    """
    if not (isinstance(fps, (int, float)) and fps > 0 and math.isfinite(fps)):
        raise InvalidInputError(f"fps must be a positive number, got {fps!r}")
    if max_frames < 1 or min_frames < 0:
        raise InvalidInputError(
            f"max_frames must be at least 1 and min_frames at least 0, got {max_frames} and {min_frames}"
        )
    if isinstance(source, (tuple, list)):
        return _video_from_frames(source, fps, max_frames, policy)
    if isinstance(source, Image.Image):
        raise InvalidInputError("a single PIL image is not a video; pass a list of frames")

    label = describe_source(source)
    kind, value = classify(source, "video")
    if kind == "path":
        # Decode straight from the file: a long video need not fit in memory.
        local_file_size(value, policy, policy.max_video_bytes, "video")
        path = os.fspath(value)

        def open_container() -> Any:
            import av

            return av.open(path, mode="r")
    else:
        data = read_classified(kind, value, policy, policy.max_video_bytes, "video")

        def open_container() -> Any:
            import av

            return av.open(io.BytesIO(data), mode="r")

    return _decode_video(
        open_container, label, fps=fps, min_frames=min_frames, max_frames=max_frames, policy=policy
    )
