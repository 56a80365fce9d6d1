"""A video segment's text: on-screen text read by OCR in its keyframes, and subtitle streams inside the
container. Real videos encoded with PyAV (text drawn on the frames with PIL, subtitle streams muxed as
FFmpeg writes them), the real rapidocr engine."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from indexer import ocr
from indexer.loaders.base import LoadOptions
from indexer.loaders.subtitles import load_embedded
from indexer.loaders.video import _signature as signature
from indexer.loaders.video import load_video_file, same_picture

FRAME_BUDGET = 8 * 32 * 32
SLIDE_SIZE = (320, 180)
FPS = 2
# Three slides; the second adds a line under the first's, the third is new.
PANGOLIN = ["Pangolin census"]
PANGOLIN_FLAMINGO = ["Pangolin census", "Flamingo budget"]
WALRUS = ["Walrus tariffs"]

needs_ocr = pytest.mark.skipif(not ocr.available(), reason="rapidocr is not installed")


def options(**kwargs) -> LoadOptions:
    return LoadOptions(**{"frame_max_pixels": FRAME_BUDGET, "segment_seconds": 3.0, **kwargs})


def slide(lines: Sequence[str], size: tuple[int, int] = SLIDE_SIZE) -> np.ndarray:
    """A light frame with dark lines of text, as a slide or a title card."""
    image = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((16, 20 + row * 36), line, font=ImageFont.load_default(size=24), fill=(20, 20, 20))
    return np.asarray(image)


def slides_frames() -> list[np.ndarray]:
    """6 s at 2 fps: 3 s of PANGOLIN, 1 s of PANGOLIN_FLAMINGO, 2 s of WALRUS."""
    return [slide(PANGOLIN)] * 6 + [slide(PANGOLIN_FLAMINGO)] * 2 + [slide(WALRUS)] * 4


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    fps: int = FPS,
    codec: str = "mpeg4",
    fmt: str | None = None,
    subtitles: Sequence[dict] = (),
) -> Path:
    """Encode frames (at a bit rate that keeps text sharp) and mux subtitle streams beside them.

    Each subtitle stream is ``{"codec": "subrip", "cues": [(start_s, end_s, text), ...], "language":
    "eng", "encoding": "utf-8"}``; its packets are written as a muxer receives them from FFmpeg's encoder
    (ASS events for ``ass``, a length prefix for ``mov_text``, plain text otherwise).
    """
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w", format=fmt) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 2_000_000
        streams = []
        for spec in subtitles:
            stream = container.add_stream(spec["codec"])
            # Text subtitle encoders refuse to open without an ASS header (FFmpeg's own default).
            stream.codec_context.subtitle_header = ASS_HEADER
            if spec.get("language"):
                stream.metadata["language"] = spec["language"]
            streams.append((stream, spec))
        for array in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        for stream, spec in streams:
            for order, (start, end, text) in enumerate(spec["cues"]):
                data = text.encode(spec.get("encoding", "utf-8"))
                if spec["codec"] == "mov_text":
                    data = len(data).to_bytes(2, "big") + data
                elif spec["codec"] == "ass":
                    data = f"{order},0,Default,,0,0,0,,{text}".encode()
                packet = av.Packet(data)
                packet.stream = stream
                packet.time_base = Fraction(1, 1000)
                packet.pts = packet.dts = round(start * 1000)
                packet.duration = round((end - start) * 1000)
                container.mux(packet)
    return path


ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
    b"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
    b"Alignment, MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)

PLAIN = [np.full((48, 64, 3), (40 * i % 255, 90, 160), np.uint8) for i in range(12)]  # 6 s, no text
CUES = [(0.5, 2.0, "An <i>aardvark</i> greets us"), (3.5, 5.0, "The okapi leaves")]


# -- OCR of keyframes ---------------------------------------------------------------------------------


@needs_ocr
def test_burned_in_text_is_each_segment_s_text_each_line_once(tmp_path: Path) -> None:
    path = write_video(tmp_path / "slides.mp4", slides_frames())
    engine = ocr.engine()
    before = engine.images_read
    units = list(load_video_file(path, options()))
    read = engine.images_read - before
    assert [(u.start_s, u.end_s, u.timestamps) for u in units] == [(0, 3, (0, 1, 2)), (3, 6, (3, 4, 5))]
    assert units[0].text == "Pangolin census"  # three keyframes, one line, once
    assert units[1].text.split("\n") == ["Pangolin census", "Flamingo budget", "Walrus tariffs"]
    # Six keyframes, three pictures: the keyframes at 1, 2 and 5 s show the picture read before them.
    assert read == 3
    assert units[0].words == () and units[1].words == ()  # boxes belong to one frame, not a segment
    assert "pangolin" in units[1].snippet.lower()


@needs_ocr
def test_a_picture_held_across_segments_gives_its_text_to_each(tmp_path: Path) -> None:
    path = write_video(tmp_path / "held.mp4", [slide(WALRUS)] * 12)  # 6 s of one slide
    engine = ocr.engine()
    before = engine.images_read
    units = list(load_video_file(path, options()))
    assert engine.images_read - before == 1  # read once
    assert [u.text for u in units] == ["Walrus tariffs", "Walrus tariffs"]


@needs_ocr
def test_subtitles_come_first_and_burned_in_copies_of_them_are_not_repeated(tmp_path: Path) -> None:
    frames = [slide(["Pangolin census", "Walrus tariffs"])] * 6
    path = write_video(tmp_path / "talk.mp4", frames)
    (tmp_path / "talk.srt").write_text("1\n00:00:00,000 --> 00:00:02,000\nthe pangolin CENSUS\n")
    (unit,) = list(load_video_file(path, options()))
    assert unit.text == "the pangolin CENSUS\nWalrus tariffs"


@needs_ocr
def test_ocr_off_reads_no_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "slides.mp4", slides_frames())
    engine = ocr.engine()
    before = engine.images_read
    units = list(load_video_file(path, options(ocr="off")))
    assert engine.images_read == before and [u.text for u in units] == ["", ""]
    always = list(load_video_file(path, options(ocr="always")))
    assert [u.text for u in always] == [u.text for u in load_video_file(path, options())]


@needs_ocr
def test_a_frame_reader_elsewhere_with_look_ahead_gives_the_same_units(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = write_video(tmp_path / "slides.mp4", slides_frames())
    expected = list(load_video_file(path, options(segment_seconds=1.0)))
    with ThreadPoolExecutor(1) as pool:
        sent = []

        def read_frame(image):
            sent.append(image.size)
            return pool.submit(ocr.recognize, image, native_detection=True)

        units = list(
            load_video_file(path, options(segment_seconds=1.0), read_frame=read_frame, lookahead_segments=3)
        )
    assert units == expected and len(sent) == 3
    assert [u.text for u in units][-1] == "Walrus tariffs"


def test_same_picture_tells_a_new_line_from_encoder_noise() -> None:
    base = slide(PANGOLIN)
    noisy = np.clip(base.astype(np.int16) + np.random.default_rng(0).integers(-6, 7, base.shape), 0, 255)
    assert same_picture(signature(Image.fromarray(base)), signature(Image.fromarray(noisy.astype(np.uint8))))
    assert not same_picture(
        signature(Image.fromarray(base)), signature(Image.fromarray(slide(PANGOLIN_FLAMINGO)))
    )
    one_digit = [slide(["Revenue 12%"]), slide(["Revenue 15%"])]
    assert not same_picture(*(signature(Image.fromarray(f)) for f in one_digit))


def test_lines_read_again_or_misread_count_once() -> None:
    merger = ocr.LineMerger()
    merger.add(["Pangolin census 2024", "Q3 revenue"])
    merger.add(["Pangolin censvs 2024", "Q4 revenue", "Next stops"])  # one letter misread; Q4 is news
    merger.add(["pangolin  census 2024", "Pangolin census 2024", "Next steps", "Next steps"])
    assert merger.lines == ["Pangolin census 2024", "Q3 revenue", "Q4 revenue", "Next steps"]
    merger.add(["Pangolin censvs 2024"] * 5)  # read so most often: the spelling kept
    assert merger.lines[0] == "Pangolin censvs 2024"
    short = ocr.LineMerger()
    short.add(["Q3", "Q4", "Q3", "ok"])
    assert short.lines == ["Q3", "Q4", "ok"]  # under four characters, one letter is another line
    known = ocr.LineMerger(known="Welcome, to the aardvark tour.")  # the segment's subtitles
    known.add(["the AARDVARK tour", "Welcome to", "Exit", "vark tour"])
    assert known.lines == ["Exit", "vark tour"]  # lines of whole subtitle words go; part of a word stays


def test_within_edits() -> None:
    assert ocr.within_edits("kitten", "sitting", 3) and not ocr.within_edits("kitten", "sitting", 2)
    assert ocr.within_edits("abc", "abc", 0) and not ocr.within_edits("abc", "abd", 0)
    assert ocr.within_edits("", "ab", 2) and not ocr.within_edits("", "abc", 2)
    assert ocr.within_edits("census", "censvs", 1) and ocr.within_edits("flamingo", "flamngo", 1)


# -- subtitle streams in the container ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "codec", "video"),
    [
        ("subrip.mkv", "matroska", "subrip", "mpeg4"),
        ("mov_text.mp4", "mp4", "mov_text", "mpeg4"),
        ("mov_text.mov", "mov", "mov_text", "mpeg4"),
        ("ass.mkv", "matroska", "ass", "mpeg4"),
        ("webvtt.webm", "webm", "webvtt", "libvpx"),
    ],
)
def test_an_embedded_text_stream_gives_each_segment_its_text(
    tmp_path: Path, name: str, fmt: str, codec: str, video: str
) -> None:
    if video not in av.codecs_available:
        pytest.skip(f"no {video} encoder in this FFmpeg build")
    path = write_video(
        tmp_path / name, PLAIN, fmt=fmt, codec=video, subtitles=[{"codec": codec, "cues": CUES}]
    )
    units = list(load_video_file(path, options(ocr="off")))
    assert [u.text for u in units] == ["An aardvark greets us", "The okapi leaves"]
    cues = load_embedded(path, name)
    assert [(c.start, c.end) for c in cues] == [(0.5, 2.0), (3.5, 5.0)]


def test_the_default_stream_is_read_else_the_first(tmp_path: Path) -> None:
    streams = [
        {"codec": "subrip", "cues": [(0.5, 2.0, "first stream words")], "language": "fre"},
        {"codec": "subrip", "cues": [(0.5, 2.0, "second stream words")], "language": "eng"},
    ]
    path = write_video(tmp_path / "two.mkv", PLAIN, fmt="matroska", subtitles=streams)
    assert [c.text for c in load_embedded(path, "two.mkv")] == ["first stream words"]
    # Mark the second default (and the first not), in a remux: the second is read.
    marked = tmp_path / "marked.mkv"
    with av.open(str(path)) as source, av.open(str(marked), "w", format="matroska") as target:
        mapping = {}
        for stream in source.streams:
            out = target.add_stream_from_template(stream)
            if stream.type == "subtitle":
                out.disposition = av.stream.Disposition.default if stream.index == 2 else 0
            mapping[stream.index] = out
        for packet in source.demux():
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            target.mux(packet)
    with av.open(str(marked)) as check:
        defaults = [
            bool(int(s.disposition) & int(av.stream.Disposition.default)) for s in check.streams.subtitles
        ]
    if defaults != [False, True]:
        pytest.skip(f"this FFmpeg's matroska muxer does not keep dispositions: {defaults}")
    assert [c.text for c in load_embedded(marked, "marked.mkv")] == ["second stream words"]


def test_a_sidecar_wins_over_the_embedded_stream(tmp_path: Path) -> None:
    path = write_video(
        tmp_path / "film.mkv", PLAIN, fmt="matroska", subtitles=[{"codec": "subrip", "cues": CUES}]
    )
    (tmp_path / "film.srt").write_text("1\n00:00:00,500 --> 00:00:02,000\nA sidecar zebra\n")
    units = list(load_video_file(path, options(ocr="off")))
    assert [u.text for u in units] == ["A sidecar zebra", ""]


def test_a_sidecar_that_cannot_be_read_leaves_the_embedded_stream(tmp_path: Path, caplog) -> None:
    path = write_video(
        tmp_path / "film.mkv", PLAIN, fmt="matroska", subtitles=[{"codec": "subrip", "cues": CUES}]
    )
    (tmp_path / "film.srt").write_bytes(bytes(range(256)) * 4)  # binary junk named .srt
    with caplog.at_level(logging.WARNING, logger="indexer.loaders.subtitles"):
        units = list(load_video_file(path, options(ocr="off")))
    assert [u.text for u in units] == ["An aardvark greets us", "The okapi leaves"]
    assert "film.srt ignored: binary data, not text" in caplog.text


def test_an_embedded_stream_that_is_not_utf8_is_read_as_cp1252(tmp_path: Path) -> None:
    cues = [(0.5, 2.0, "Señor café"), (3.5, 5.0, "Adiós")]
    spec = {"codec": "subrip", "cues": cues, "encoding": "cp1252"}
    path = write_video(tmp_path / "old.mkv", PLAIN, fmt="matroska", subtitles=[spec])
    units = list(load_video_file(path, options(ocr="off")))
    assert [u.text for u in units] == ["Señor café", "Adiós"]


def test_a_video_without_subtitle_streams_has_no_cues(tmp_path: Path) -> None:
    path = write_video(tmp_path / "plain.mkv", PLAIN, fmt="matroska")
    assert load_embedded(path, "plain.mkv") == []
    assert [u.text for u in load_video_file(path, options(ocr="off"))] == ["", ""]
