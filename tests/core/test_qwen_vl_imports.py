"""`import core` and `import core.qwen_vl` stay cheap: no torch, transformers or PyAV until a model runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "av", "sentence_transformers")


@pytest.mark.parametrize(
    "statement",
    [
        "import core",
        "import core.qwen_vl",
        "from core.qwen_vl import VisionBudget, plan_batches, render_chat, truncate_ids",
        "import reranker; from reranker import VisionBudget",
    ],
)
def test_import_loads_no_heavy_module(statement):
    code = f"import sys; {statement}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"{statement!r} imported {result.stdout.strip()}"
