"""jina-reranker-m0 on a tiny random replica of its architecture (Qwen2-VL + MLP head), against a
reference of the publisher's scoring rule written here: one pair per forward pass through the full
``Qwen2VLForConditionalGeneration``, the hidden state of an appended token 100, the MLP, sigmoid(x - 2.65)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import ContentTypeError
from tests.conftest import make_chart

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"


def reference(tiny_jina_dir, query: dict, doc: dict) -> float:
    """The publisher's rule: '**Document**:\\n{doc}\\n**Query**:\\n{query}', pictures doc first."""
    from safetensors.torch import load_file
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_jina_dir, min_pixels=3136, max_pixels=602112)
    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_jina_dir, dtype=torch.float32).eval()
    weights = load_file(tiny_jina_dir / "model.safetensors")
    hidden = model.config.text_config.hidden_size
    head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    head.load_state_dict({k[len("score.") :]: v for k, v in weights.items() if k.startswith("score.")})

    def side(s: dict) -> str:
        return (IMAGE if s.get("image") is not None else "") + s.get("text", "")

    prompt = f"**Document**:\n{side(doc)}\n**Query**:\n{side(query)}"
    images = [s["image"] for s in (doc, query) if s.get("image") is not None]
    inputs = processor(text=[prompt], images=images or None, return_tensors="pt")
    inputs["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([[100]])], dim=1)
    inputs["attention_mask"] = torch.cat(
        [inputs["attention_mask"], torch.ones((1, 1), dtype=torch.long)], dim=1
    )
    inputs["mm_token_type_ids"] = torch.cat(
        [inputs["mm_token_type_ids"], torch.zeros((1, 1), dtype=torch.long)], dim=1
    )
    with torch.no_grad():
        last = model(**inputs, output_hidden_states=True).hidden_states[-1][:, -1]
        return torch.sigmoid(head(last).squeeze() - 2.65).item()


def test_scores_equal_the_publishers_rule(tiny_jina, tiny_jina_dir):
    chart, other = make_chart(160, 120, seed=3), make_chart(224, 180, seed=4)
    query = {"text": "quarterly revenue"}
    docs = [{"text": "Revenue grew by 12 percent."}, {"image": chart}, {"image": other, "text": "Figure 2"},
            {"text": "word " * 40}]  # fmt: skip
    ours = tiny_jina.score(query["text"], docs)  # batched, left-padded, mixed text and pictures
    expected = [reference(tiny_jina_dir, query, d) for d in docs]
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    # A picture query against a picture document: both pictures, the document's first.
    picture_query = {"image": other}
    np.testing.assert_allclose(
        tiny_jina.score(picture_query, [{"image": chart}]),
        [reference(tiny_jina_dir, picture_query, {"image": chart})],
        atol=1e-4, rtol=0,
    )  # fmt: skip


def test_scores_do_not_depend_on_the_batch(tiny_jina, monkeypatch):
    docs = ["short", {"image": make_chart(160, 120, seed=5)}, "a longer document " * 20]
    together = tiny_jina.score("q", docs)
    monkeypatch.setattr(tiny_jina, "batch_tokens", 1)
    np.testing.assert_allclose(tiny_jina.score("q", docs), together, atol=1e-5, rtol=0)


def test_video_is_refused_with_a_clear_error(tiny_jina, frames):
    with pytest.raises(ContentTypeError, match="not video"):
        tiny_jina.score("q", [{"video": frames(4)}])


def test_the_backend_is_chosen_from_the_checkpoint(tiny_jina_dir, tiny_reranker_dir):
    from core.settings import Settings
    from reranker import detect_backend, reranker_from_settings
    from reranker.jina_m0 import JinaM0Reranker

    assert detect_backend(str(tiny_jina_dir)) == "jina-m0"
    assert detect_backend(str(tiny_reranker_dir)) == "qwen3-vl"
    assert detect_backend("jinaai/jina-reranker-m0") == "jina-m0"
    settings = Settings(_env_file=None, reranker_model=str(tiny_jina_dir), device="cpu", dtype="float32")
    assert isinstance(reranker_from_settings(settings), JinaM0Reranker)


def test_loading_reports_only_keys_that_are_really_out_of_place(tiny_jina_dir, tmp_path):
    import logging
    import shutil

    from safetensors.torch import load_file, save_file

    from reranker.jina_m0 import JinaM0Reranker

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    stray = shutil.copytree(tiny_jina_dir, tmp_path / "stray")
    weights = load_file(stray / "model.safetensors")
    weights["extra.weight"] = torch.zeros(2)
    save_file(weights, stray / "model.safetensors")
    collect, source = Collect(), logging.getLogger("transformers.modeling_utils")
    source.addHandler(collect)
    try:
        JinaM0Reranker(str(tiny_jina_dir), device="cpu", dtype="float32")
        assert not [m for m in collect.messages if "LOAD REPORT" in m]  # the score head is ours to read
        JinaM0Reranker(str(stray), device="cpu", dtype="float32")
        assert [m for m in collect.messages if "extra.weight" in m]  # anything else still shows
    finally:
        source.removeHandler(collect)


def test_loading_it_says_once_that_its_weights_are_non_commercial(tiny_jina_dir, monkeypatch, caplog):
    from reranker import jina_m0
    from reranker.jina_m0 import JinaM0Reranker

    monkeypatch.setattr(jina_m0, "_license_noted", False)  # as in a fresh process
    with caplog.at_level("WARNING", logger="reranker.jina_m0"):
        JinaM0Reranker(str(tiny_jina_dir), device="cpu", dtype="float32")
        JinaM0Reranker(str(tiny_jina_dir), device="cpu", dtype="float32")
    notices = [r for r in caplog.records if "CC-BY-NC-4.0" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelname == "WARNING"
    assert "non-commercial" in notices[0].getMessage()
