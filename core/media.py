"""Turn image and video *sources* into pixels, safely.

A source is a local path (``str`` or ``os.PathLike``), a ``file://`` URI, an ``http(s)://`` URL, a
``data:`` URI, raw ``bytes`` or, for images, a PIL image; a video may also be a list of frame sources.
Every byte count, pixel count and duration is checked against a :class:`MediaPolicy` *before* the
expensive work (reading, downloading, decoding) so hostile inputs fail fast with a typed error from
:mod:`core.errors`.

This module stays light on purpose: PIL, numpy and the standard library only. PyAV is imported inside
the video functions so text-only users never load FFmpeg.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import logging
import math
import os
import re
import stat
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from core.content import ImageSource, VideoSource
from core.errors import (
    EmptyVideoError,
    InvalidInputError,
    MediaDecodeError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    MMSearchError,
    RemoteMediaError,
)

logger = logging.getLogger(__name__)

# Same limit as qwen-vl-utils: the vision tower cannot use images thinner than this.
MAX_ASPECT_RATIO = 200
# Frame rate assumed when a container does not say (the common film rate).
FALLBACK_FPS = 24.0

_CHUNK_BYTES = 64 * 1024
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_MAX_LABEL_CHARS = 120


@dataclass(frozen=True)
class MediaPolicy:
    """Limits and permissions applied while loading media.

    Attributes:
        max_bytes: largest encoded size of one image (file, bytes, URL body or data URI), in bytes.
        max_video_bytes: largest encoded size of one video, in bytes.
        max_image_pixels: largest decoded ``width * height`` of an image or of a video frame; guards
            against decompression bombs.
        max_video_seconds: longest video accepted, in seconds.
        allow_local_files: whether paths and ``file://`` URIs may be read.
        allow_remote: whether ``http(s)://`` URLs may be fetched.
        allowed_hosts: ``None`` for any host, else the exact host names (case-insensitive) URLs may
            point to, redirects included.
        timeout_s: socket timeout of each network operation, in seconds.
    """

    max_bytes: int = 64 * 2**20
    max_video_bytes: int = 1024 * 2**20
    max_image_pixels: int = 64_000_000
    max_video_seconds: float = 4 * 3600.0
    allow_local_files: bool = True
    allow_remote: bool = True
    allowed_hosts: tuple[str, ...] | None = None
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if isinstance(self.allowed_hosts, str):
            # A bare string would silently become a tuple of single characters.
            raise InvalidInputError("allowed_hosts must be a tuple of host names, not a string")
        if self.allowed_hosts is not None and not isinstance(self.allowed_hosts, tuple):
            object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))


DEFAULT_POLICY = MediaPolicy()


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
# Labels and sizes for messages
# --------------------------------------------------------------------------------------------------


def _shorten(text: str, limit: int = _MAX_LABEL_CHARS, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    if keep_end:  # the file name is the useful end of a long path
        return "..." + text[-(limit - 3) :]
    return text[: limit - 3] + "..."


def describe_source(source: Any) -> str:
    """Return a short human label for a media source, for log and error messages.

    Never includes a payload: bytes and data URIs are summarised, long paths and URLs truncated and
    credentials stripped from URLs.

    Args:
        source: any image or video source (or anything else; unknown types are named by type).

    Returns:
        e.g. ``"photos/cat.jpg"``, ``"https://example.com/a.png"``, ``"<bytes 1234>"``,
        ``"<data URI>"``, ``"<PIL image 640x480>"`` or ``"<3 frames>"``.
    """
    if isinstance(source, Image.Image):
        return f"<PIL image {source.width}x{source.height}>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes {len(source)}>"
    if isinstance(source, (tuple, list)):
        return f"<{len(source)} frames>"
    if isinstance(source, os.PathLike):
        return _shorten(os.fsdecode(os.fspath(source)), keep_end=True)
    if isinstance(source, str):
        if source[:5].lower() == "data:":
            return "<data URI>"
        if _URL_SCHEME.match(source):
            try:
                parts = urllib.parse.urlsplit(source)
            except ValueError:  # malformed, e.g. an unclosed IPv6 bracket
                return _shorten(source)
            if "@" in parts.netloc:  # drop user:password@
                parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
            return _shorten(urllib.parse.urlunsplit(parts))
        return _shorten(source, keep_end=True)
    return f"<{type(source).__name__}>"


def _fmt_bytes(n: int) -> str:
    if n < 2**10:
        return f"{n} bytes"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n} bytes)"
    return f"{n} bytes"  # pragma: no cover - unreachable


def _too_large(label: str, what: str, size: int | str, limit: int) -> MediaTooLargeError:
    shown = size if isinstance(size, str) else _fmt_bytes(size)
    return MediaTooLargeError(f"{label}: {what} is {shown}; the limit is {_fmt_bytes(limit)}")


def _check_pixels(width: int, height: int, policy: MediaPolicy, label: str, what: str = "image") -> None:
    if width * height > policy.max_image_pixels:
        raise MediaTooLargeError(
            f"{label}: {what} is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {policy.max_image_pixels:,} pixels"
        )


# --------------------------------------------------------------------------------------------------
# Reading bytes from any source
# --------------------------------------------------------------------------------------------------


def _classify(source: Any, what: str) -> tuple[str, Any]:
    """Split a source into ("bytes", bytes) | ("path", Path) | ("url", str) | ("data", str)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "bytes", bytes(source)
    if isinstance(source, os.PathLike):
        return "path", Path(os.fsdecode(os.fspath(source)))
    if not isinstance(source, str):
        raise InvalidInputError(
            f"a {what} source must be a path, URL, data URI or bytes, got {type(source).__name__}"
        )
    if source[:5].lower() == "data:":
        return "data", source
    match = _URL_SCHEME.match(source)
    if match:
        scheme = match.group(1).lower()
        if scheme in ("http", "https"):
            return "url", source
        if scheme == "file":
            return "path", _file_uri_to_path(source)
        raise RemoteMediaError(
            f"{describe_source(source)}: unsupported URL scheme {scheme!r}; use http, https or file"
        )
    if not source:
        raise MediaNotFoundError(f"{what} file not found: empty path ''")
    return "path", Path(source)


