"""Page renders, images, keyframes, thumbnails and word boxes on disk, addressed by unit id.

Images are stored at the size the loaders produced (the reranker's pixel budget), so at query time
the reranker reads a ready file and a PDF is never rendered twice. A page's or picture's words with
their boxes (text layer or OCR) are kept beside it as ``words.json``, read only for the hits a search
returns, so the payloads every query fetches stay small. Every file is written to a
temporary name and renamed into place, so a killed process never leaves a half-written image under
a real name. Paths in payloads are relative to the store's root, so the data folder can move.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from indexer.units import PAGE, Unit, Word

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 384  # longest side, pixels
_JPEG_QUALITY = 90
WORDS_FILE = "words.json"
# A words file larger than this is not read (a dense page's is tens of KiB).
MAX_WORDS_BYTES = 8 * 2**20


@dataclass(frozen=True)
class MediaRefs:
    """Where a unit's pictures are, relative to the media root."""

    image: str | None = None
    frames: tuple[str, ...] = ()
    thumbnail: str | None = None
    words: str | None = None  # the words file, when the unit has words

    def payload(self) -> dict[str, object]:
        return {
            "image": self.image,
            "frames": list(self.frames),
            "thumbnail": self.thumbnail,
            "words_file": self.words,
        }


class MediaStore:
    """A folder of unit media: ``<root>/<id[:2]>/<id>/{image.png|image.jpg, frame-NNN.jpg, thumb.jpg,
    words.json}``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def unit_dir(self, unit_id: str) -> Path:
        return self.root / unit_id[:2] / unit_id

    def resolve(self, ref: str) -> Path:
        """The absolute path of a reference stored in a payload."""
        path = (self.root / ref).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"media reference {ref!r} points outside the media store")
        return path

    def put(self, unit_id: str, unit: Unit) -> MediaRefs:
        """Write a unit's pictures (none for a text chunk) and words, and return their references."""
        if unit.image is None and not unit.frames:
            return MediaRefs()
        folder = self.unit_dir(unit_id)
        folder.mkdir(parents=True, exist_ok=True)
        rel = folder.relative_to(self.root).as_posix()
        image_ref = None
        if unit.image is not None:
            # Pages are mostly text: lossless keeps small print legible for the reranker.
            name = "image.png" if unit.modality == PAGE else "image.jpg"
            if unit.image_png is not None and name == "image.png":
                _write_atomic(unit.image_png, folder / name)  # encoded already, by a render worker
            else:
                _save_atomic(unit.image, folder / name)
            image_ref = f"{rel}/{name}"
        frames = []
        for i, frame in enumerate(unit.frames):
            _save_atomic(frame, folder / f"frame-{i:03d}.jpg")
            frames.append(f"{rel}/frame-{i:03d}.jpg")
        if unit.thumbnail_jpg is not None:
            _write_atomic(unit.thumbnail_jpg, folder / "thumb.jpg")
        else:
            cover = unit.image if unit.image is not None else unit.frames[len(unit.frames) // 2]
            _save_atomic(thumbnail(cover), folder / "thumb.jpg")
        words_ref = None
        if unit.words:
            _write_atomic(encode_words(unit.words), folder / WORDS_FILE)
            words_ref = f"{rel}/{WORDS_FILE}"
        return MediaRefs(image_ref, tuple(frames), f"{rel}/thumb.jpg", words_ref)

    def words(self, ref: str | None) -> tuple[Word, ...]:
        """The words a unit's words file holds; empty when there is none, or it cannot be read.

        A missing, oversized or damaged file (or a bad entry in it) means no boxes for that unit,
        never an error: the boxes only decorate a hit.
        """
        if not ref:
            return ()
        try:
            path = self.resolve(ref)
            if path.stat().st_size > MAX_WORDS_BYTES:
                logger.warning("words file %s is over %d bytes: not read", ref, MAX_WORDS_BYTES)
                return ()
            return decode_words(path.read_bytes())
        except (OSError, ValueError) as exc:
            logger.debug("words file %s cannot be read: %s", ref, exc)
            return ()

    def delete(self, unit_ids: Iterable[str]) -> None:
        """Remove the media of these units (missing ones are fine)."""
        for unit_id in unit_ids:
            shutil.rmtree(self.unit_dir(unit_id), ignore_errors=True)

    def unit_ids(self) -> set[str]:
        """Ids of every unit that has media on disk."""
        if not self.root.exists():
            return set()
        return {p.name for shard in self.root.iterdir() if shard.is_dir() for p in shard.iterdir()}


def encode_words(words: Iterable[Word]) -> bytes:
    """The bytes of a words file: ``{"words": [[text, x0, y0, x1, y1], ...]}``."""
    return json.dumps({"words": [list(w) for w in words]}, ensure_ascii=False, separators=(",", ":")).encode()


def decode_words(data: bytes | str) -> tuple[Word, ...]:
    """The words of a words file (or of an earlier payload's ``words`` list, as JSON); entries that
    are not ``[text, x0, y0, x1, y1]`` with a box inside 0..1 are skipped.

    Raises:
        ValueError: not JSON.
    """
    parsed = json.loads(data)
    entries = parsed.get("words") if isinstance(parsed, dict) else parsed
    return words_from(entries)


def words_from(entries: object) -> tuple[Word, ...]:
    """Valid words of a list of ``[text, x0, y0, x1, y1]`` entries (bad entries are skipped)."""
    if not isinstance(entries, list | tuple):
        return ()
    words: list[Word] = []
    number = (int, float)
    for entry in entries:
        if type(entry) not in (list, tuple) or len(entry) != 5:
            continue
        text, x0, y0, x1, y1 = entry
        if type(text) is not str or not text:
            continue
        if (
            type(x0) not in number
            or type(y0) not in number
            or type(x1) not in number
            or type(y1) not in number
        ):
            continue
        if 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1:  # NaN fails every comparison
            words.append((text, float(x0), float(y0), float(x1), float(y1)))
    return tuple(words)


def thumbnail(cover: Image.Image) -> Image.Image:
    """The thumbnail of a unit's picture: at most :data:`THUMBNAIL_SIZE` pixels on its longest side."""
    thumb = cover.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return thumb


def encode(image: Image.Image, suffix: str) -> bytes:
    """The bytes :meth:`MediaStore.put` writes for ``image`` in a file ending with ``suffix``."""
    out = io.BytesIO()
    _encode(image, out, suffix)
    return out.getvalue()


def encode_page(image: Image.Image) -> tuple[bytes, bytes]:
    """A page render's stored files, encoded as :meth:`MediaStore.put` would: (PNG, thumbnail JPEG).

    Render workers call it so the process that writes the media store does not encode again.
    """
    return encode(image, ".png"), encode(thumbnail(image), ".jpg")


def _encode(image: Image.Image, f: BinaryIO, suffix: str) -> None:
    if suffix == ".png":
        # Level 1: a third faster than the default 6 and, for renders of text, no larger.
        image.save(f, format="PNG", compress_level=1)
    else:
        image.convert("RGB").save(f, format="JPEG", quality=_JPEG_QUALITY)


def _save_atomic(image: Image.Image, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            _encode(image, f, path.suffix)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_atomic(data: bytes, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
