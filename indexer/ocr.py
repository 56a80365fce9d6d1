"""Optical character recognition for scans, screenshots and pictures of text (rapidocr, PP-OCRv4, CPU).

One small interface: :func:`recognize` reads a PIL image and returns its lines and words, each with a
box in normalised image coordinates (``x0, y0, x1, y1`` in 0..1, origin top left), and the text in
reading order. The engine (``rapidocr-onnxruntime``, whose wheel ships the detection and recognition
models, so it runs offline) is loaded on first use, once per process, and shared by every thread.

Modes (the ``ocr`` setting, :data:`OCR_MODES`): ``auto`` reads PDF pages without a usable text layer
and images; ``always`` reads every page and image; ``off`` reads nothing. Without the package
installed, OCR is skipped with one warning and units keep their text layer (or no text).

Pixel limits: images reach OCR only after :mod:`core.media` has checked the decoded size against the
media policy (a decompression bomb is refused before any pixel is decoded), and :func:`recognize`
downscales anything over :data:`OCR_MAX_PIXELS` first, so OCR never runs on a huge bitmap.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

OCR_MODES = ("auto", "always", "off")
# Largest bitmap OCR reads (about an A4 page at 300 dpi); larger images are downscaled first.
OCR_MAX_PIXELS = 9_000_000
# Images whose longer side is shorter are upscaled (at most 2x) before OCR: at small sizes the
# recogniser drops the spaces between English words ("Enablenightlybackups").
UPSCALE_BELOW = 1600
# Lines the recognizer is less sure of than this are dropped (rapidocr's own default is 0.5).
MIN_LINE_SCORE = 0.5
# A text layer with fewer letters or digits than this is "no usable text layer" (a scan with a page
# number, or a layer of junk glyphs).
MIN_LAYER_CHARS = 16

# A word: its text and box (x0, y0, x1, y1), normalised to the image's size.
Word = tuple[str, float, float, float, float]


@dataclass(frozen=True)
class OcrLine:
    """One recognised line: its text, box (normalised), confidence and words."""

    text: str
    box: tuple[float, float, float, float]
    score: float
    words: tuple[Word, ...]


@dataclass(frozen=True)
class OcrResult:
    """What OCR read in one image, lines in reading order (top to bottom, then left to right)."""

    lines: tuple[OcrLine, ...] = ()

    @property
    def text(self) -> str:
        """The lines' text, one line each."""
        return "\n".join(line.text for line in self.lines)

    @property
    def words(self) -> tuple[Word, ...]:
        """Every word with its box, in reading order."""
        return tuple(word for line in self.lines for word in line.words)


def check_mode(mode: str) -> str:
    """Return ``mode`` lower-cased if it is one of :data:`OCR_MODES`, else raise ValueError."""
    normal = str(mode).strip().lower()
    if normal not in OCR_MODES:
        raise ValueError(f"unknown OCR mode {mode!r}; expected one of {', '.join(OCR_MODES)}")
    return normal


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether the OCR engine (``rapidocr-onnxruntime``, with OpenCV and onnxruntime) can be imported.

    Imports it once (about a second): OpenCV needs ``libGL.so.1`` and ``libglib-2.0`` on Linux, and a
    missing system library only shows at import.
    """
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except (ImportError, OSError) as exc:
        logger.debug("rapidocr cannot be imported: %s", exc)
        return False
    return True


def usable_text_layer(text: str) -> bool:
    """Whether a page's text layer holds real text (at least :data:`MIN_LAYER_CHARS` letters or digits)."""
    count = 0
    for char in text:
        if char.isalnum():
            count += 1
            if count >= MIN_LAYER_CHARS:
                return True
    return False


