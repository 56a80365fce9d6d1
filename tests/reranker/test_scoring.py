"""Behaviour of Qwen3VLReranker beyond parity: batching, order, truncation, ranking, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import (
    ContentTypeError,
    EmptyVideoError,
    InputTooLongError,
    InvalidInputError,
    MediaDecodeError,
    MediaNotFoundError,
)
from core.qwen_vl.batching import plan_batches
from core.qwen_vl.truncation import SUFFIX_TOKENS

EXACT_TEXT_PROMPT = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n<Instruct>: Given a search query, retrieve relevant candidates that answer the query."
    "<Query>:what is mmsearch?\n<Document>:A two-stage multimodal search engine.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def test_text_pair_renders_the_published_prompt(tiny_reranker):
    from core.content import parse_content

    (pair,) = tiny_reranker.encode(
        parse_content("what is mmsearch?"), [parse_content("A two-stage multimodal search engine.")]
    )
    assert tiny_reranker.tokenizer.decode(pair.input_ids) == EXACT_TEXT_PROMPT
    assert pair.input_ids == tiny_reranker.tokenizer.encode(EXACT_TEXT_PROMPT, add_special_tokens=False)


def test_real_qwen_vocabulary_ids(tiny_reranker):
    tok = tiny_reranker.tokenizer
    assert tok.convert_tokens_to_ids(["yes", "no", "<|im_start|>", "<|image_pad|>"]) == [
        9693,
        2152,
        151644,
        151655,
    ]


def test_score_is_independent_of_batch_composition(tiny_reranker, media, monkeypatch):
    target = {"image": str(media["chart"]), "text": "Figure 1"}
    alone = tiny_reranker.score("sales chart", [target])[0]
    crowd = ["x", "a much longer document " * 60, target, {"image": str(media["wide"])}, "short", ""]
    together = tiny_reranker.score("sales chart", crowd)
    assert abs(together[2] - alone) < 1e-4
    # Force one pair per batch too: the same numbers must come out.
    monkeypatch.setattr(tiny_reranker, "batch_tokens", 1)
    one_by_one = tiny_reranker.score("sales chart", crowd)
    np.testing.assert_allclose(one_by_one, together, atol=1e-4, rtol=0)


def test_results_come_back_in_input_order(tiny_reranker):
    docs = [f"doc {i} " + "word " * (i * 13 % 50) for i in range(9)]
    scores = tiny_reranker.score("query", docs)
    permutation = [4, 0, 8, 2, 6, 1, 7, 3, 5]
    shuffled = tiny_reranker.score("query", [docs[i] for i in permutation])
    np.testing.assert_allclose(shuffled, [scores[i] for i in permutation], atol=1e-5, rtol=0)


def test_pairs_share_forward_passes(tiny_reranker, monkeypatch):
    calls = []
    original = tiny_reranker.launch
    monkeypatch.setattr(tiny_reranker, "launch", lambda pairs: calls.append(len(pairs)) or original(pairs))
    tiny_reranker.score("query", [f"document {i}" for i in range(32)])
    assert sum(calls) == 32
    assert len(calls) < 32 and max(calls) > 1


def test_plan_batches_respects_the_token_budget():
    lengths = [100, 10, 50, 400, 90, 10, 10, 300]
    batches = plan_batches(lengths, max_tokens=400)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 400
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
    assert plan_batches([], 10) == []
    with pytest.raises(ValueError):
        plan_batches([1], 0)


def test_long_document_is_truncated_keeping_the_suffix(tiny_reranker, media, monkeypatch):
    from core.content import parse_content

    monkeypatch.setattr(tiny_reranker, "max_length", 120)
    long_doc = parse_content({"image": str(media["chart"]), "text": "lorem ipsum dolor " * 200})
    (pair,) = tiny_reranker.encode(parse_content("q"), [long_doc])
    full = tiny_reranker.tokenizer.encode(
        tiny_reranker.tokenizer.decode(pair.input_ids), add_special_tokens=False
    )
    assert len(pair.input_ids) == 120
    suffix = tiny_reranker.tokenizer.encode("<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    assert len(suffix) == SUFFIX_TOKENS and pair.input_ids[-SUFFIX_TOKENS:] == suffix
    image_pads = pair.input_ids.count(tiny_reranker.image_token_id)
    assert image_pads == pair.images[0].grid_thw[1] * pair.images[0].grid_thw[2] // 4
    assert full == pair.input_ids  # still a well-formed sequence of whole tokens
    score = tiny_reranker.score("q", [{"image": str(media["chart"]), "text": "lorem ipsum dolor " * 200}])
    assert 0.0 < score[0] < 1.0


def test_vision_tokens_that_cannot_fit_raise(tiny_reranker, media, monkeypatch):
    monkeypatch.setattr(tiny_reranker, "max_length", 30)  # the photo alone needs 30 pads
    with pytest.raises(InputTooLongError, match="document 0"):
        tiny_reranker.score("q", [{"image": str(media["photo"])}])


def test_rank_orders_by_score_and_cuts_top_n(tiny_reranker):
    docs = [f"candidate {i}" for i in range(7)]
    scores = tiny_reranker.score("query", docs)
    ranked = tiny_reranker.rank("query", docs, top_n=3)
    assert [r.index for r in ranked] == sorted(range(7), key=lambda i: -scores[i])[:3]
    assert [r.document for r in ranked] == [docs[r.index] for r in ranked]
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert len(tiny_reranker.rank("query", docs)) == 7


def test_empty_document_list_returns_empty(tiny_reranker):
    assert tiny_reranker.score("query", []) == []
    assert tiny_reranker.rank("query", [], top_n=5) == []


@pytest.mark.parametrize(
    ("documents", "error", "message"),
    [
        (["fine", {"image": "/no/such/file.png"}], MediaNotFoundError, "document 1"),
        ([{"imagee": "x.png"}], ContentTypeError, "unknown content type 'imagee'"),
        ([{"video": []}], EmptyVideoError, "document 0"),
        ([{"text": 42}], InvalidInputError, "document 0"),
        ("not a list", InvalidInputError, "list"),
    ],
)
def test_bad_documents_raise_clear_errors(tiny_reranker, documents, error, message):
    with pytest.raises(error, match=message):
        tiny_reranker.score("query", documents)


def test_corrupt_image_is_an_error_not_a_null_document(tiny_reranker, media):
    with pytest.raises(MediaDecodeError, match=r"document 2.*image 0"):
        tiny_reranker.score("query", ["a", "b", {"image": str(media["corrupt"])}])


def test_corrupt_video_is_an_error(tiny_reranker, media):
    with pytest.raises(MediaDecodeError, match="document 0"):
        tiny_reranker.score("query", [{"video": str(media["corrupt"])}])


def test_bad_query_raises(tiny_reranker):
    with pytest.raises(InvalidInputError, match="query is empty"):
        tiny_reranker.score("", ["doc"])
    with pytest.raises(InvalidInputError, match="query"):
        tiny_reranker.score(3.14, ["doc"])
    with pytest.raises(MediaNotFoundError, match="query"):
        tiny_reranker.score({"image": "/missing.png"}, ["doc"])


def test_vision_feature_cache_is_exact_and_hit_on_repeat(tiny_reranker_dir, tiny_reranker, media, frames):
    from PIL import Image

    from reranker import Qwen3VLReranker

    cached = Qwen3VLReranker(str(tiny_reranker_dir), device="cpu", dtype="float32", vision_cache_mb=16)
    cache = cached.backbone.feature_cache
    chart = media["chart"]
    docs = [
        {"image": str(chart), "text": "Figure 1"},
        {"image": str(media["photo"])},
        "plain text",
        {"video": frames(4, size=(128, 96))},  # videos are not cached
    ]
    expected = tiny_reranker.score("sales chart", docs)
    first = cached.score("sales chart", docs)
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 2)
    # The same pixels from another source (a PIL image, not a path) are the same cache entry.
    again = cached.score("other words", [{"image": Image.open(chart)}, docs[1]])
    assert (cache.hits, len(cache)) == (2, 2)
    np.testing.assert_allclose(first, expected, atol=1e-5, rtol=0)
    uncached = tiny_reranker.score("other words", [{"image": str(chart)}, docs[1]])
    np.testing.assert_allclose(again, uncached, atol=1e-5, rtol=0)


def test_parallel_media_loading_names_the_first_bad_document(tiny_reranker, media):
    docs = (
        [{"image": str(media["chart"])}] * 3
        + [{"image": str(media["corrupt"])}]
        + [
            {"image": str(media["photo"])},
            {"image": str(media["corrupt"])},
        ]
    )
    assert tiny_reranker.backbone.vision.workers > 1 or pytest.skip("one CPU: no parallel loading")
    with pytest.raises(MediaDecodeError, match="document 3"):
        tiny_reranker.score("q", docs)
