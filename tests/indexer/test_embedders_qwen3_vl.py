"""Qwen3VLEmbedder against a plain one-item-per-forward reference, and its behaviour beyond parity.

The reference is written from the published facts, importing nothing of ours: the prompt as an
f-string, images sized by the official ``qwen_vl_utils.fetch_image``, the checkpoint's own processor,
the full ``Qwen3VLForConditionalGeneration`` with ``output_hidden_states``, the last token, L2 norm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from core.content import parse_content
from core.errors import (
    ContentTypeError,
    EmptyVideoError,
    InputTooLongError,
    InvalidInputError,
    MediaDecodeError,
    MediaNotFoundError,
    ModelLoadError,
)
from core.qwen_vl import SUFFIX_TOKENS
from indexer.embedders.qwen3_vl import (
    DEFAULT_QUERY_INSTRUCTION,
    Qwen3VLEmbedder,
    format_instruction,
    render_embedding_prompt,
)
from tests.conftest import make_chart, write_video

TOLERANCE = 1e-4
DOCUMENT = "Represent the user's input."
QUERY = "Retrieve images or text relevant to the user's query."
IMAGE_MIN, IMAGE_MAX = 4 * 32 * 32, 1800 * 32 * 32

# The published layout: instruction as system turn; videos, images, texts as user turn; generation prompt.
EXACT_TEXT_PROMPT = (
    "<|im_start|>system\nRepresent the user's input.<|im_end|>\n"
    "<|im_start|>user\nA woman playing with her dog on a beach at sunset.<|im_end|>\n"
    "<|im_start|>assistant\n"
)


class ReferenceEmbedder:
    """One item per forward pass through the full model; nothing shared with indexer.embedders."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.model = Qwen3VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()

    @torch.no_grad()
    def embed(
        self,
        text: str = "",
        images: tuple[Any, ...] = (),
        video: list[Image.Image] | None = None,
        video_fps: float = 1.0,
        video_indices: list[int] | None = None,
        instruction: str = DOCUMENT,
    ) -> np.ndarray:
        from qwen_vl_utils.vision_process import fetch_image
        from transformers.video_utils import VideoMetadata

        # transformers expands a bare <|video_pad|> into "<t seconds><|vision_start|>...<|vision_end|>"
        # per temporal step, as the released processor does with the template's video block.
        user = ("<|video_pad|>" if video is not None else "") + (
            "<|vision_start|><|image_pad|><|vision_end|>" * len(images)
        )
        prompt = (
            f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{user}{text}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
        pictures = [
            fetch_image({"image": str(im) if isinstance(im, Path) else im,
                         "min_pixels": IMAGE_MIN, "max_pixels": IMAGE_MAX}, image_patch_size=16)
            for im in images
        ]  # fmt: skip
        kwargs: dict[str, Any] = {"do_resize": False, "return_tensors": "pt"}
        if video is not None:
            indices = video_indices or list(range(len(video)))
            kwargs.update(
                videos=[np.stack([np.asarray(f.convert("RGB")) for f in video])],
                video_metadata=[
                    VideoMetadata(total_num_frames=max(indices) + 1, fps=video_fps, frames_indices=indices)
                ],
                do_sample_frames=False,
            )
        inputs = self.processor(text=[prompt], images=pictures or None, **kwargs)
        out = self.model(**inputs, output_hidden_states=True)
        last = out.hidden_states[-1][0, -1].float()
        return torch.nn.functional.normalize(last, dim=-1).numpy()


@pytest.fixture(scope="module")
def reference(tiny_embedder_dir):
    return ReferenceEmbedder(tiny_embedder_dir)


@pytest.fixture(scope="module")
def video_frames():
    # 512x288 is already inside the video pixel budget and a multiple of 32, so neither pipeline resizes.
    return [make_chart(512, 288, seed=60 + i) for i in range(4)]


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (90, 20, 160)]
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", colors, fps=2, size=(512, 288))