class OcrEngine:
    """rapidocr behind a lock, loaded on the first call.

    Attributes:
        images_read: how many images this engine has read (for logs and tests).
    """

    def __init__(self, max_pixels: int = OCR_MAX_PIXELS, min_score: float = MIN_LINE_SCORE) -> None:
        self.max_pixels = max_pixels
        self.min_score = min_score
        self.images_read = 0
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._engine is None:
            from rapidocr_onnxruntime import RapidOCR

            logger.info("loading the OCR engine (rapidocr, PP-OCRv4)")
            # The package logs every call at INFO; keep it to warnings.
            logging.getLogger("RapidOCR").setLevel(logging.WARNING)
            self._engine = RapidOCR(text_score=self.min_score)
        return self._engine

    def recognize(self, image: Image.Image, *, native_detection: bool = False) -> OcrResult:
        """Read the text of an image.

        Args:
            image: any PIL image; it is converted to RGB and downscaled to at most ``max_pixels``.
            native_detection: find the text at the image's own resolution (capped at 2,000 px a
                side) instead of rapidocr's default, which first upscales the shorter side to 736 px.
                For video keyframes: a small frame then costs a few milliseconds instead of half a
                second, and reads as well (on-screen text is large for its frame).

        Returns:
            The lines with their words, boxes normalised to the image (0..1).
        """
        import numpy as np

        width, height = image.size
        if width < 8 or height < 8:
            return OcrResult()
        scale = 1.0
        if width * height > self.max_pixels:
            scale = math.sqrt(self.max_pixels / (width * height))
        elif max(width, height) < UPSCALE_BELOW:
            # Small pictures are read better larger: the recogniser keeps the spaces between words.
            room = math.sqrt(self.max_pixels / (width * height))
            scale = min(2.0, UPSCALE_BELOW / max(width, height), room)
        if scale != 1.0:
            resample = Image.BILINEAR if scale < 1 else Image.BICUBIC
            image = image.resize((max(1, int(width * scale)), max(1, int(height * scale))), resample)
        rgb = np.asarray(image.convert("RGB"))
        # rapidocr wants BGR, as OpenCV reads it.
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self._lock:
            engine = self._load()
            # No angle classifier: it turns clean horizontal lines upside down often enough to lose
            # them (a typed line on a large page read as nothing); pages come upright (/Rotate, EXIF).
            detector = getattr(engine, "text_det", None)
            default_limit = getattr(detector, "limit_type", None)
            if native_detection and default_limit is not None:
                detector.limit_type = "max"  # rapidocr: only downscale, above 960/1500/2000 px
            try:
                result, _ = engine(bgr, use_cls=False, return_word_box=True)
            finally:
                if native_detection and default_limit is not None:
                    detector.limit_type = default_limit
            self.images_read += 1
        h, w = bgr.shape[:2]
        lines = [_line(item, w, h) for item in result or ()]
        kept = [line for line in lines if line is not None and line.score >= self.min_score]
        kept.sort(key=lambda line: (round(line.box[1] * 50), line.box[0]))
        return OcrResult(tuple(kept))


def _norm_box(points: Any, width: int, height: int) -> tuple[float, float, float, float]:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]

    def clamp(value: float) -> float:
        return round(min(1.0, max(0.0, value)), 4)

    return clamp(min(xs) / width), clamp(min(ys) / height), clamp(max(xs) / width), clamp(max(ys) / height)


def _line(item: Any, width: int, height: int) -> OcrLine | None:
    text = " ".join(str(item[1]).split())
    if not text:
        return None
    box = _norm_box(item[0], width, height)
    score = float(item[2])
    words: list[Word] = []
    char_boxes = item[3] if len(item) > 5 else None
    chars = item[4] if len(item) > 5 else None
    if char_boxes and chars and len(char_boxes) == len(chars):
        # rapidocr gives a box per character (or per word, for scripts without spaces): group them
        # into words at the spaces.
        current: list[str] = []
        boxes: list[tuple[float, float, float, float]] = []
        for char, points in [*zip(chars, char_boxes, strict=True), (" ", None)]:
            if points is None or not str(char).strip():
                if current:
                    words.append(
                        (
                            "".join(current),
                            min(b[0] for b in boxes),
                            min(b[1] for b in boxes),
                            max(b[2] for b in boxes),
                            max(b[3] for b in boxes),
                        )
                    )
                current, boxes = [], []
                continue
            current.append(str(char))
            boxes.append(_norm_box(points, width, height))
    else:
        # No character boxes: share the line box among its words by their length.
        tokens = text.split(" ")
        total = sum(len(t) for t in tokens) + len(tokens) - 1
        x0, y0, x1, y1 = box
        at = 0
        for token in tokens:
            left = x0 + (x1 - x0) * at / total
            at += len(token)
            right = x0 + (x1 - x0) * at / total
            at += 1
            words.append((token, round(left, 4), y0, round(right, 4), y1))
    return OcrLine(text=text, box=box, score=score, words=tuple(words))


_ENGINE: OcrEngine | None = None
_ENGINE_LOCK = threading.Lock()
_WARNED = False


