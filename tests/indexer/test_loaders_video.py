"""The video loader on real encoded videos: segments, keyframe sampling, containers, limits, errors."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from core.errors import CorruptDocumentError, EmptyDocumentError, MediaNotFoundError, MediaTooLargeError
from core.media import MediaPolicy
from indexer.loaders.base import LoadOptions
from indexer.loaders.video import load_video_file
from indexer.units import Unit
from tests.conftest import encode_video
from tests.corpus import (
    CLIP_BITS,
    CLIP_COLORS,
    CLIP_FPS,
    CLIP_SECONDS,
    CLIP_SIZE,
    Corpus,
    clip_frames,
)

FRAME_BUDGET = 4 * 32 * 32


def _options(**kwargs) -> LoadOptions:
    return LoadOptions(**{"frame_max_pixels": FRAME_BUDGET, **kwargs})


def _frame_number(frame: Image.Image) -> int:
    """Which frame of clip.mp4 this is, read from the binary blocks of its bottom half."""
    pixels = np.asarray(frame.convert("L"), np.float64)
    bottom = pixels[frame.height * 5 // 8 : frame.height * 7 // 8]
    block = frame.width * 8 / CLIP_SIZE[0]  # width of one 8 px block after resizing
    number = 0
    for bit in range(CLIP_BITS):
        middle = bottom[:, round((bit + 0.3) * block) : round((bit + 0.7) * block)]
        number = number * 2 + int(middle.mean() > 128)
    return number


def _top_color(frame: Image.Image) -> np.ndarray:
    return np.asarray(frame, np.float64)[: frame.height // 4].reshape(-1, 3).mean(axis=0)


def _check_frames_match_their_timestamps(units: list[Unit]) -> None:
    for unit in units:
        for frame, seconds in zip(unit.frames, unit.timestamps, strict=True):
            assert _frame_number(frame) == round(seconds * CLIP_FPS)
            expected = CLIP_COLORS[min(int(seconds // 10), len(CLIP_COLORS) - 1)]
            assert np.abs(_top_color(frame) - expected).max() < 25


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """clip.mp4's frames in every other supported container; the mkv has 30 s of audio."""
    folder = tmp_path_factory.mktemp("containers")
    frames = clip_frames()
    made = {
        "mkv": encode_video(folder / "clip.mkv", frames, fps=CLIP_FPS, audio_seconds=30),
        "avi": encode_video(folder / "clip.avi", frames, fps=CLIP_FPS),
        "mov": encode_video(folder / "clip.mov", frames, fps=CLIP_FPS),
        "m4v": encode_video(folder / "clip.m4v", frames, fps=CLIP_FPS, fmt="mp4"),
    }
    if "libvpx" in av.codecs_available:
        made["webm"] = encode_video(folder / "clip.webm", frames, fps=CLIP_FPS, codec="libvpx")
    return made


def test_segments_cover_the_video_and_the_last_ends_at_its_end(corpus: Corpus) -> None:
    units = list(load_video_file(corpus.clip_mp4, _options(segment_seconds=10.0)))
    assert [u.index for u in units] == [0, 1, 2]
    assert [(u.start_s, u.end_s) for u in units] == [(0.0, 10.0), (10.0, 20.0), (20.0, CLIP_SECONDS)]
    assert {(u.modality, u.title, u.text) for u in units} == {("video", "clip", "")}
    for unit in units:
        assert len(unit.frames) == len(unit.timestamps) >= 1
        assert list(unit.timestamps) == sorted(unit.timestamps)
        assert all(unit.start_s <= t < unit.end_s for t in unit.timestamps)
    _check_frames_match_their_timestamps(units)


def test_keyframes_follow_keyframe_fps_when_under_the_cap(corpus: Corpus) -> None:
    units = list(load_video_file(corpus.clip_mp4, _options(keyframe_fps=0.5, max_frames_per_segment=8)))
    assert [u.timestamps for u in units] == [(0, 2, 4, 6, 8), (10, 12, 14, 16, 18), (20, 22)]
    _check_frames_match_their_timestamps(units)


def test_the_cap_spreads_keyframes_over_the_whole_segment(corpus: Corpus) -> None:
    # 2 fps would give 20 keyframes per 10 s segment; the cap of 4 spaces them 2.5 s apart.
    units = list(load_video_file(corpus.clip_mp4, _options(keyframe_fps=2.0, max_frames_per_segment=4)))
    assert [u.timestamps for u in units] == [(0, 2.5, 5, 7.5), (10, 12.5, 15, 17.5), (20, 22.5)]
    _check_frames_match_their_timestamps(units)