def decode_reference_frames(path: Path, fps: float = 1.0, max_frames: int = 64):
    """Decode with PyAV and sample with the official smart_nframes rule."""
    import av
    from qwen_vl_utils.vision_process import smart_nframes

    with av.open(str(path)) as container:
        decoded = [f.to_image() for f in container.decode(video=0)]
        rate = float(container.streams.video[0].average_rate)
    n = smart_nframes({"fps": fps, "max_frames": max_frames}, total_frames=len(decoded), video_fps=rate)
    indices = np.linspace(0, len(decoded) - 1, n).round().astype(int).tolist()
    return [decoded[i] for i in indices], indices, rate


def max_error(ours: np.ndarray, expected: list[np.ndarray]) -> float:
    return float(np.abs(ours - np.stack(expected)).max())


# -- the prompt ---------------------------------------------------------------------------------------


def test_text_item_renders_the_published_prompt(tiny_embedder):
    (item,) = tiny_embedder.encode(
        [parse_content("A woman playing with her dog on a beach at sunset.")], instruction=DOCUMENT
    )
    assert tiny_embedder.tokenizer.decode(item.input_ids) == EXACT_TEXT_PROMPT
    assert item.input_ids == tiny_embedder.tokenizer.encode(EXACT_TEXT_PROMPT, add_special_tokens=False)


def test_prompt_orders_videos_images_texts_without_separators():
    prompt = render_embedding_prompt(QUERY, ["<V>", "<I1>", "<I2>"], ["first", "second"])
    assert prompt == (
        f"<|im_start|>system\n{QUERY}<|im_end|>\n<|im_start|>user\n<V><I1><I2>firstsecond<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Find the chart that shows revenue", "Find the chart that shows revenue."),
        ("  Which slide mentions costs?  ", "Which slide mentions costs?"),
        ("Retrieve the page;", "Retrieve the page;"),
        ("找到相关的图片。", "找到相关的图片。"),  # a full-width full stop is punctuation too
        ("Represent the title (short)", "Represent the title (short)"),
        ("", DOCUMENT),
        ("   ", DOCUMENT),
        (None, DOCUMENT),
    ],
)
def test_instruction_gets_a_period_unless_it_ends_in_punctuation(given, expected):
    assert format_instruction(given, DOCUMENT) == expected


def test_default_instructions(tiny_embedder):
    assert tiny_embedder.document_instruction == DOCUMENT
    assert tiny_embedder.query_instruction == QUERY == DEFAULT_QUERY_INSTRUCTION


# -- parity with the reference ------------------------------------------------------------------------


def test_texts_match_reference(tiny_embedder, reference):
    texts = ["Revenue grew by 12 percent in 2023.", "The cat sat on the mat.", "A long report. " * 40, "x"]
    ours = tiny_embedder.embed_documents(texts)
    error = max_error(ours, [reference.embed(t) for t in texts])
    assert error < TOLERANCE, error


def test_images_and_mixed_content_match_reference(tiny_embedder, reference, media):
    items = [
        {"image": str(media["chart"])},
        {"image": str(media["photo"])},
        {"image": str(media["wide"]), "text": "Figure 3: sales by region"},
        {"image": [str(media["chart"]), str(media["photo"])], "text": "two figures"},
    ]
    ours = tiny_embedder.embed_documents(items)
    expected = [
        reference.embed(images=(media["chart"],)),
        reference.embed(images=(media["photo"],)),
        reference.embed("Figure 3: sales by region", images=(media["wide"],)),
        reference.embed("two figures", images=(media["chart"], media["photo"])),
    ]
    error = max_error(ours, expected)
    assert error < TOLERANCE, error


def test_videos_match_reference(tiny_embedder, reference, video_frames, video_file):
    ours = tiny_embedder.embed_documents(
        [
            {"video": video_frames},
            {"video": str(video_file), "text": "clip"},
            {"video": video_frames, "text": "x"},
        ]
    )
    decoded, indices, rate = decode_reference_frames(video_file)
    expected = [
        reference.embed(video=video_frames),
        reference.embed("clip", video=decoded, video_fps=rate, video_indices=indices),
        reference.embed("x", video=video_frames),
    ]
    error = max_error(ours, expected)
    assert error < TOLERANCE, error


