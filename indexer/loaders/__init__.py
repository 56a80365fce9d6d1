"""Loaders by file type: which loader reads a file, and a one-call ``load(path, options)``.

Every loader is a generator function ``(path, options) -> Iterator[Unit]`` (see
:mod:`indexer.loaders.base`); nothing is read until the first unit is asked for. PDFs need
pypdfium2 and videos PyAV, OCR rapidocr, office files python-docx, python-pptx or openpyxl (or
LibreOffice); each is imported only when such a file is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import UnsupportedFormatError
from core.media import describe_source
from indexer.loaders import image, office, pdf, subtitles, text, video
from indexer.loaders.base import Loader, LoadOptions
from indexer.units import Unit

# Lower-case extension, with its dot (as ``Path.suffix``), to loader.
LOADERS: dict[str, Loader] = {
    **dict.fromkeys(pdf.EXTENSIONS, pdf.load_pdf),
    **dict.fromkeys(image.EXTENSIONS, image.load_image_file),
    **dict.fromkeys(video.EXTENSIONS, video.load_video_file),
    **dict.fromkeys(text.PLAIN_EXTENSIONS, text.load_plain_text),
    **dict.fromkeys(text.MARKDOWN_EXTENSIONS, text.load_markdown),
    **dict.fromkeys(text.HTML_EXTENSIONS, text.load_html),
    **dict.fromkeys(office.EXTENSIONS, office.load_office),
}

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(LOADERS)

# What a file's units depend on besides its own bytes and the load options, by extension: a video's
# sidecar subtitles (and the video loader's text version). Part of the file's fingerprint at ingest.
IDENTITIES: dict[str, Callable[[Path], str]] = dict.fromkeys(video.EXTENSIONS, video.identity)

__all__ = [
    "IDENTITIES",
    "LOADERS",
    "SUPPORTED_EXTENSIONS",
    "LoadOptions",
    "Loader",
    "identity",
    "load",
    "loader_for",
    "passed_over",
]


def loader_for(path: str | os.PathLike[str]) -> Loader:
    """Return the loader for a file, chosen by its extension (case-insensitive).

    Args:
        path: the file; it is not opened.

    Returns:
        The loader.

    Raises:
        UnsupportedFormatError: no loader knows the extension; the message lists those supported.
    """
    suffix = Path(path).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        kind = f"'{suffix}' files" if suffix else "files without an extension"
        raise UnsupportedFormatError(
            f"{describe_source(Path(path))}: cannot index {kind}; supported: "
            f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}"
        )
    return loader


def load(path: str | os.PathLike[str], options: LoadOptions | None = None) -> Iterator[Unit]:
    """Yield the units of a file with the loader its extension picks.

    The format is checked at once; the file is read lazily, as the units are consumed.

    Args:
        path: the file.
        options: how to read and size content; defaults to :class:`LoadOptions()`.

    Returns:
        An iterator over the file's units.

    Raises:
        UnsupportedFormatError: no loader knows the extension (raised by this call, not on iteration).
    """
    loader = loader_for(path)
    return loader(Path(path), options or LoadOptions())


def identity(path: str | os.PathLike[str]) -> str:
    """What else a file's units depend on (see :data:`IDENTITIES`): "" for most types.

    A video's is its loader's text version and which sidecar subtitles it has, with their hash, so a
    sidecar that appears, changes or vanishes changes it.
    """
    describe = IDENTITIES.get(Path(path).suffix.lower())
    return describe(Path(path)) if describe is not None else ""


def passed_over(path: str | os.PathLike[str]) -> str:
    """Why a file of a type with no loader is not indexed, in a few words for a skipped-files list.

    Subtitles beside a video are named as such: the video reads them (:func:`subtitles.find_sidecar`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in subtitles.SIDECAR_EXTENSIONS:
        stem = path.stem
        while stem:
            for ext in video.EXTENSIONS:
                for candidate in (path.with_name(stem + ext), path.with_name(stem + ext.upper())):
                    if candidate.is_file():
                        used = subtitles.find_sidecar(candidate)
                        if used == path:
                            return f"subtitles, read with {candidate.name}"
                        return f"subtitles not used: {candidate.name} reads {used.name if used else 'none'}"
            stem = stem.rpartition(".")[0]  # talk.en.srt belongs to talk.mp4
        return "subtitles with no video of the same name beside them"
    return f"unsupported type '{suffix}'" if suffix else "unsupported type (no extension)"
