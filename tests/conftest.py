"""Session fixtures: a tiny random Qwen3-VL reranker with the real Qwen vocabulary, and real media files.

Everything is built offline in a temporary folder; the reranker loads it through the same
``from_pretrained`` path a hub id takes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# A wide init and a seed picked so that random scores spread over (0, 1), about half on each side of
# 0.5 and none saturated: parity on scores that all sit at 0.5 (or at 0 or 1) would prove little.
TINY_INIT_RANGE = 0.4
TINY_SEED = 7


@pytest.fixture(scope="session")
def qwen_tokenizer():
    from reranker.replica import build_qwen_tokenizer

    return build_qwen_tokenizer()


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory, qwen_tokenizer) -> Path:
    from reranker.replica import save_replica, tiny_config

    path = tmp_path_factory.mktemp("tiny-qwen3-vl-reranker")
    config = tiny_config(qwen_tokenizer)
    return save_replica(path, config, qwen_tokenizer, seed=TINY_SEED, initializer_range=TINY_INIT_RANGE)


@pytest.fixture(scope="session")
def tiny_reranker(tiny_reranker_dir):
    from reranker import Qwen3VLReranker

    return Qwen3VLReranker(str(tiny_reranker_dir), device="cpu", dtype="float32")


def encode_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    fps: int = 2,
    codec: str = "mpeg4",
    fmt: str | None = None,
    audio_seconds: int = 0,
) -> Path:
    """Write RGB uint8 frames (all one size) as a real video file, optionally with silent audio."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=8000) if audio_seconds else None
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            silence = np.zeros((1, 8000 * audio_seconds), np.int16)
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 8000, 0
            for packet in [*audio.encode(frame), *audio.encode()]:
                container.mux(packet)
    return path


def write_video(path: Path, colors: Sequence[tuple[int, int, int]], fps: int = 2, size=(96, 64)) -> Path:
    """Write an mp4 with one solid-colour frame per entry of ``colors`` (plus a moving bar)."""
    width, height = size
    frames = []
    for i, color in enumerate(colors):
        array = np.full((height, width, 3), color, dtype=np.uint8)
        array[:, (i * 7) % width : (i * 7) % width + 8] = 255 - np.array(color, dtype=np.uint8)
        frames.append(array)
    return encode_video(path, frames, fps=fps)


def make_chart(width: int, height: int, seed: int) -> Image.Image:
    """A page-like picture: text lines, bars and noise, different for every seed."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(200, 255, (height, width, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    for row in range(4, height // 3, 12):
        draw.line([(8, row), (width - 8, row)], fill=tuple(int(c) for c in rng.integers(0, 120, 3)), width=2)
    for i, bar in enumerate(rng.integers(height // 4, height - 10, 5)):
        x = 10 + i * (width - 20) // 5
        draw.rectangle(
            [x, height - int(bar), x + (width - 20) // 7, height - 4], fill=(40 * i, 90, 200 - 30 * i)
        )
    return image


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Real files: a PNG chart, a JPEG photo, an mp4 clip, a corrupt PNG, a text file."""
    root = tmp_path_factory.mktemp("media")
    files = {
        "chart": root / "chart.png",
        "photo": root / "photo.jpg",
        "wide": root / "wide.png",
        "clip": root / "clip.mp4",
        "corrupt": root / "corrupt.png",
        "notes": root / "notes.txt",
    }
    make_chart(160, 120, seed=1).save(files["chart"])
    make_chart(200, 150, seed=2).save(files["photo"], quality=90)
    make_chart(320, 80, seed=3).save(files["wide"])
    write_video(files["clip"], [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (90, 20, 160)])
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"definitely not image data" * 4)
    files["notes"].write_text("Quarterly revenue grew by 12 percent, driven by the new product line.\n")
    return files


@pytest.fixture(scope="session")
def frames() -> Callable[[int], list[Image.Image]]:
    """Factory of distinct video frames (a list of PIL images)."""

    def build(count: int, size=(96, 64)) -> list[Image.Image]:
        return [make_chart(size[0], size[1], seed=100 + i) for i in range(count)]

    return build
