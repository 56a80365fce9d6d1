"""Page renders, images, keyframes and thumbnails on disk, addressed by unit id.

Images are stored at the size the loaders produced (the reranker's pixel budget), so at query time
the reranker reads a ready file and a PDF is never rendered twice. Every file is written to a
temporary name and renamed into place, so a killed process never leaves a half-written image under
a real name. Paths in payloads are relative to the store's root, so the data folder can move.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from indexer.units import PAGE, Unit

THUMBNAIL_SIZE = 384  # longest side, pixels
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class MediaRefs:
    """Where a unit's pictures are, relative to the media root."""

    image: str | None = None
    frames: tuple[str, ...] = ()
    thumbnail: str | None = None

    def payload(self) -> dict[str, object]:
        return {"image": self.image, "frames": list(self.frames), "thumbnail": self.thumbnail}


class MediaStore:
    """A folder of unit media: ``<root>/<id[:2]>/<id>/{image.png|image.jpg, frame-NNN.jpg, thumb.jpg}``."""

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
        """Write a unit's pictures (none for a text chunk) and return their references."""
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
        return MediaRefs(image_ref, tuple(frames), f"{rel}/thumb.jpg")

    def delete(self, unit_ids: Iterable[str]) -> None:
        """Remove the media of these units (missing ones are fine)."""
        for unit_id in unit_ids:
            shutil.rmtree(self.unit_dir(unit_id), ignore_errors=True)

    def unit_ids(self) -> set[str]:
        """Ids of every unit that has media on disk."""
        if not self.root.exists():
            return set()
        return {p.name for shard in self.root.iterdir() if shard.is_dir() for p in shard.iterdir()}


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
