"""Embedders: documents and queries in, unit-length vectors out.

Two backends behind one interface (:class:`indexer.embedders.base.Embedder`):

- ``qwen3-vl``: :class:`~indexer.embedders.qwen3_vl.Qwen3VLEmbedder`, Qwen3-VL-Embedding (text, images,
  video and mixes, one shared space with the reranker's preprocessing).
- ``sentence-transformers``: :class:`~indexer.embedders.sentence.SentenceTransformerEmbedder`, any model
  sentence-transformers loads (text models; CLIP-style models for images and video too).

Importing this package loads neither torch nor a model: the backends are imported when built.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInputError, ModelLoadError
from core.qwen_vl import QWEN3_VL_MODEL_TYPES
from indexer.embedders.base import Embedder

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger(__name__)

QWEN3_VL = "qwen3-vl"
SENTENCE_TRANSFORMERS = "sentence-transformers"
BACKENDS = (QWEN3_VL, SENTENCE_TRANSFORMERS)
# Hub ids such as "Qwen/Qwen3-VL-Embedding-2B" or "someone/qwen3_vl_embedding-finetune".
_QWEN3_VL_ID = re.compile(r"qwen3[-_]?vl", re.IGNORECASE)

__all__ = [
    "BACKENDS",
    "Embedder",
    "Qwen3VLEmbedder",
    "SentenceTransformerEmbedder",
    "build_embedder",
    "detect_backend",
    "embedder_from_settings",
    "text_embedder_from_settings",
]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `import indexer.embedders` does not pull in torch.
    if name == "Qwen3VLEmbedder":
        from indexer.embedders.qwen3_vl import Qwen3VLEmbedder

        return Qwen3VLEmbedder
    if name == "SentenceTransformerEmbedder":
        from indexer.embedders.sentence import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder
    raise AttributeError(name)


def _model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def detect_backend(model_name_or_path: str | os.PathLike) -> str:
    """Which backend runs a model: ``"qwen3-vl"`` or ``"sentence-transformers"``.

    A local folder whose config.json says ``model_type: qwen3_vl`` is Qwen3-VL, even when it also
    carries sentence-transformers files (the released Qwen3-VL-Embedding repositories ship both, and
    our own backend is the one with the reranker's preprocessing and safe media loading). Any other
    folder is sentence-transformers (modules.json, or a plain transformers checkpoint such as CLIP).
    A hub id naming Qwen3-VL is Qwen3-VL; any other hub id is sentence-transformers.
    """
    path = Path(model_name_or_path)
    if path.is_dir():
        if _model_type(path) in QWEN3_VL_MODEL_TYPES:
            return QWEN3_VL
        return SENTENCE_TRANSFORMERS
    return QWEN3_VL if _QWEN3_VL_ID.search(str(model_name_or_path)) else SENTENCE_TRANSFORMERS


def _backend_class(model_name_or_path: str | os.PathLike, backend: str) -> type[Embedder]:
    if backend == "auto":
        backend = detect_backend(model_name_or_path)
    if backend == QWEN3_VL:
        from indexer.embedders.qwen3_vl import Qwen3VLEmbedder

        return Qwen3VLEmbedder
    if backend == SENTENCE_TRANSFORMERS:
        from indexer.embedders.sentence import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder
    raise InvalidInputError(f"unknown embedder backend {backend!r}; use auto, {', '.join(BACKENDS)}")


def build_embedder(model_name_or_path: str | os.PathLike, backend: str = "auto", **kwargs: Any) -> Embedder:
    """Load an embedder.

    Args:
        model_name_or_path: hub id or local folder.
        backend: ``"auto"`` (see :func:`detect_backend`), ``"qwen3-vl"`` or ``"sentence-transformers"``.
        **kwargs: passed to the backend's constructor (device, dtype, ...).

    Raises:
        InvalidInputError: an unknown backend.
        ModelLoadError: the model cannot be loaded by that backend.
    """
    cls = _backend_class(model_name_or_path, backend)
    logger.info("loading embedder %s with the %s backend", model_name_or_path, cls.__name__)
    return cls(str(model_name_or_path), **kwargs)


def embedder_from_settings(settings: Settings) -> Embedder:
    """The content embedder the settings describe (``embedder_model``, ``embedder_backend``, ...)."""
    cls = _backend_class(settings.embedder_model, settings.embedder_backend)
    return cls.from_settings(settings)  # type: ignore[attr-defined]


def text_embedder_from_settings(settings: Settings) -> Embedder | None:
    """The optional text-only embedder (``text_embedder_model``); None when none is configured.

    Raises:
        ModelLoadError: the model does not read text.
    """
    name = settings.text_embedder_model
    if not name:
        return None
    cls = _backend_class(name, "auto")
    overrides: dict[str, Any] = {"model_name_or_path": name}
    if cls.__name__ == "Qwen3VLEmbedder":
        overrides["dim"] = None  # embedding_dim sizes the content vector, not this one
    embedder = cls.from_settings(settings, **overrides)  # type: ignore[attr-defined]
    if "text" not in embedder.modalities:
        raise ModelLoadError(f"the text embedder {name!r} does not read text")
    return embedder
