"""Sidecar subtitles give each video segment its time-aligned text."""

from __future__ import annotations

import shutil
from pathlib import Path

from indexer.loaders import LoadOptions
from indexer.loaders.subtitles import decode, find_sidecar, parse, text_between
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
    assert isinstance(decode(bytes(range(256))), str)


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
