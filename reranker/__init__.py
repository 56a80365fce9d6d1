"""The Qwen3-VL cross-encoder reranker. Usable alone: needs neither Qdrant, FastAPI nor Streamlit.

from reranker import Qwen3VLReranker
reranker = Qwen3VLReranker("Qwen/Qwen3-VL-Reranker-2B")
reranker.rank("a cat on a sofa", ["a dog", {"image": "cat.jpg"}], top_n=1)
"""

from __future__ import annotations

from core.qwen_vl.budget import VisionBudget
from reranker.base import RankedDocument, Reranker
from reranker.profiles import PROFILES, RerankerProfile
from reranker.prompt import DEFAULT_INSTRUCTION, SYSTEM_PROMPT
from reranker.registry import BACKENDS, RerankerSpec, parse_specs, pick, specs_from_settings

__all__ = [
    "DEFAULT_INSTRUCTION",
    "PROFILES",
    "SYSTEM_PROMPT",
    "JinaM0Reranker",
    "Qwen3VLReranker",
    "RankedDocument",
    "Reranker",
    "RerankerProfile",
    "RerankerSpec",
    "VisionBudget",
    "detect_backend",
    "parse_specs",
    "pick",
    "reranker_from_settings",
    "rerankers_from_settings",
    "rerankers_from_specs",
    "specs_from_settings",
]


def detect_backend(model_name_or_path: str) -> str:
    """``jina-m0`` for a jina-reranker-m0 checkpoint (a Qwen2-VL ranking model), else ``qwen3-vl``."""
    import json
    from pathlib import Path

    config = Path(model_name_or_path) / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        if "JinaVLForRanking" in (data.get("architectures") or []) or data.get("model_type") == "qwen2_vl":
            return "jina-m0"
        return "qwen3-vl"
    return "jina-m0" if "jina-reranker-m0" in model_name_or_path.lower() else "qwen3-vl"


def reranker_from_settings(settings, **overrides) -> Reranker:
    """The reranker the settings describe (``reranker_model``, ``reranker_backend``, ...)."""
    from core.errors import InvalidInputError

    model = overrides.get("model_name_or_path") or settings.reranker_model
    backend = settings.reranker_backend if settings.reranker_backend != "auto" else detect_backend(model)
    if backend == "jina-m0":
        from reranker.jina_m0 import JinaM0Reranker

        return JinaM0Reranker.from_settings(settings, **overrides)
    if backend == "qwen3-vl":
        from reranker.qwen3_vl import Qwen3VLReranker

        return Qwen3VLReranker.from_settings(settings, **overrides)
    raise InvalidInputError(f"unknown reranker backend {backend!r}; use auto or one of {', '.join(BACKENDS)}")


def rerankers_from_settings(settings) -> dict[str, Reranker]:
    """Every reranker the settings name, by name: the default first, then ``rerankers``."""
    return rerankers_from_specs(settings, specs_from_settings(settings))


def rerankers_from_specs(settings, specs: list[RerankerSpec]) -> dict[str, Reranker]:
    """One reranker per spec, by name; device, dtype and limits come from ``settings``."""
    return {spec.name: reranker_from_settings(spec.settings_for(settings)) for spec in specs}


def __getattr__(name: str):
    # Imported on first use so that `import reranker` does not pull in torch and transformers.
    if name == "Qwen3VLReranker":
        from reranker.qwen3_vl import Qwen3VLReranker

        return Qwen3VLReranker
    if name == "JinaM0Reranker":
        from reranker.jina_m0 import JinaM0Reranker

        return JinaM0Reranker
    raise AttributeError(name)