def test_queries_match_reference_with_the_query_instruction(tiny_embedder, reference, media):
    queries = ["bar chart of quarterly sales", {"image": str(media["chart"]), "text": "pages like this"}]
    ours = tiny_embedder.embed_queries(queries)
    expected = [
        reference.embed("bar chart of quarterly sales", instruction=QUERY),
        reference.embed("pages like this", images=(media["chart"],), instruction=QUERY),
    ]
    assert max_error(ours, expected) < TOLERANCE
    custom = tiny_embedder.embed_queries(["growth"], instruction="Find the passage that states a number")
    expected_custom = reference.embed("growth", instruction="Find the passage that states a number.")
    assert max_error(custom, [expected_custom]) < TOLERANCE


# -- behaviour ----------------------------------------------------------------------------------------


def test_vectors_are_float32_unit_vectors_of_the_model_size(tiny_embedder, media):
    vectors = tiny_embedder.embed_documents(["a", {"image": str(media["chart"])}, "b " * 50])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 64) == (3, tiny_embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert tiny_embedder.name.endswith("tiny-qwen3-vl-embedder0")
    assert tiny_embedder.modalities == {"text", "image", "video"}
    assert tiny_embedder.embed_documents([]).shape == (0, 64)


def test_vector_is_independent_of_batch_composition(tiny_embedder, media, frames, monkeypatch):
    target = {"image": str(media["chart"]), "text": "Figure 1"}
    alone = tiny_embedder.embed_documents([target])[0]
    crowd = ["x", "a much longer document " * 80, target, {"image": str(media["wide"])}, "short"]
    crowd.append({"video": frames(4)})
    together = tiny_embedder.embed_documents(crowd)
    assert np.abs(together[2] - alone).max() < TOLERANCE
    monkeypatch.setattr(tiny_embedder, "batch_tokens", 1)  # every item alone in its forward pass
    one_by_one = tiny_embedder.embed_documents(crowd)
    np.testing.assert_allclose(one_by_one, together, atol=TOLERANCE, rtol=0)


def test_items_share_forward_passes(tiny_embedder, monkeypatch):
    calls = []
    original = tiny_embedder.launch
    monkeypatch.setattr(tiny_embedder, "launch", lambda batch: calls.append(len(batch)) or original(batch))
    tiny_embedder.embed_documents([f"document {i}" for i in range(24)])
    assert sum(calls) == 24 and len(calls) < 24


def test_results_come_back_in_input_order(tiny_embedder):
    docs = [f"doc {i} " + "word " * (i * 13 % 50) for i in range(9)]
    vectors = tiny_embedder.embed_documents(docs)
    permutation = [4, 0, 8, 2, 6, 1, 7, 3, 5]
    shuffled = tiny_embedder.embed_documents([docs[i] for i in permutation])
    np.testing.assert_allclose(shuffled, vectors[permutation], atol=1e-5, rtol=0)


def test_matryoshka_dim_truncates_then_renormalises(tiny_embedder_dir, tiny_embedder):
    small = Qwen3VLEmbedder(str(tiny_embedder_dir), device="cpu", dtype="float32", dim=16)
    full = tiny_embedder.embed_documents(["quarterly revenue", "a cat"])
    vectors = small.embed_documents(["quarterly revenue", "a cat"])
    assert small.dim == 16 and vectors.shape == (2, 16)
    expected = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)
    for bad in (0, 65):
        with pytest.raises(InvalidInputError, match="dim must be between 1 and"):
            Qwen3VLEmbedder(str(tiny_embedder_dir), device="cpu", dtype="float32", dim=bad)


def test_query_and_document_instructions_give_different_vectors(tiny_embedder):
    text = "revenue growth in 2023"
    document = tiny_embedder.embed_documents([text])[0]
    query = tiny_embedder.embed_queries([text])[0]
    other = tiny_embedder.embed_queries([text], instruction="Find slides")[0]
    assert np.abs(document - query).max() > 1e-3
    assert np.abs(query - other).max() > 1e-3
    # The same instruction through either door gives the same vector: one preprocessing path.
    np.testing.assert_allclose(
        tiny_embedder.embed_queries([text], instruction=DOCUMENT)[0], document, atol=1e-6
    )