@pytest.mark.parametrize("max_frames", [1, 3, 8])
def test_no_segment_exceeds_the_frame_cap(corpus: Corpus, max_frames: int) -> None:
    units = list(
        load_video_file(corpus.clip_mp4, _options(keyframe_fps=4.0, max_frames_per_segment=max_frames))
    )
    assert all(1 <= len(u.frames) <= max_frames for u in units)
    assert [len(u.frames) for u in units[:2]] == [max_frames, max_frames]
    assert all(u.timestamps[0] == u.start_s for u in units)  # each segment starts with its first frame


def test_segment_length_that_does_not_divide_the_video(corpus: Corpus) -> None:
    units = list(load_video_file(corpus.clip_mp4, _options(segment_seconds=4.0)))
    assert [(u.start_s, u.end_s) for u in units] == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 23)]
    _check_frames_match_their_timestamps(units)


def test_keyframes_are_resized_to_the_frame_budget(corpus: Corpus) -> None:
    budget = 2 * 32 * 32
    units = list(load_video_file(corpus.clip_mp4, _options(frame_max_pixels=budget)))
    frames = [f for u in units for f in u.frames]
    assert frames and all(f.mode == "RGB" for f in frames)
    assert all(f.width % 32 == 0 and f.height % 32 == 0 and f.width * f.height <= budget for f in frames)
    # A budget above the frame size keeps it as the reranker would (snapped to multiples of 32).
    (big,) = {
        f.size
        for u in load_video_file(corpus.clip_mp4, _options(frame_max_pixels=1024 * 32 * 32))
        for f in u.frames
    }
    assert big == (64, 64) and CLIP_SIZE == (64, 48)


@pytest.mark.parametrize("kind", ["mkv", "avi", "mov", "m4v", "webm"])
def test_every_container_gives_the_same_segments(
    corpus: Corpus, containers: dict[str, Path], kind: str
) -> None:
    if kind not in containers:
        pytest.skip(f"no encoder for {kind} in this FFmpeg build")
    expected = list(load_video_file(corpus.clip_mp4, _options()))
    units = list(load_video_file(containers[kind], _options()))
    # The mkv's 30 s of audio do not stretch the video: the last segment still ends at 23 s.
    assert [(u.start_s, u.end_s) for u in units] == [(u.start_s, u.end_s) for u in expected]
    assert [u.timestamps for u in units] == [u.timestamps for u in expected]
    _check_frames_match_their_timestamps(units)


def test_the_consumer_can_stop_early(corpus: Corpus) -> None:
    units = load_video_file(corpus.clip_mp4, _options(segment_seconds=2.0))
    first = next(units)
    assert (first.start_s, first.end_s) == (0.0, 2.0)
    units.close()  # closes the container; nothing else is decoded


def test_duration_limit_is_checked_before_decoding(corpus: Corpus) -> None:
    options = _options(policy=MediaPolicy(max_video_seconds=5.0))
    with pytest.raises(MediaTooLargeError, match=r"clip\.mp4: video is 23\.0 s long; the limit is 5 s"):
        next(load_video_file(corpus.clip_mp4, options))


def test_frame_pixel_limit(corpus: Corpus) -> None:
    with pytest.raises(MediaTooLargeError, match=r"64x48"):
        next(load_video_file(corpus.clip_mp4, _options(policy=MediaPolicy(max_image_pixels=1000))))


def test_byte_limit(corpus: Corpus) -> None:
    size = corpus.clip_mp4.stat().st_size
    with pytest.raises(MediaTooLargeError, match=str(size)):
        next(load_video_file(corpus.clip_mp4, _options(policy=MediaPolicy(max_video_bytes=size - 1))))
    # The image byte limit does not apply to videos.
    assert list(load_video_file(corpus.clip_mp4, _options(policy=MediaPolicy(max_bytes=10))))


@pytest.mark.parametrize("content", [None, b"this is not a video at all"], ids=["truncated", "text"])
def test_corrupt_video(corpus: Corpus, tmp_path: Path, content: bytes | None) -> None:
    path = corpus.corrupt_mp4
    if content is not None:
        path = tmp_path / "fake.mp4"
        path.write_bytes(content)
    with pytest.raises(CorruptDocumentError, match=rf"{path.name}: not a video we can decode"):
        list(load_video_file(path, _options()))


def test_a_file_without_a_video_stream_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "voice.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(EmptyDocumentError, match=r"voice\.mkv: the file has no video stream"):
        list(load_video_file(path, _options()))


def test_a_single_frame_video(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "still.mp4", clip_frames()[:1], fps=CLIP_FPS)
    (unit,) = list(load_video_file(path, _options()))
    assert unit.timestamps == (0.0,) and unit.start_s == 0.0 and unit.end_s == pytest.approx(1 / CLIP_FPS)


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match=r"gone\.mp4"):
        next(load_video_file(tmp_path / "gone.mp4", _options()))
