"""Choosing and building an embedder from a model name or the settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from core.errors import InvalidInputError, ModelLoadError
from core.settings import Settings
from indexer.embedders import (
    build_embedder,
    detect_backend,
    embedder_from_settings,
    text_embedder_from_settings,
)


def settings(**values) -> Settings:
    return Settings(_env_file=None, device="cpu", **values)


def test_detect_backend_on_the_fixture_folders(tiny_embedder_dir, minilm_dir, tiny_clip_dir):
    assert detect_backend(tiny_embedder_dir) == "qwen3-vl"  # config.json: model_type qwen3_vl
    assert detect_backend(str(minilm_dir)) == "sentence-transformers"  # modules.json
    assert detect_backend(tiny_clip_dir) == "sentence-transformers"  # a plain transformers CLIP folder


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        ("Qwen/Qwen3-VL-Embedding-2B", "qwen3-vl"),
        ("Qwen/Qwen3-VL-Embedding-8B", "qwen3-vl"),
        ("someone/qwen3_vl-embedding-finetune", "qwen3-vl"),
        ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers"),
        ("openai/clip-vit-base-patch32", "sentence-transformers"),
        ("Qwen/Qwen3-Embedding-0.6B", "sentence-transformers"),  # text-only Qwen3: not the VL backend
    ],
)
def test_detect_backend_on_hub_ids(name, backend):
    assert detect_backend(name) == backend


def test_a_qwen3_vl_folder_with_sentence_transformers_files_is_still_qwen3_vl(tiny_embedder_dir, tmp_path):
    # The released Qwen3-VL-Embedding repositories ship modules.json next to their Qwen3-VL config.
    folder = tmp_path / "both"
    folder.mkdir()
    shutil.copy(tiny_embedder_dir / "config.json", folder / "config.json")
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "x"}]))
    assert detect_backend(folder) == "qwen3-vl"


def test_build_embedder_picks_the_backend(tiny_embedder_dir, minilm_dir):
    from indexer.embedders import Qwen3VLEmbedder, SentenceTransformerEmbedder

    qwen = build_embedder(tiny_embedder_dir, device="cpu", dtype="float32", dim=8)
    assert isinstance(qwen, Qwen3VLEmbedder) and qwen.dim == 8
    assert qwen.embed_documents(["hello"]).shape == (1, 8)
    text = build_embedder(minilm_dir, backend="sentence-transformers", device="cpu")
    assert isinstance(text, SentenceTransformerEmbedder) and text.dim == 384
    with pytest.raises(InvalidInputError, match="unknown embedder backend 'onnx'"):
        build_embedder(minilm_dir, backend="onnx")
    with pytest.raises(ModelLoadError, match="not Qwen3-VL"):
        build_embedder(minilm_dir, backend="qwen3-vl", device="cpu")


def test_embedders_from_settings(tiny_embedder_dir, minilm_dir, tiny_clip_dir):
    from indexer.embedders import Qwen3VLEmbedder, SentenceTransformerEmbedder

    content = embedder_from_settings(settings(embedder_model=str(tiny_embedder_dir), embedding_dim=32))
    assert isinstance(content, Qwen3VLEmbedder) and content.dim == 32
    clip = embedder_from_settings(settings(embedder_model=str(tiny_clip_dir)))
    assert isinstance(clip, SentenceTransformerEmbedder) and clip.modalities == {"text", "image", "video"}
    assert text_embedder_from_settings(settings()) is None
    text = text_embedder_from_settings(settings(text_embedder_model=str(minilm_dir), embedding_dim=32))
    assert isinstance(text, SentenceTransformerEmbedder) and text.dim == 384 and "text" in text.modalities
    with pytest.raises(InvalidInputError, match="unknown embedder backend"):
        embedder_from_settings(settings(embedder_model=str(minilm_dir), embedder_backend="tfidf"))


def test_importing_the_embedders_package_loads_no_torch():
    code = (
        "import sys, indexer.embedders; from indexer.embedders import detect_backend; "
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'av') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