def test_over_long_text_is_truncated_keeping_the_suffix(tiny_embedder, media, monkeypatch):
    monkeypatch.setattr(tiny_embedder, "max_length", 120)
    long_item = parse_content({"image": str(media["chart"]), "text": "lorem ipsum dolor " * 200})
    (item,) = tiny_embedder.encode([long_item], instruction=DOCUMENT)
    tok = tiny_embedder.tokenizer
    assert len(item.input_ids) == 120
    suffix = tok.encode("<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    assert len(suffix) == SUFFIX_TOKENS and item.input_ids[-SUFFIX_TOKENS:] == suffix
    assert tok.decode(item.input_ids).startswith(
        f"<|im_start|>system\n{DOCUMENT}<|im_end|>\n<|im_start|>user\n"
    )
    pads = item.input_ids.count(tiny_embedder.backbone.image_token_id)
    assert pads == item.images[0].grid_thw[1] * item.images[0].grid_thw[2] // 4
    assert tok.encode(tok.decode(item.input_ids), add_special_tokens=False) == item.input_ids
    vector = tiny_embedder.embed_documents([long_item])
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    # What is embedded is the truncated prompt, batched or not.
    np.testing.assert_allclose(vector[0], tiny_embedder.forward([item])[0], atol=1e-5)


def test_vision_tokens_that_cannot_fit_raise(tiny_embedder, media, monkeypatch):
    monkeypatch.setattr(tiny_embedder, "max_length", 30)  # the photo alone needs 30 pads
    with pytest.raises(InputTooLongError, match="document 0"):
        tiny_embedder.embed_documents([{"image": str(media["photo"])}])


@pytest.mark.parametrize(
    ("items", "error", "message"),
    [
        (["fine", ""], InvalidInputError, "document 1 is empty"),
        ([{"text": ""}], InvalidInputError, "document 0 is empty"),
        ([{}], InvalidInputError, "document 0 is empty"),
        (["fine", {"image": "/no/such/file.png"}], MediaNotFoundError, r"document 1: image 0"),
        ([{"imagee": "x.png"}], ContentTypeError, "unknown content type 'imagee'"),
        ([{"video": []}], EmptyVideoError, "document 0"),
        ([{"text": 42}], InvalidInputError, "document 0"),
        ("not a list", InvalidInputError, "list"),
    ],
)
def test_bad_documents_raise_clear_errors(tiny_embedder, items, error, message):
    with pytest.raises(error, match=message):
        tiny_embedder.embed_documents(items)


def test_corrupt_media_is_an_error_naming_the_item(tiny_embedder, media):
    with pytest.raises(MediaDecodeError, match=r"document 2: image 0"):
        tiny_embedder.embed_documents(["a", "b", {"image": str(media["corrupt"])}])
    with pytest.raises(MediaDecodeError, match=r"query 0: video 0"):
        tiny_embedder.embed_queries([{"video": str(media["corrupt"])}])
    with pytest.raises(InvalidInputError, match="query 0 is empty"):
        tiny_embedder.embed_queries([""])


def test_token_spans_cover_the_text(tiny_embedder):
    text = "Quarterly revenue grew by 12% in the third quarter."
    spans = tiny_embedder.token_spans(text)
    assert len(spans) == len(tiny_embedder.tokenizer.encode(text, add_special_tokens=False))
    assert "".join(text[start:end] for start, end in spans) == text
    assert tiny_embedder.token_spans("") == []


def test_from_settings_and_load_errors(tiny_embedder_dir, minilm_dir, tmp_path):
    from core.settings import Settings

    settings = Settings(
        _env_file=None,
        embedder_model=str(tiny_embedder_dir),
        device="cpu",
        embedding_dim=32,
        embed_batch_tokens=64,
    )
    embedder = Qwen3VLEmbedder.from_settings(settings)
    assert (embedder.dim, embedder.batch_tokens, embedder.name) == (32, 64, str(tiny_embedder_dir))
    with pytest.raises(ModelLoadError, match="cannot load embedder"):
        Qwen3VLEmbedder(str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(ModelLoadError, match="not Qwen3-VL"):
        Qwen3VLEmbedder(str(minilm_dir), device="cpu")