def engine() -> OcrEngine | None:
    """The process's shared OCR engine; None (with one warning) when rapidocr is not installed."""
    global _ENGINE, _WARNED
    with _ENGINE_LOCK:
        if _ENGINE is None:
            if not available():
                if not _WARNED:
                    logger.warning(
                        "OCR is on but rapidocr-onnxruntime cannot be imported (not installed, or "
                        "OpenCV misses libGL/libglib), so scans and pictures of text are indexed without "
                        "their words; `pip install 'mmsearch[index]'` adds it"
                    )
                    _WARNED = True
                return None
            _ENGINE = OcrEngine()
        return _ENGINE


def recognize(image: Image.Image, *, native_detection: bool = False) -> OcrResult:
    """Read an image's text with the shared engine (empty when OCR is not installed)."""
    shared = engine()
    return shared.recognize(image, native_detection=native_detection) if shared is not None else OcrResult()


def new_lines(layer: str, ocr: OcrResult) -> tuple[OcrLine, ...]:
    """The OCR lines a page's text layer does not already hold (all of them for an empty layer)."""
    if not layer.strip():
        return ocr.lines
    flat = " ".join(layer.split()).lower()
    return tuple(line for line in ocr.lines if " ".join(line.text.split()).lower() not in flat)


def merge_text(layer: str, ocr: OcrResult) -> str:
    """A page's text layer followed by the OCR lines it does not already hold (``ocr=always``)."""
    if not layer.strip():
        return ocr.text
    extra = [line.text for line in new_lines(layer, ocr)]
    return "\n".join([layer, *extra]) if extra else layer


# -- lines read on several pictures (a video segment's keyframes) -----------------------------------------


def _normal(line: str) -> str:
    """A line as compared for repeats: case-folded, whitespace collapsed."""
    return " ".join(line.split()).casefold()


def _words_only(text: str) -> str:
    """The words of a text, case-folded, without punctuation: to find a line inside another text."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def _allowed_edits(length: int) -> int:
    """Character edits under which two lines of this length are one line misread (1 per 10 chars)."""
    return 0 if length < 4 else max(1, length // 10)


def within_edits(a: str, b: str, limit: int) -> bool:
    """Whether the Levenshtein distance of ``a`` and ``b`` is at most ``limit`` (banded, early exit)."""
    if abs(len(a) - len(b)) > limit:
        return False
    if a == b:
        return True
    if limit == 0:
        return False
    if len(a) > len(b):
        a, b = b, a
    big = limit + 1
    previous = [j if j <= limit else big for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        low, high = max(1, i - limit), min(len(b), i + limit)
        current = [big] * (len(b) + 1)
        current[0] = i if i <= limit else big
        best = current[0]
        for j in range(low, high + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(previous[j - 1] + cost, previous[j] + 1, current[j - 1] + 1, big)
            current[j] = value
            best = min(best, value)
        if best > limit:
            return False
        previous = current
    return previous[len(b)] <= limit


class LineMerger:
    """The distinct lines of several OCR readings, in order of first appearance.

    A line seen again, exactly or misread by a few characters (at most one edit per ten characters,
    none under four characters), is a repeat: it is kept once, spelt as it was read most often (the
    first spelling on a tie), since a misreading rarely repeats itself. Lines whose digits differ are
    never repeats ("Revenue 12%" and "Revenue 15%", "Q3 plan" and "Q4 plan" are two lines): a figure
    that changes on screen is news, and OCR seldom reads one digit as another. Lines contained in
    ``known`` text (a segment's subtitles, burned in and also in a subtitle file) are repeats too.
    """

    def __init__(self, known: str = "") -> None:
        self._known = f" {_words_only(known)} "
        # (normal form, its digits, spelling -> times read)
        self._groups: list[tuple[str, str, dict[str, int]]] = []

    def add(self, lines: Iterable[str]) -> None:
        """Add one reading's lines (one picture's), in reading order."""
        for line in lines:
            text = " ".join(line.split())
            normal = _normal(text)
            if not normal or f" {_words_only(normal)} " in self._known:
                continue
            digits = "".join(char for char in normal if char.isdigit())
            limit = _allowed_edits(len(normal))
            for seen, seen_digits, spellings in self._groups:
                if seen_digits == digits and within_edits(
                    seen, normal, max(limit, _allowed_edits(len(seen)))
                ):
                    spellings[text] = spellings.get(text, 0) + 1
                    break
            else:
                self._groups.append((normal, digits, {text: 1}))

    @property
    def lines(self) -> list[str]:
        """The merged lines, each spelt as read most often."""
        return [max(spellings, key=spellings.__getitem__) for _, _, spellings in self._groups]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
