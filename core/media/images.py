"""Images: decoding and normalising image sources, and resizing to a pixel budget (the Qwen-VL rule)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from core.content import ImageSource, StoredImage
from core.errors import (
    InvalidInputError,
    MediaDecodeError,
    MediaNotFoundError,
    MediaTooLargeError,
    MMSearchError,
)
from core.media.sources import DEFAULT_POLICY, MediaPolicy, check_pixels, describe_source, read_source_bytes

# Same limit as qwen-vl-utils: the vision tower cannot use images thinner than this.
MAX_ASPECT_RATIO = 200
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


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
    return _decode_opened(lambda: io.BytesIO(data), label, policy)


def _decode_opened(opener: Callable[[], IO[bytes] | str], label: str, policy: MediaPolicy) -> Image.Image:
    try:
        with Image.open(opener()) as opened:
            # Image.open parsed only the header: refuse huge images before any pixel is decoded.
            check_pixels(opened.width, opened.height, policy, label)
            opened.load()  # inside the try, so truncated files fail here rather than later
            return _normalise(opened)
    except (MMSearchError, MemoryError):
        raise
    except FileNotFoundError:
        raise MediaNotFoundError(f"image file not found: {label}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # PIL's own process-wide guard fired (its limit is independent of our policy).
        raise MediaTooLargeError(f"{label}: image has too many pixels ({exc})") from exc
    except Image.UnidentifiedImageError:
        raise MediaDecodeError(f"{label}: not an image in a format we can read") from None
    except Exception as exc:
        # Malformed files make PIL raise many unrelated types (OSError, SyntaxError, struct.error, ...).
        raise MediaDecodeError(f"{label}: cannot decode the image ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------------------------------
# Stored images: sized from the header, decoded only when their pixels are needed
# --------------------------------------------------------------------------------------------------

_ORIENTATION = 0x0112
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # the EXIF orientations that rotate by 90 or 270 degrees
# What a complete file of the media store's formats ends with: PNG's IEND chunk, JPEG's EOI marker.
_TRAILERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}


def _orientation(opened: Image.Image) -> int:
    if opened.format == "PNG":
        # PNG's getexif() decodes the whole image to look for an eXIf chunk after the pixels; the
        # media store never writes one, so only a chunk in the header counts.
        raw = opened.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
        return int(exif.get(_ORIENTATION, 1) or 1)
    return int(opened.getexif().get(_ORIENTATION, 1) or 1)


def stored_image_size(source: StoredImage, *, policy: MediaPolicy = DEFAULT_POLICY) -> tuple[int, int]:
    """``(width, height)`` of a stored image as :func:`load_image` returns it, from the header only.

    EXIF orientation is applied (a quarter turn swaps the sides), and the pixel limit is checked.

    Raises:
        MediaNotFoundError: the file is gone.
        MediaDecodeError: not an image in a readable format.
        MediaTooLargeError: over the pixel limit.
    """
    label = describe_source(source)
    try:
        with Image.open(source.path) as opened:
            width, height = opened.size
            check_pixels(width, height, policy, label)
            swapped = _orientation(opened) in _SWAPS_SIDES
    except MMSearchError:
        raise
    except FileNotFoundError:
        raise MediaNotFoundError(f"image file not found: {label}") from None
    except Image.UnidentifiedImageError:
        raise MediaDecodeError(f"{label}: not an image in a format we can read") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise MediaDecodeError(f"{label}: cannot read the image header ({reason})") from exc
    return (height, width) if swapped else (width, height)


def check_stored_image(path: str | os.PathLike[str]) -> None:
    """Cheap checks that a stored image file can be decoded: a readable header and, for PNG and JPEG
    (what the media store writes), the end-of-file marker, so a truncated file is caught without
    decoding it.

    Raises:
        FileNotFoundError: the file is gone.
        MediaDecodeError: an unreadable header, or a truncated PNG or JPEG.
    """
    label = describe_source(os.fspath(path))
    with open(path, "rb") as f:
        try:
            with Image.open(f) as opened:
                trailer = _TRAILERS.get(opened.format or "")
        except Image.UnidentifiedImageError:
            raise MediaDecodeError(f"{label}: not an image in a format we can read") from None
        except Exception as exc:
            raise MediaDecodeError(f"{label}: cannot read the image header ({exc})") from exc
        if trailer is not None:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - 64))
            if trailer not in f.read():
                raise MediaDecodeError(f"{label}: the file is truncated")


def _load_stored(source: StoredImage, policy: MediaPolicy) -> Image.Image:
    # Trusted and local by construction (see StoredImage): the pixel limit applies, not allow_local_files.
    return _decode_opened(lambda: source.path, describe_source(source), policy)


def load_image(source: ImageSource, *, policy: MediaPolicy = DEFAULT_POLICY) -> Image.Image:
    """Load an image source as a fully decoded RGB image.

    Animated images and multi-page files give their first frame; EXIF orientation is applied;
    transparency is composited onto white; 16-bit and float greyscale are scaled to 8 bits.

    Args:
        source: a path, ``file://`` URI, URL, data URI, bytes, a PIL image (copied, never mutated), or a
            :class:`core.content.StoredImage` (read whatever ``policy.allow_local_files`` says).
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
    if isinstance(source, StoredImage):
        return _load_stored(source, policy)
    label = describe_source(source)
    if isinstance(source, Image.Image):
        check_pixels(source.width, source.height, policy, label)
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