def _file_uri_to_path(uri: str) -> Path:
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInputError(
            f"{describe_source(uri)}: file URIs must not name a host (got {parts.netloc!r})"
        )
    return Path(urllib.parse.unquote(parts.path))


def _local_file_size(path: Path, policy: MediaPolicy, limit: int, what: str) -> int:
    """Check policy, existence and size of a local file before anything reads it; return its size."""
    label = describe_source(path)
    if not policy.allow_local_files:
        # Checked before touching the disk so a refusal never reveals whether the file exists.
        raise InvalidInputError(
            f"{label}: local file paths are not allowed here; send the {what} as bytes, a data URI or a URL"
        )
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise MediaNotFoundError(f"{what} file not found: {label}") from None
    except ValueError as exc:  # e.g. an embedded NUL byte
        raise InvalidInputError(f"{label}: not a valid path ({exc})") from None
    except OSError as exc:
        raise MediaError(f"{label}: cannot access the {what} file ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(info.st_mode):
        # Directories, FIFOs and devices (/dev/zero) are not media files.
        raise MediaNotFoundError(f"{what} file not found: {label} is not a regular file")
    if info.st_size > limit:
        raise _too_large(label, what, info.st_size, limit)
    return info.st_size


def _read_local(path: Path, policy: MediaPolicy, limit: int, what: str) -> bytes:
    _local_file_size(path, policy, limit, what)
    label = describe_source(path)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)  # bounded even if the file grew after stat()
    except OSError as exc:
        raise MediaError(f"{label}: cannot read the {what} file ({exc.strerror or exc})") from exc
    if len(data) > limit:
        raise _too_large(label, what, f"more than {_fmt_bytes(limit)}", limit)
    return data


