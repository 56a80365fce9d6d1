"""Subtitles that give a video's segments their time-aligned text: sidecar files and streams inside
the container.

**Sidecar.** A video ``talk.mp4`` takes its subtitles from ``talk.srt`` or ``talk.vtt`` beside it
(else the first of ``talk.*.srt`` / ``talk.*.vtt``, e.g. ``talk.en.srt``). The parser is small and
forgiving: a block it cannot read is skipped, markup (``<i>``, ``{\\an8}``) is dropped. Bytes are
decoded by :func:`decode_bytes`: a BOM's encoding (UTF-8, UTF-16, UTF-32), UTF-16 without a BOM
(recognised by its zero bytes), UTF-8, else cp1252 (what Windows editors write for Western
languages), else Latin-1, which never fails. Binary data (NUL or other control bytes: a picture or a
program renamed ``.srt``) is refused with a warning. A broken sidecar never fails the video: it is
logged and the video is indexed without its text (or with an embedded stream's, below).

**Embedded stream.** Without a sidecar that holds cues, the video's own text subtitle stream is read
(:func:`load_embedded`: ``subrip``, ``mov_text``, ``webvtt``, ``ass``/``ssa`` and FFmpeg's other text
codecs; picture subtitles such as DVD or PGS are not read): the stream marked default, else the
first. A sidecar wins over the stream rather than being merged with it: a sidecar next to a file is
the user's deliberate choice (a fix or a translation), and merging two versions of the same dialogue
would repeat every line.

Which sidecar a video has, and its content's hash, are part of the video's identity
(:func:`sidecar_identity`), so adding, editing or removing it re-indexes the video.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SIDECAR_EXTENSIONS = (".srt", ".vtt")
MAX_SIDECAR_BYTES = 16 * 2**20
# An embedded cue without a duration lasts until the next one, at most this long (seconds).
DEFAULT_CUE_SECONDS = 5.0
# Text subtitle codecs whose packets can be read without FFmpeg's decoder (when it refuses one).
_RAW_TEXT_CODECS = ("subrip", "srt", "webvtt", "text", "mov_text", "ass", "ssa")

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


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM starts it
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control characters that do not occur in a text file (all but tab, newline, form feed, return).
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")


class NotTextError(ValueError):
    """The bytes are not text in any encoding (binary data)."""


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when the bytes look like UTF-16 (Latin text: every other byte is zero)."""
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 4:
        return None
    even = sum(1 for b in sample[0 : 2 * pairs : 2] if b == 0)
    odd = sum(1 for b in sample[1 : 2 * pairs : 2] if b == 0)
    if odd > 0.3 * pairs and even < 0.05 * pairs:
        return "utf-16-le"
    if even > 0.3 * pairs and odd < 0.05 * pairs:
        return "utf-16-be"
    return None


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Subtitle bytes as text, and the encoding they were read in.

    A BOM's encoding (UTF-8, UTF-16, UTF-32), else UTF-16 recognised by its zero bytes, else UTF-8,
    else cp1252, else Latin-1. UTF-8 with a few bad bytes stays UTF-8 (each bad byte becomes U+FFFD)
    when its valid multi-byte characters outnumber them; otherwise the file is a one-byte encoding.

    Raises:
        NotTextError: the bytes hold NUL characters, or more than a few other control characters (a
            stray one is dropped), which no text file has.
    """
    bom, encoding = next(((b, name) for b, name in _BOMS if data.startswith(b)), (b"", None))
    if encoding is not None:
        decoded = data[len(bom) :].decode(encoding, errors="replace")
    else:
        encoding = _utf16_without_bom(data)
        if encoding is not None:
            decoded = data.decode(encoding, errors="replace")
        else:
            try:
                decoded, encoding = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                loose = data.decode("utf-8", errors="replace")
                bad = loose.count("\ufffd")
                wide = sum(1 for char in loose if ord(char) > 127 and char != "\ufffd")
                if wide > bad:
                    decoded, encoding = loose, "utf-8"
                else:
                    try:
                        decoded, encoding = data.decode("cp1252"), "cp1252"
                    except UnicodeDecodeError:
                        decoded, encoding = data.decode("latin-1"), "latin-1"
    decoded = decoded.rstrip("\x1a")  # DOS editors end a file with Ctrl-Z
    found = _BINARY.findall(decoded)
    if "\x00" in found or len(found) > max(3, len(decoded) // 100):
        raise NotTextError(f"binary data, not text ({len(found)} control characters, e.g. {found[0]!r})")
    return _BINARY.sub("", decoded) if found else decoded, encoding


def decode(data: bytes) -> str:
    """Subtitle bytes as text (see :func:`decode_bytes`); binary data raises :class:`NotTextError`."""
    return decode_bytes(data)[0]


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
        text, encoding = decode_bytes(sidecar.read_bytes())
        cues = parse(text)
    except (OSError, ValueError) as exc:  # NotTextError is a ValueError
        logger.warning("%s: subtitles %s ignored: %s", label, sidecar.name, exc)
        return []
    if encoding not in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        logger.info("%s: subtitles %s are not UTF-8: read as %s", label, sidecar.name, encoding)
    if not cues:
        logger.warning("%s: subtitles %s hold no cue we can read", label, sidecar.name)
    return cues


def sidecar_identity(video: Path) -> str:
    """Which sidecar the video has and what it holds: ``name:size:sha256`` (a prefix), "" for none.

    Part of a video's fingerprint at ingest, so a sidecar that appears, changes or goes re-indexes
    the video. One larger than :data:`MAX_SIDECAR_BYTES` is ignored by the loader, and named by its
    size and modification time only.
    """
    sidecar = find_sidecar(video)
    if sidecar is None:
        return ""
    try:
        stat = sidecar.stat()
        if stat.st_size > MAX_SIDECAR_BYTES:
            return f"{sidecar.name}:{stat.st_size}:{stat.st_mtime_ns}"
        digest = hashlib.sha256(sidecar.read_bytes()).hexdigest()[:16]
    except OSError:
        return f"{sidecar.name}:unreadable"
    return f"{sidecar.name}:{stat.st_size}:{digest}"


# -- streams inside the container --------------------------------------------------------------------


def _is_text_stream(stream: Any) -> bool:
    codec = getattr(getattr(stream, "codec_context", None), "codec", None)
    if codec is None:
        return False
    if getattr(codec, "text_sub", None) is not None:
        return bool(codec.text_sub)
    return codec.name in _RAW_TEXT_CODECS


def _is_default(stream: Any) -> bool:
    try:
        import av

        return bool(int(stream.disposition) & int(av.stream.Disposition.default))
    except (AttributeError, TypeError, ValueError):
        return False


def _as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _ass_text(line: str) -> str:
    """The text field of an ASS event (``ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text``,
    or a full ``Dialogue:`` line with its times)."""
    if line.startswith("Dialogue:"):
        parts = line.split(",", 9)
        return parts[9] if len(parts) == 10 else ""
    parts = line.split(",", 8)
    return parts[8] if len(parts) == 9 else line


def _clean(text: str) -> str:
    text = text.replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
    return " ".join(_TAG.sub("", text).split())


def _rects(decoded: Iterable[Any]) -> Iterator[Any]:
    """The subtitle rectangles of what a packet decoded to (PyAV 12-13 gives sets of them, 14+ them)."""
    for item in decoded:
        rects = getattr(item, "rects", None)
        if rects is not None:
            yield from rects
        else:
            yield item


def _rect_text(rect: Any) -> str:
    dialogue = _as_str(getattr(rect, "dialogue", None))
    if dialogue:
        return _clean(dialogue)
    text = _as_str(getattr(rect, "text", None))
    if text:
        return _clean(text)
    return _clean(_ass_text(_as_str(getattr(rect, "ass", None))))


def _raw_text(codec: str, payload: bytes) -> str:
    """A text subtitle packet read without FFmpeg's decoder (which refuses text that is not UTF-8)."""
    if codec == "mov_text":
        length = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
        payload = payload[2 : 2 + length]
    try:
        text = decode(payload)
    except NotTextError:
        return ""
    return _clean(_ass_text(text) if codec in ("ass", "ssa") else text)


