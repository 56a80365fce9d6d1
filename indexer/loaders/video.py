"""Video loader: consecutive segments of a video, each with a few keyframes, decoded as a stream.

Frames are decoded one after the other and only the sampled ones are converted to images, so memory
holds one segment's keyframes at most, however long the video. Times come from each frame's
pts and time base, never from the declared frame rate (wrong for some streams, see
:func:`core.media.video.stream_fps`), and the video's end is where its last frame ends (an mkv's
declared duration also covers its audio).

A segment's text is what its subtitles show during it (a sidecar ``.srt``/``.vtt``, else the
container's own text subtitle stream: :mod:`indexer.loaders.subtitles`), followed by the on-screen
text OCR reads in its keyframes (slides, titles, captions burned in), each line once
(:class:`indexer.ocr.LineMerger`). OCR (``options.ocr`` ``auto`` or ``always``: for video they are
the same; ``off`` reads none) reads only the keyframes already chosen, each at most at 1080p's pixel
count and at its own resolution, and skips a keyframe whose picture is nearly identical to the last
one read (a slide held for a minute is read once; its text then counts for every segment it spans).
The reading may run in other processes (``read_frame``, :mod:`indexer.render_pool`): segments then
wait, a bounded number of them, for their keyframes' text while the next ones are decoded.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
from indexer import ocr
from indexer.loaders import subtitles
from indexer.loaders.base import LoadOptions
from indexer.units import VIDEO, Unit

logger = logging.getLogger(__name__)

EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")

# Tolerance on times computed in floating point (grid points, pts * time_base), in seconds.
_EPS = 1e-6

# Bump when what a video's units hold changes (2: embedded subtitle streams and keyframe OCR), so
# videos indexed before are indexed again; it is part of every video's identity at ingest.
TEXT_VERSION = 2
# OCR reads a keyframe at most at this many pixels (1080p's): on-screen text is made to be read at
# that size, and it bounds the memory of frames waiting for an OCR worker.
OCR_FRAME_MAX_PIXELS = 1920 * 1080
# Two keyframes whose 64 x 64 grey thumbnails differ nowhere by more than this (of 255) show the same
# picture: the second is not read again. A new line of text, even one digit of 12 px text in 1080p,
# changes some cells by 30 or more; a still shot's noise and an encoder refining a picture over a
# few frames (up to about 20 at a very low bit rate) mostly less, and cost only a second reading.
SAME_PICTURE_MAX_DIFF = 16
_SIGNATURE_SIDE = 64

# Reads a keyframe's text, here or in another process: a future of what OCR found in the picture.
FrameReader = Callable[[Image.Image], "Future[ocr.OcrResult]"]


def read_here(image: Image.Image) -> Future[ocr.OcrResult]:
    """A :data:`FrameReader` that reads the frame in this thread (the future is done on return)."""
    future: Future[ocr.OcrResult] = Future()
    future.set_result(ocr.recognize(image, native_detection=True))
    return future


def identity(path: Path) -> str:
    """What a video's units depend on besides its bytes and the settings: this loader's text version
    and its sidecar subtitles (name, size and a hash of them; see :func:`subtitles.sidecar_identity`)."""
    return f"video-text/{TEXT_VERSION};sidecar={subtitles.sidecar_identity(Path(path))}"


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


def _keyframe(
    frame: Any, options: LoadOptions, label: str, seconds: float, *, for_ocr: bool = False
) -> tuple[Image.Image, Image.Image | None]:
    """The keyframe at the frame budget, and (``for_ocr``) the frame at most at OCR's pixel count."""
    import av

    try:
        image = frame.to_image()
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise CorruptDocumentError(f"{label}: cannot convert the frame at {seconds:.2f} s ({exc})") from exc
    try:
        # No upscaling to a minimum here: the reranker applies its own when it scores.
        keyframe = resize_to_budget(
            image,
            min_pixels=min(options.image_min_pixels, options.frame_max_pixels),
            max_pixels=options.frame_max_pixels,
            factor=32,
        )
    except InvalidInputError as exc:  # an aspect ratio over 200
        raise DocumentError(f"{label}: cannot be indexed: {exc}") from exc
    if not for_ocr:
        return keyframe, None
    width, height = image.size
    if width * height > OCR_FRAME_MAX_PIXELS:
        scale = math.sqrt(OCR_FRAME_MAX_PIXELS / (width * height))
        image = image.resize((max(1, int(width * scale)), max(1, int(height * scale))), Image.BILINEAR)
    return keyframe, image


