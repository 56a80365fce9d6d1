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

__all__ = [
    "DEFAULT_INSTRUCTION",
    "PROFILES",
    "SYSTEM_PROMPT",
    "Qwen3VLReranker",
    "RankedDocument",
    "Reranker",
    "RerankerProfile",
    "VisionBudget",
]


def __getattr__(name: str):
    # Imported on first use so that `import reranker` does not pull in torch and transformers.
    if name == "Qwen3VLReranker":
        from reranker.qwen3_vl import Qwen3VLReranker

        return Qwen3VLReranker
    raise AttributeError(name)