def load_embedded(video: Path, label: str, origin: float = 0.0) -> list[Cue]:
    """The cues of the video's text subtitle stream (the default one, else the first); [] for none.

    The container is opened a second time and only the subtitle stream's packets are read (nothing
    is decoded but them), before the video is decoded, so every segment finds its cues however the
    container interleaves them. Times are seconds from ``origin`` (the video stream's start), as the
    segments' are. What cannot be read is skipped with a warning; it never fails the video.
    """
    import av

    errors = (av.FFmpegError, OSError, ValueError, EOFError)
    try:
        container = av.open(str(video), mode="r")
    except errors:
        return []  # the video loader reports an unreadable file itself
    cues: list[Cue] = []
    with container:
        subtitles = list(container.streams.subtitles)
        streams = [s for s in subtitles if _is_text_stream(s)]
        if not streams:
            if subtitles:
                names = ", ".join(sorted({s.codec_context.name for s in subtitles}))
                logger.info("%s: subtitle streams of pictures (%s) are not read", label, names)
            return []
        stream = next((s for s in streams if _is_default(s)), streams[0])
        codec = stream.codec_context.name
        total, refused = 0, 0
        try:
            for packet in container.demux(stream):
                if packet.pts is None or not packet.size:
                    continue  # the demuxer's flush packet, or an empty cue that clears the screen
                base = packet.time_base or stream.time_base
                start = float(packet.pts * base) - origin
                length = float(packet.duration * base) if packet.duration else 0.0
                try:
                    text = " ".join(filter(None, (_rect_text(r) for r in _rects(packet.decode()))))
                except errors:
                    text = ""
                    refused += 1
                if not text and codec in _RAW_TEXT_CODECS:
                    text = _raw_text(codec, bytes(packet))
                if not text:
                    continue
                total += len(text)
                if total > MAX_SIDECAR_BYTES:
                    logger.warning(
                        "%s: subtitle stream %d: text past %d bytes ignored",
                        label,
                        stream.index,
                        MAX_SIDECAR_BYTES,
                    )
                    break
                cues.append(Cue(start, start + length if length > 0 else -1.0, text))
        except errors as exc:
            logger.warning(
                "%s: subtitle stream %d (%s) read up to cue %d only: %s",
                label,
                stream.index,
                codec,
                len(cues),
                exc,
            )
        if refused:
            logger.debug("%s: %d subtitle packets refused by the %s decoder", label, refused, codec)
    cues.sort(key=lambda cue: cue.start)
    timed = []
    for at, cue in enumerate(cues):
        end = cue.end
        if end < 0:  # no duration: until the next cue, at most DEFAULT_CUE_SECONDS
            following = cues[at + 1].start if at + 1 < len(cues) else cue.start + DEFAULT_CUE_SECONDS
            end = min(cue.start + DEFAULT_CUE_SECONDS, max(following, cue.start))
        if end > 0:
            timed.append(Cue(max(0.0, cue.start), end, cue.text))
    if timed:
        language = getattr(stream, "language", None) or ""
        logger.debug(
            "%s: %d cues from subtitle stream %d (%s %s)", label, len(timed), stream.index, codec, language
        )
    return timed


def load_cues(video: Path, label: str, origin: float = 0.0) -> list[Cue]:
    """The video's cues: its sidecar's when that holds any, else its embedded text stream's.

    Subtitles never fail their video: what goes wrong reading them is logged, and the video is
    indexed without them.
    """
    cues = load_sidecar(video, label)
    if cues:
        return cues
    try:
        return load_embedded(video, label, origin)
    except Exception as exc:  # a container or PyAV quirk we do not know: the frames still index
        logger.warning("%s: the subtitle streams are ignored: %s: %s", label, type(exc).__name__, exc)
        return []


def text_between(cues: Sequence[Cue], start: float, end: float) -> str:
    """The text of the cues shown during ``[start, end)``, one cue a line."""
    return "\n".join(cue.text for cue in cues if cue.start < end and cue.end > start)