def _decode_data_uri(uri: str, limit: int, what: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise MediaDecodeError("<data URI>: malformed, no ',' between the header and the data")
    params = [p.strip().lower() for p in header[5:].split(";")]
    if "base64" not in params[1:]:
        data = urllib.parse.unquote_to_bytes(payload)
    else:
        payload = re.sub(r"\s+", "", payload)
        if "%" in payload:  # base64 that was percent-encoded for use inside a URL
            payload = urllib.parse.unquote(payload)
        # Refuse before decoding: base64 is 4 chars per 3 bytes.
        if len(payload) // 4 * 3 > limit + 3:
            raise _too_large("<data URI>", what, f"about {_fmt_bytes(len(payload) // 4 * 3)}", limit)
        altchars = b"-_" if ("-" in payload or "_" in payload) else None
        payload += "=" * (-len(payload) % 4)
        try:
            data = base64.b64decode(payload, altchars=altchars, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MediaDecodeError(f"<data URI>: the base64 payload is invalid ({exc})") from None
    if len(data) > limit:
        raise _too_large("<data URI>", what, len(data), limit)
    return data


def _check_url_allowed(url: str, policy: MediaPolicy, what: str) -> None:
    label = describe_source(url)
    try:
        parts = urllib.parse.urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:
        raise RemoteMediaError(f"{label}: malformed URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise RemoteMediaError(f"{label}: only http and https URLs can be fetched")
    if not policy.allow_remote:
        raise RemoteMediaError(f"{label}: fetching {what}s from URLs is not allowed here")
    host = (hostname or "").rstrip(".")
    if not host:
        raise RemoteMediaError(f"{label}: the URL has no host")
    if policy.allowed_hosts is not None:
        allowed = {h.lower().rstrip(".") for h in policy.allowed_hosts}
        if host not in allowed:
            raise RemoteMediaError(f"{label}: host {host!r} is not in the allowed hosts")


class _PolicyRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Re-checks the policy on every redirect, so an allowed host cannot bounce us elsewhere."""

    def __init__(self, policy: MediaPolicy, what: str) -> None:
        super().__init__()
        self._policy = policy
        self._what = what

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        try:
            _check_url_allowed(newurl, self._policy, self._what)
        except RemoteMediaError as exc:
            fp.close()
            raise RemoteMediaError(f"{describe_source(req.full_url)}: redirected, and {exc}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_url(url: str, policy: MediaPolicy, limit: int, what: str) -> bytes:
    _check_url_allowed(url, policy, what)
    label = describe_source(url)
    opener = urllib.request.build_opener(_PolicyRedirectHandler(policy, what))
    request = urllib.request.Request(url, headers={"User-Agent": "mmsearch", "Accept": "*/*"})
    logger.debug("fetching %s %s", what, label)
    try:
        with opener.open(request, timeout=policy.timeout_s) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.strip().isdigit() and int(declared) > limit:
                raise _too_large(label, what, int(declared), limit)
            chunks: list[bytes] = []
            received = 0
            while True:
                # Never ask for more than one byte past the limit: that byte is enough to refuse.
                chunk = response.read(min(_CHUNK_BYTES, limit + 1 - received))
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
                if received > limit:
                    raise _too_large(label, what, f"more than {_fmt_bytes(limit)}", limit)
    except MMSearchError:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()
        raise RemoteMediaError(f"{label}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise RemoteMediaError(f"{label}: cannot fetch ({exc.reason})") from exc
    except TimeoutError as exc:
        raise RemoteMediaError(f"{label}: timed out after {policy.timeout_s:g} s") from exc
    except (http.client.HTTPException, OSError) as exc:
        raise RemoteMediaError(f"{label}: the download failed ({type(exc).__name__}: {exc})") from exc
    return b"".join(chunks)


def _read_classified(kind: str, value: Any, policy: MediaPolicy, limit: int, what: str) -> bytes:
    if kind == "bytes":
        if len(value) > limit:
            raise _too_large(describe_source(value), what, len(value), limit)
        return value
    if kind == "path":
        return _read_local(value, policy, limit, what)
    if kind == "data":
        return _decode_data_uri(value, limit, what)
    return _fetch_url(value, policy, limit, what)


def _default_limit(policy: MediaPolicy, what: str) -> int:
    return policy.max_video_bytes if what == "video" else policy.max_bytes


def read_source_bytes(
    source: Any,
    *,
    policy: MediaPolicy = DEFAULT_POLICY,
    max_bytes: int | None = None,
    what: str = "image",
) -> bytes:
    """Return the encoded bytes of a path, ``file://`` URI, URL, data URI or bytes source.

    Args:
        source: the media source. PIL images have no encoded bytes and are refused.
        policy: permissions and limits to apply.
        max_bytes: byte limit; defaults to ``policy.max_video_bytes`` when ``what == "video"``,
            else ``policy.max_bytes``.
        what: what the bytes are, for messages and the default limit (``"image"`` or ``"video"``).

    Returns:
        The bytes, at most the limit long.

    Raises:
        MediaNotFoundError: a local path that does not exist or is not a regular file.
        InvalidInputError: a local path while ``policy.allow_local_files`` is off, or a source of the
            wrong type.
        RemoteMediaError: a URL refused by the policy, or a failed download.
        MediaTooLargeError: the bytes are over the limit.
        MediaDecodeError: a malformed data URI.
    """
    if isinstance(source, Image.Image):
        raise InvalidInputError(f"{describe_source(source)} has no encoded bytes; pass a path, URL or bytes")
    limit = max_bytes if max_bytes is not None else _default_limit(policy, what)
    kind, value = _classify(source, what)
    return _read_classified(kind, value, policy, limit, what)


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Map 16-bit, 32-bit int and float greyscale to 8 bits without clipping most values to white."""
    values = np.asarray(image).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        scaled = values / 257.0
    elif image.mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = values * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        scaled = values
    elif image.mode == "I" and lo >= 0.0 and hi <= 65535.0:
        scaled = values / 257.0  # 16-bit data held in a 32-bit image (older Pillow PNG decoding)
    else:
        scaled = (values - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(values)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB; transparent pixels become white (black would read as content)."""
    if image.mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _normalise(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert to RGB; always returns a new image."""
    oriented = ImageOps.exif_transpose(image)
    rgb = _to_rgb(oriented)
    return rgb.copy() if rgb is image else rgb


def _decode_image(data: bytes, label: str, policy: MediaPolicy) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            # Image.open parsed only the header: refuse huge images before any pixel is decoded.
            _check_pixels(opened.width, opened.height, policy, label)
            opened.load()  # inside the try, so truncated files fail here rather than later
            return _normalise(opened)
    except (MMSearchError, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # PIL's own process-wide guard fired (its limit is independent of our policy).
        raise MediaTooLargeError(f"{label}: image has too many pixels ({exc})") from exc
    except Image.UnidentifiedImageError:
        raise MediaDecodeError(f"{label}: not an image in a format we can read") from None
    except Exception as exc:
        # Malformed files make PIL raise many unrelated types (OSError, SyntaxError, struct.error, ...).
        raise MediaDecodeError(f"{label}: cannot decode the image ({type(exc).__name__}: {exc})") from exc


def load_image(source: ImageSource, *, policy: MediaPolicy = DEFAULT_POLICY) -> Image.Image:
    """Load an image source as a fully decoded RGB image.

    Animated images and multi-page files give their first frame; EXIF orientation is applied;
    transparency is composited onto white; 16-bit and float greyscale are scaled to 8 bits.

    Args:
        source: a path, ``file://`` URI, URL, data URI, bytes, or a PIL image (copied, never mutated).
        policy: permissions and limits to apply.

    Returns:
        A new RGB image detached from any file.

    Raises:
        MediaNotFoundError: a path that does not exist.
        MediaDecodeError: corrupt, truncated or non-image data.
        MediaTooLargeError: over the byte or pixel limit.
        RemoteMediaError: a URL refused by the policy or that could not be fetched.
        InvalidInputError: a local path while local files are not allowed, or a source of the wrong type.
    """
    label = describe_source(source)
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, policy, label)
        try:
            return _normalise(source)
        except (MMSearchError, MemoryError):
            raise
        except Exception as exc:
            raise MediaDecodeError(
                f"{label}: cannot convert the image ({type(exc).__name__}: {exc})"
            ) from exc
    data = read_source_bytes(source, policy=policy, what="image")
    return _decode_image(data, label, policy)


# --------------------------------------------------------------------------------------------------
# Resizing to a pixel budget (the Qwen-VL rule)
# --------------------------------------------------------------------------------------------------


def smart_resize(
    height: int, width: int, *, factor: int = 32, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Return the (height, width) Qwen-VL resizes an image to.

    Both sides become multiples of ``factor``, the area lands in ``[min_pixels, max_pixels]`` where
    possible, and the aspect ratio is kept as closely as possible. Matches
    ``qwen_vl_utils.vision_process.smart_resize``, except that no side is ever below ``factor`` (the
    reference can return 0 for a thin image with a tiny ``max_pixels``).

    Args:
        height: the image height in pixels.
        width: the image width in pixels.
        factor: both output sides are multiples of this (patch size times spatial merge size).
        min_pixels: smallest output area wanted.
        max_pixels: largest output area wanted.

    Returns:
        ``(height, width)``.

    Raises:
        InvalidInputError: non-positive sizes, ``min_pixels > max_pixels``, or an aspect ratio over 200.
    """
    if height <= 0 or width <= 0:
        raise InvalidInputError(f"image sides must be positive, got {width}x{height}")
    if factor <= 0 or max_pixels <= 0:
        raise InvalidInputError(f"factor and max_pixels must be positive, got {factor} and {max_pixels}")
    if min_pixels > max_pixels:
        raise InvalidInputError(
            f"min_pixels ({min_pixels}) must not be greater than max_pixels ({max_pixels})"
        )
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise InvalidInputError(
            f"image is {width}x{height}, an aspect ratio of {ratio:.1f}; the limit is {MAX_ASPECT_RATIO}"
        )
    # The float expressions below mirror qwen-vl-utils operation by operation so results are identical.
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resize_to_budget(
    image: Image.Image, *, min_pixels: int, max_pixels: int, factor: int = 32
) -> Image.Image:
    """Resize an image (bicubic) to the size :func:`smart_resize` picks.

    Args:
        image: the image; returned as is when it already has the target size.
        min_pixels: smallest output area wanted.
        max_pixels: largest output area wanted.
        factor: both output sides are multiples of this.

    Returns:
        The resized image.

    Raises:
        InvalidInputError: see :func:`smart_resize`.
    """
    height, width = smart_resize(
        image.height, image.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
    )
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


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
        try:
            images.append(load_image(frames[i], policy=policy))
        except MMSearchError as exc:
            raise exc.within(f"video frame {i}") from exc
    return VideoFrames(tuple(images), tuple(i / fps for i in positions), float(fps))


def _stream_fps(stream: Any) -> float:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return FALLBACK_FPS


def _stream_duration(container: Any, stream: Any) -> float | None:
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
                _check_pixels(frame.width, frame.height, policy, label, what=f"frame {index}")
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
        src_fps = _stream_fps(stream)
        duration = _stream_duration(container, stream)
        if duration is None and stream.frames > 0:
            duration = stream.frames / src_fps
        if duration is not None and duration > policy.max_video_seconds:
            raise too_long(duration)
        ctx = stream.codec_context
        if ctx.width and ctx.height:
            _check_pixels(ctx.width, ctx.height, policy, label, what="video frame")
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
    kind, value = _classify(source, "video")
    if kind == "path":
        # Decode straight from the file: a long video need not fit in memory.
        _local_file_size(value, policy, policy.max_video_bytes, "video")
        path = os.fspath(value)

        def open_container() -> Any:
            import av

            return av.open(path, mode="r")
    else:
        data = _read_classified(kind, value, policy, policy.max_video_bytes, "video")

        def open_container() -> Any:
            import av

            return av.open(io.BytesIO(data), mode="r")

    return _decode_video(
        open_container, label, fps=fps, min_frames=min_frames, max_frames=max_frames, policy=policy
    )
