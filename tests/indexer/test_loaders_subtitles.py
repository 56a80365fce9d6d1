"""Sidecar subtitles give each video segment its time-aligned text."""

from __future__ import annotations

import codecs
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.loaders import LoadOptions
from indexer.loaders.subtitles import NotTextError, decode, decode_bytes, find_sidecar, parse, text_between
from indexer.loaders.video import load_video_file
from tests.corpus import Corpus

OPTIONS = LoadOptions(frame_max_pixels=4 * 32 * 32, segment_seconds=10.0)

SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Welcome</i> to the café tour

2
00:00:12,000 --> 00:00:14,000
The aardvark exhibit

3
00:00:21,000 --> 00:00:22,500
{\\an8}Goodbye, señor
"""

VTT = """WEBVTT

intro
00:01.000 --> 00:03.000 align:start
Hello <v Bob>there</v>

00:00:04.5 --> 00:00:06.000
second line
"""


def test_srt_and_vtt_parse_with_markup_dropped() -> None:
    cues = parse(SRT)
    assert [(c.start, c.end) for c in cues] == [(1.0, 3.5), (12.0, 14.0), (21.0, 22.5)]
    assert cues[0].text == "Welcome to the café tour" and cues[2].text == "Goodbye, señor"
    vtt = parse(VTT)
    assert [(c.start, c.end, c.text) for c in vtt] == [(1.0, 3.0, "Hello there"), (4.5, 6.0, "second line")]
    assert text_between(cues, 10, 20) == "The aardvark exhibit"


def test_garbage_and_wrong_encodings_never_crash() -> None:
    assert parse("not a subtitle file\n\n99:xx --> what") == []
    assert decode(SRT.encode("cp1252")) == SRT  # not UTF-8: read as cp1252
    assert "señor" in decode(b"\xef\xbb\xbf" + SRT.encode())  # a BOM is stripped
    with pytest.raises(NotTextError, match="binary data, not text"):
        decode(bytes(range(256)))


WINDOWS = "1\n00:00:01,000 --> 00:00:03,000\n\u201cCaf\u00e9\u201d costs 5 \u20ac \u2013 d\u00e9j\u00e0 vu\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (WINDOWS.encode("cp1252"), "cp1252"),  # curly quotes, euro and dash: cp1252's own bytes
        (codecs.BOM_UTF8 + WINDOWS.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF16_LE + WINDOWS.encode("utf-16-le"), "utf-16-le"),
        (codecs.BOM_UTF16_BE + WINDOWS.encode("utf-16-be"), "utf-16-be"),
        (WINDOWS.encode("utf-16-le"), "utf-16-le"),  # no BOM: told by its zero bytes
        (WINDOWS.encode("utf-16-be"), "utf-16-be"),
        (codecs.BOM_UTF32_LE + WINDOWS.encode("utf-32-le"), "utf-32-le"),  # its BOM starts UTF-16's
        (WINDOWS.encode("utf-8") + b"\x1a", "utf-8"),  # a DOS end-of-file mark
    ],
    ids=["cp1252", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le", "utf16be", "utf32le-bom", "ctrl-z"],
)
def test_encodings_are_recognised(data: bytes, encoding: str) -> None:
    text, found = decode_bytes(data)
    assert (text, found) == (WINDOWS, encoding)


def test_one_byte_encodings_and_stray_bytes() -> None:
    # 0x81 is undefined in cp1252: Latin-1 reads everything.
    assert decode_bytes("Señor".encode("latin-1") + b"\x81") == ("Señor\x81", "latin-1")
    # UTF-8 with one bad byte stays UTF-8 (its good accents outnumber the bad byte).
    text, encoding = decode_bytes("Déjà vu, café, señor ".encode() + b"\xff")
    assert encoding == "utf-8" and text == "Déjà vu, café, señor \ufffd"
    # A stray control character is dropped; many of them, or a NUL, are a binary file.
    assert decode_bytes(b"Hello\x02 there") == ("Hello there", "utf-8")
    for binary in (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\x01\x02\x03\x04 text \x05\x06"):
        with pytest.raises(NotTextError):
            decode_bytes(binary)


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-16-le"])
def test_a_sidecar_in_another_encoding_gives_its_text(corpus: Corpus, tmp_path: Path, encoding: str) -> None:
    video = Path(shutil.copy(corpus.clip_mp4, tmp_path / "tour.mp4"))
    (tmp_path / "tour.srt").write_bytes(SRT.encode(encoding))  # "utf-16" writes a BOM
    units = list(load_video_file(video, OPTIONS))
    assert [u.text for u in units] == ["Welcome to the café tour", "The aardvark exhibit", "Goodbye, señor"]


def test_a_binary_sidecar_is_refused_with_a_warning(corpus: Corpus, tmp_path: Path, caplog) -> None:
    video = Path(shutil.copy(corpus.clip_mp4, tmp_path / "tour.mp4"))
    (tmp_path / "tour.srt").write_bytes(
        np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    )
    with caplog.at_level(logging.WARNING, logger="indexer.loaders.subtitles"):
        units = list(load_video_file(video, OPTIONS))
    assert len(units) == 3 and all(u.text == "" for u in units)
    assert "tour.mp4: subtitles tour.srt ignored: binary data, not text" in caplog.text


def test_each_segment_gets_the_subtitles_shown_during_it(corpus: Corpus, tmp_path: Path) -> None:
    video = Path(shutil.copy(corpus.clip_mp4, tmp_path / "tour.mp4"))
    (tmp_path / "tour.srt").write_bytes(SRT.encode("cp1252"))  # a Windows editor's file
    assert find_sidecar(video) == tmp_path / "tour.srt"
    units = list(load_video_file(video, OPTIONS))
    assert [u.text for u in units] == ["Welcome to the café tour", "The aardvark exhibit", "Goodbye, señor"]


def test_a_broken_sidecar_leaves_the_video_indexed(corpus: Corpus, tmp_path: Path) -> None:
    video = Path(shutil.copy(corpus.clip_mp4, tmp_path / "tour.mp4"))
    (tmp_path / "tour.en.vtt").write_bytes(b"\x00\xff garbage \x81\x82")
    assert find_sidecar(video) == tmp_path / "tour.en.vtt"
    units = list(load_video_file(video, OPTIONS))
    assert len(units) == 3 and all(u.text == "" for u in units)
