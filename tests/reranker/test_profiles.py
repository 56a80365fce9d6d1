"""Reranker profiles: the released layout unchanged, a fine-tune's profile as data, scored exactly as
its rule says (a reference written here from the profile, with the full LM head), and profile files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.errors import InvalidInputError, ModelLoadError
from reranker.profiles import QWEN3_VL_RERANKER, RerankerProfile, resolve_profile
from tests.reranker.test_scoring import EXACT_TEXT_PROMPT

# A made-up fine-tune: its own system text and layout (document before query), capitalised answers,
# a smaller image budget. Nothing in the reranker's code knows about it.
FINE_TUNE = RerankerProfile(
    name="my-finetune",
    system="You rate search results. Reply Yes or No.",
    layout="Task: {instruction}\nDocument: {document}\nQuestion: {query}\nRelevant?",
    yes="Yes",
    no="No",
    instruction="Find pages that answer the question.",
    empty_side="(empty)",
    image_max_pixels=64 * 32 * 32,
)


def test_the_default_profile_renders_the_published_prompt():
    prompt = QWEN3_VL_RERANKER.render("what is mmsearch?", "A two-stage multimodal search engine.")
    assert prompt == EXACT_TEXT_PROMPT
    assert resolve_profile(None) is QWEN3_VL_RERANKER
    assert resolve_profile("qwen3-vl-reranker") is QWEN3_VL_RERANKER


def test_profiles_round_trip_through_a_file(tmp_path):
    path = FINE_TUNE.to_file(tmp_path / "profile.json")
    assert RerankerProfile.from_file(path) == FINE_TUNE
    assert resolve_profile(str(path)) == FINE_TUNE
    data = json.loads(path.read_text())
    data["temperature"] = 0.3
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match="unknown keys"):
        RerankerProfile.from_file(path)
    with pytest.raises(InvalidInputError, match="unknown reranker profile"):
        resolve_profile("no-such-profile")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layout": "{query} {document}"}, r"\{instruction\}"),
        ({"layout": "{instruction}{query}{query}{document}"}, r"\{query\} exactly once"),
        ({"yes": "Yes", "no": "Yes"}, "two different words"),
    ],
)
def test_bad_profiles_are_refused(changes, message):
    with pytest.raises(InvalidInputError, match=message):
        RerankerProfile(**{**FINE_TUNE.__dict__, **changes})


def test_braces_in_user_text_are_kept_as_they_are():
    prompt = FINE_TUNE.render("what is {query}?", "a {document} with braces", "use {instruction}")
    assert "Question: what is {query}?" in prompt and "Document: a {document} with braces" in prompt


def test_a_fine_tune_profile_scores_by_its_own_rule(tiny_reranker_dir):
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    from reranker import Qwen3VLReranker

    ours = Qwen3VLReranker(str(tiny_reranker_dir), device="cpu", dtype="float32", profile=FINE_TUNE)
    docs = ["Revenue grew by 12 percent.", "", "The cat sat on the mat."]
    scores = ours.score("sales growth", docs)

    # Reference: the profile's prompt by hand, the full LM head, sigmoid(logit_Yes - logit_No).
    processor = AutoProcessor.from_pretrained(tiny_reranker_dir)
    model = Qwen3VLForConditionalGeneration.from_pretrained(tiny_reranker_dir, dtype=torch.float32).eval()
    tok = processor.tokenizer
    yes, no = tok.convert_tokens_to_ids("Yes"), tok.convert_tokens_to_ids("No")
    assert (yes, no) != (tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no"))
    expected = []
    for doc in docs:
        prompt = (
            "<|im_start|>system\nYou rate search results. Reply Yes or No.<|im_end|>\n<|im_start|>user\n"
            "Task: Find pages that answer the question.\n"
            f"Document: {doc or '(empty)'}\nQuestion: sales growth\nRelevant?"
            "<|im_end|>\n<|im_start|>assistant\n"
        )
        with torch.no_grad():
            logits = model(**processor(text=[prompt], return_tensors="pt")).logits[0, -1]
        expected.append(torch.sigmoid(logits[yes] - logits[no]).item())
    np.testing.assert_allclose(scores, expected, atol=1e-4, rtol=0)
    # The default profile scores the same checkpoint differently: the answer words are part of the rule.
    default = Qwen3VLReranker(str(tiny_reranker_dir), device="cpu", dtype="float32").score(
        "sales growth", docs
    )
    assert not np.allclose(default, scores, atol=1e-3)


def test_a_profile_budget_applies_to_images(tiny_reranker_dir, media):
    from core.content import parse_content
    from reranker import Qwen3VLReranker

    small = Qwen3VLReranker(str(tiny_reranker_dir), device="cpu", dtype="float32", profile=FINE_TUNE)
    (pair,) = small.encode(parse_content("q"), [parse_content({"image": str(media["wide"])})])
    assert sum(1 for i in pair.input_ids if i == small.image_token_id) <= 64


def test_answer_words_must_be_single_tokens(tiny_reranker_dir):
    from reranker import Qwen3VLReranker

    bad = RerankerProfile(**{**FINE_TUNE.__dict__, "yes": "Absolutely", "no": "Nope"})
    with pytest.raises(ModelLoadError, match="exactly one"):
        Qwen3VLReranker(str(tiny_reranker_dir), device="cpu", dtype="float32", profile=bad)


@pytest.fixture(scope="module")
def lora_dirs(tmp_path_factory, tiny_reranker_dir):
    """A LoRA adapter on the tiny reranker (random, non-zero updates), and the same adapter merged."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    root = tmp_path_factory.mktemp("lora")
    torch.manual_seed(3)
    base = Qwen3VLForConditionalGeneration.from_pretrained(tiny_reranker_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    peft_model.save_pretrained(root / "adapter")
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(root / "merged")
    AutoProcessor.from_pretrained(tiny_reranker_dir).save_pretrained(root / "merged")
    return root / "adapter", root / "merged"


def test_a_lora_adapter_loads_merged_and_scores_like_the_merged_checkpoint(
    lora_dirs, tiny_reranker_dir, media
):
    from reranker import Qwen3VLReranker

    adapter, merged = lora_dirs
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        tiny_reranker_dir
    )
    docs = ["Revenue grew by 12 percent.", {"image": str(media["chart"])}, "The cat sat on the mat."]
    kwargs = {"device": "cpu", "dtype": "float32", "profile": FINE_TUNE}
    from_adapter = Qwen3VLReranker(str(adapter), **kwargs).score("sales", docs)
    from_merged = Qwen3VLReranker(str(merged), **kwargs).score("sales", docs)
    base = Qwen3VLReranker(str(tiny_reranker_dir), **kwargs).score("sales", docs)
    np.testing.assert_allclose(from_adapter, from_merged, atol=1e-5, rtol=0)
    assert not np.allclose(from_adapter, base, atol=1e-3)  # the adapter really changed the model


def test_an_adapter_without_its_base_is_a_clear_error(tmp_path):
    from reranker import Qwen3VLReranker

    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(ModelLoadError, match="base_model_name_or_path"):
        Qwen3VLReranker(str(tmp_path), device="cpu")


def test_a_profile_budget_applies_when_built_from_settings(tmp_path, tiny_reranker_dir, media):
    from core.content import parse_content
    from core.settings import Settings
    from reranker import Qwen3VLReranker

    profile = FINE_TUNE.to_file(tmp_path / "profile.json")
    settings = Settings(_env_file=None, reranker_model=str(tiny_reranker_dir), device="cpu", dtype="float32",
                        reranker_profile=str(profile), video_max_frames=6)  # fmt: skip
    reranker = Qwen3VLReranker.from_settings(settings)
    budget = reranker.backbone.vision.budget
    assert budget.image_max_pixels == FINE_TUNE.image_max_pixels and budget.video_max_frames == 6
    (pair,) = reranker.encode(parse_content("q"), [parse_content({"image": str(media["wide"])})])
    assert sum(1 for i in pair.input_ids if i == reranker.image_token_id) <= 64
