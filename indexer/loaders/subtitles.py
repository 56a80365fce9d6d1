"""Sidecar subtitles (``.srt``, ``.vtt``) that give a video's segments their time-aligned text.

A video ``talk.mp4`` takes its subtitles from ``talk.srt`` or ``talk.vtt`` beside it (else the first of
``talk.*.srt`` / ``talk.*.vtt``, e.g. ``talk.en.srt``). The parser is small and forgiving: a block it
cannot read is skipped, bytes that are not UTF-8 are decoded as cp1252 (else Latin-1, which never
fails), markup (``<i>``, ``{\\an8}``) is dropped. A broken sidecar never fails the video: it is logged
and the video is indexed without text.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SIDECAR_EXTENSIONS = (".srt", ".vtt")
MAX_SIDECAR_BYTES = 16 * 2**20

_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?")
_ARROW = re.compile(rf"({_TIME.pattern})\s*-->\s*({_TIME.pattern})")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


def find_sidecar(video: Path) -> Path | None:
    """The subtitle file beside a video, or None."""
    for ext in SIDECAR_EXTENSIONS:
        for candidate in (video.with_suffix(ext), video.with_suffix(ext.upper())):
            if candidate.is_file():
                return candidate
    try:
        extra = sorted(
            p
            for p in video.parent.glob(f"{glob_escape(video.stem)}.*")
            if p.suffix.lower() in SIDECAR_EXTENSIONS and p.is_file()
        )
    except OSError:
        return None
    return extra[0] if extra else None


def glob_escape(text: str) -> str:
    """``text`` with glob wildcards escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def decode(data: bytes) -> str:
    """Subtitle bytes as text: a BOM's encoding, else UTF-8, else cp1252, else Latin-1."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str | None) -> float:
    value = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return value + (int(fraction.ljust(3, "0")) / 1000 if fraction else 0.0)


def parse(text: str) -> list[Cue]:
    """The cues of an SRT or WebVTT text, in time order; unreadable blocks are skipped."""
    cues: list[Cue] = []
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    for block in blocks:
        lines = block.strip("\n").split("\n")
        for at, line in enumerate(lines):
            match = _ARROW.search(line)
            if match is None:
                continue
            groups = match.groups()
            start = _seconds(*groups[1:5])
            end = _seconds(*groups[6:10])
            words = " ".join(_TAG.sub("", " ".join(lines[at + 1 :])).split())
            if words and end >= start:
                cues.append(Cue(start, end, words))
            break
    cues.sort(key=lambda cue: cue.start)
    return cues


def load_sidecar(video: Path, label: str) -> list[Cue]:
    """The cues of the video's sidecar subtitles; [] when there is none or it cannot be read."""
    sidecar = find_sidecar(video)
    if sidecar is None:
        return []
    try:
        size = sidecar.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            logger.warning("%s: subtitles %s ignored: %d bytes is too large", label, sidecar.name, size)
            return []
        cues = parse(decode(sidecar.read_bytes()))
    except (OSError, ValueError) as exc:
        logger.warning("%s: subtitles %s ignored: %s", label, sidecar.name, exc)
        return []
    if not cues:
        logger.warning("%s: subtitles %s hold no cue we can read", label, sidecar.name)
    return cues


def text_between(cues: Sequence[Cue], start: float, end: float) -> str:
    """The text of the cues shown during ``[start, end)``, one cue a line."""
    return "\n".join(cue.text for cue in cues if cue.start < end and cue.end > start)