def _signature(image: Image.Image) -> np.ndarray:
    """A picture's 64 x 64 grey thumbnail (box-averaged), to tell a new picture from the same one."""
    small = image.convert("L").resize((_SIGNATURE_SIDE, _SIGNATURE_SIDE), Image.BOX)
    return np.asarray(small, dtype=np.int16)


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two :func:`_signature` thumbnails show the same picture (see SAME_PICTURE_MAX_DIFF)."""
    return int(np.abs(a - b).max()) <= SAME_PICTURE_MAX_DIFF


def load_video_file(
    path: Path,
    options: LoadOptions,
    *,
    read_frame: FrameReader | None = None,
    lookahead_segments: int = 0,
    max_frames_reading: int = 16,
) -> Iterator[Unit]:
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
        options: segment length, sampling rate, frame cap and pixel budget, media policy, OCR mode.
        read_frame: reads a keyframe's text (:func:`read_here`, the default, in this thread; the
            render pool's, in its worker processes).
        lookahead_segments: segments decoded past one still waiting for its keyframes' text (0 with
            :func:`read_here`, whose readings are done at once).
        max_frames_reading: frames sent to ``read_frame`` and not yet in a yielded segment, at most
            (past it, finished segments are waited for and yielded first; one segment's keyframes
            are always sent): it bounds the memory of frames waiting for a worker.

    Yields:
        Units of modality ``"video"`` with ``start_s``/``end_s``, ``frames`` and ``timestamps``
        (seconds from the start of the video), titled with the file name without extension; ``text``
        is the subtitles shown during the segment, then the lines OCR read in its keyframes (module
        docstring). Units are the same whatever ``read_frame`` and the look-ahead.

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
        origin = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            origin = float(stream.start_time * stream.time_base)
        cues = subtitles.load_cues(path, label, origin)
        reader = None
        if options.ocr != "off":
            reader = read_frame or read_here
        yield from _segments(
            container,
            stream,
            options,
            path.stem,
            label,
            cues,
            reader=reader,
            # Segments wait only for readings elsewhere; without any, they are yielded at once.
            lookahead=max(0, lookahead_segments) if read_frame is not None and reader is not None else 0,
            max_reading=max(1, max_frames_reading),
        )


@dataclass
class _Segment:
    """A segment decoded and waiting for its keyframes' text."""

    fields: dict[str, Any]
    subtitles: str
    readings: list[Future[ocr.OcrResult]] = field(default_factory=list)
    sent: int = 0  # frames this segment sent to the reader


def _finish(segment: _Segment) -> Unit:
    """The segment's unit: its subtitles, then the lines read in its keyframes (each once)."""
    text = segment.subtitles
    if segment.readings:
        merger = ocr.LineMerger(known=segment.subtitles)
        for reading in segment.readings:
            merger.add(line.text for line in reading.result().lines)
        if merger.lines:
            text = f"{text}\n{merger.text}" if text else merger.text
    return Unit(text=text, **segment.fields)


def _segments(
    container: Any,
    stream: Any,
    options: LoadOptions,
    title: str,
    label: str,
    cues: Sequence[subtitles.Cue] = (),
    *,
    reader: FrameReader | None = None,
    lookahead: int = 0,
    max_reading: int = 16,
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
    waiting: deque[_Segment] = deque()  # decoded, waiting for their keyframes' text
    current = _Segment({}, "")  # the readings of the segment being filled
    reading = 0  # frames sent to the reader whose segment is not yielded yet
    last_read: tuple[np.ndarray, Future[ocr.OcrResult]] | None = None  # the last picture read

    def close(end: float) -> None:
        nonlocal index, current
        current.fields = {
            "index": index,
            "modality": VIDEO,
            "title": title,
            "frames": tuple(frames),
            "timestamps": tuple(stamps),
            "start_s": segment * length,
            "end_s": end,
        }
        current.subtitles = subtitles.text_between(cues, segment * length, end)
        waiting.append(current)
        current = _Segment({}, "")
        index += 1

    def ready(everything: bool = False) -> Iterator[Unit]:
        """Yield the waiting segments past the look-ahead or the frame bound (all, at the end)."""
        nonlocal reading
        while waiting and (everything or len(waiting) > lookahead or reading > max_reading):
            done = waiting.popleft()
            reading -= done.sent
            yield _finish(done)

    decoded = 0
    try:
        for seconds, frame in _frames(container, stream, label, options.policy):
            decoded += 1
            shown = _frame_seconds(frame)
            if shown is None:
                shown = seconds - last_seconds if decoded > 1 and seconds > last_seconds else fallback_shown
            last_seconds = seconds
            video_end = max(video_end, seconds + shown)
            number = max(segment, math.floor(seconds / length + _EPS))
            if number != segment:
                if frames:
                    close((segment + 1) * length)
                    yield from ready()
                segment, slot, frames, stamps = number, 0, [], []
            start = segment * length
            if len(frames) < options.max_frames_per_segment and seconds >= start + slot * spacing - _EPS:
                keyframe, picture = _keyframe(frame, options, label, seconds, for_ocr=reader is not None)
                frames.append(keyframe)
                stamps.append(seconds)
                slot = math.floor((seconds - start) / spacing + _EPS) + 1  # the next grid point after it
                if reader is not None and picture is not None:
                    signature = _signature(picture)
                    if last_read is not None and same_picture(signature, last_read[0]):
                        future = last_read[1]  # the same picture: its text is the one already read
                    else:
                        future = reader(picture)
                        last_read = (signature, future)
                        current.sent += 1
                        reading += 1
                    if not current.readings or current.readings[-1] is not future:
                        current.readings.append(future)
                    del picture
                    yield from ready()
        if frames:
            close(max(video_end, stamps[-1]))
        yield from ready(everything=True)
    finally:
        for left in [*waiting, current]:  # the consumer stopped early, or decoding failed
            for future in left.readings:
                future.cancel()
    if index == 0:
        raise EmptyDocumentError(f"{label}: the video has no decodable frames")
    logger.debug("%s: %d frames decoded, %d segments, %.2f s", label, decoded, index, video_end)
