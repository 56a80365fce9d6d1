"""Content sent by API clients, made safe before any model sees it.

A client's text, image or video arrives as JSON (``{"text": ..., "image": ..., "video": ...}``) or as
an upload. Images and videos may be base64 strings, ``data:`` URIs or ``http(s)`` URLs; a URL is
fetched here with the client media policy (off unless ``MMSEARCH_REMOTE_MEDIA_HOSTS`` lists the
host), and a local path or ``file://`` URI is always refused. What reaches the models is bytes, so
no client string is ever opened as a file.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from core.content import Content, parse_content
from core.errors import InvalidInputError, RemoteMediaError
from core.media import MediaPolicy, read_source_bytes


def media_bytes(value: Any, policy: MediaPolicy, *, what: str, where: str) -> bytes:
    """One image or video given by a client, as bytes.

    Accepts base64 (plain or as a ``data:`` URI) and, when the policy allows, an http(s) URL.

    Raises:
        RemoteMediaError: a URL the policy refuses, a local path or a file:// URI.
        InvalidInputError: not a string, or not valid base64.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{where}: {what} must be a base64 string, a data: URI or an http(s) URL")
    text = value.strip()
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://", "data:")):
        return read_source_bytes(text, policy=policy, what=what)
    if lowered.startswith("file:") or text.startswith(("/", "./", "../", "~")) or "\\" in text[:3]:
        raise RemoteMediaError(
            f"{where}: {what} must be sent inline (base64) or as an http(s) URL, not a path"
        )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{where}: {what} is neither base64 nor a data:/http(s) URL") from None


def client_content(value: Any, policy: MediaPolicy, *, where: str, max_chars: int) -> Content:
    """A query or document from a client (a string or a ``{text, image, video}`` object) as Content.

    Raises:
        InvalidInputError: wrong shape, empty, or text over ``max_chars``.
        ContentTypeError: a key other than text, image, video.
        MediaError: media that cannot be read under the policy.
    """
    # Shape, keys and types are checked first; parsing reads nothing, so a bad request fetches nothing.
    parsed = parse_content(value, where=where)
    for text in parsed.texts:
        if len(text) > max_chars:
            raise InvalidInputError(f"{where}: text has {len(text)} characters; the limit is {max_chars}")
    content = Content(
        texts=tuple(t for t in parsed.texts if t.strip()),
        images=tuple(
            media_bytes(img, policy, what="image", where=f"{where}: image {i}")
            for i, img in enumerate(parsed.images)
        ),
        videos=tuple(media_bytes(video, policy, what="video", where=where) for video in parsed.videos),
    )
    if content.is_empty:
        raise InvalidInputError(f"{where} is empty: give it text, an image or a video")
    return content
