"""Media sources: policy, labels, and reading the encoded bytes of any source.

A source is a local path (``str`` or ``os.PathLike``), a ``file://`` URI, an ``http(s)://`` URL, a
``data:`` URI or raw ``bytes``. Byte counts are checked against a :class:`MediaPolicy` *before* anything
is read or downloaded, so hostile inputs fail fast with a typed error from :mod:`core.errors`.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import logging
import os
import re
import stat
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from core.errors import (
    InvalidInputError,
    MediaDecodeError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    MMSearchError,
    RemoteMediaError,
)

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 64 * 1024
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
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


def check_pixels(width: int, height: int, policy: MediaPolicy, label: str, what: str = "image") -> None:
    if width * height > policy.max_image_pixels:
        raise MediaTooLargeError(
            f"{label}: {what} is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {policy.max_image_pixels:,} pixels"
        )


# --------------------------------------------------------------------------------------------------
# Reading bytes from any source
# --------------------------------------------------------------------------------------------------


def classify(source: Any, what: str) -> tuple[str, Any]:
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


def local_file_size(path: Path, policy: MediaPolicy, limit: int, what: str) -> int:
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
    local_file_size(path, policy, limit, what)
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


def read_classified(kind: str, value: Any, policy: MediaPolicy, limit: int, what: str) -> bytes:
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
    kind, value = classify(source, what)
    return read_classified(kind, value, policy, limit, what)
