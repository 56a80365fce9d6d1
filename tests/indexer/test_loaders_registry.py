"""The loader registry: extension to loader, the unsupported-format error, every corpus file end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    MediaDecodeError,
    UnsupportedFormatError,
)
from indexer.loaders import LOADERS, SUPPORTED_EXTENSIONS, load, loader_for
from indexer.loaders.base import LoadOptions
from indexer.loaders.image import load_image_file
from indexer.loaders.office import load_office
from indexer.loaders.pdf import load_pdf
from indexer.loaders.text import load_html, load_markdown, load_plain_text
from indexer.loaders.video import load_video_file
from tests.corpus import Corpus

SMALL = LoadOptions(image_max_pixels=32 * 32 * 32, frame_max_pixels=4 * 32 * 32)

EXPECTED = {
    ".pdf": load_pdf,
    **dict.fromkeys([".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"], load_image_file),
    **dict.fromkeys([".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"], load_video_file),
    ".txt": load_plain_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    **dict.fromkeys(
        [".docx", ".pptx", ".xlsx", ".odt", ".odp", ".ods", ".rtf", ".doc", ".ppt", ".xls"], load_office
    ),
}


def test_every_extension_has_its_loader() -> None:
    assert LOADERS == EXPECTED
    assert set(EXPECTED) == SUPPORTED_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in SUPPORTED_EXTENSIONS)


@pytest.mark.parametrize("name", ["REPORT.PDF", "Photo.JpG", "a.b.MP4", "notes.Txt"])
def test_extensions_are_matched_case_insensitively(name: str) -> None:
    assert loader_for(name) is EXPECTED[Path(name).suffix.lower()]


@pytest.mark.parametrize("name", ["slides.key", "archive.tar.gz", "Makefile", "data.csv"])
def test_unsupported_format_lists_what_is_supported(name: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=name.replace(".", r"\.")) as info:
        loader_for(name)
    message = str(info.value)
    assert "supported:" in message and ".pdf" in message and ".mp4" in message and ".md" in message


def test_load_refuses_an_unsupported_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "slides.key"
    path.write_bytes(b"PK")
    with pytest.raises(UnsupportedFormatError, match=r"'\.key' files"):
        load(path)  # not only when iterated


MODALITY = {"pdf": "page", "md": "text", "txt": "text", "html": "text", "mp4": "video"}


def test_every_good_corpus_file_loads(corpus: Corpus) -> None:
    assert len(corpus.good) == 12
    for path in corpus.good:
        units = list(load(str(path), SMALL))
        assert units, path
        assert [u.index for u in units] == list(range(len(units)))
        suffix = path.suffix.lstrip(".")
        assert {u.modality for u in units} == {MODALITY.get(suffix, "image")}, path
        assert all(u.title for u in units)


BAD = {
    "encrypted_pdf": EncryptedDocumentError,
    "corrupt_pdf": CorruptDocumentError,
    "empty_pdf": EmptyDocumentError,
    "corrupt_png": MediaDecodeError,
    "corrupt_mp4": CorruptDocumentError,
    "empty_txt": EmptyDocumentError,
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_every_bad_corpus_file_fails_with_a_typed_error_naming_it(corpus: Corpus, name: str) -> None:
    path: Path = getattr(corpus, name)
    assert path in corpus.bad
    with pytest.raises(BAD[name]) as info:
        list(load(path, SMALL))
    assert path.name in str(info.value)


def test_bad_folder_holds_exactly_the_bad_files(corpus: Corpus) -> None:
    assert set(corpus.bad) == {getattr(corpus, name) for name in BAD}
    assert set((corpus.root / "bad").iterdir()) == set(corpus.bad)
    assert set(corpus.root.rglob("*.*")) == set(corpus.files)
