"""SentenceTransformerEmbedder: the real all-MiniLM-L6-v2 (text) and a tiny random CLIP (text + images)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.content import parse_content
from core.errors import InvalidInputError, MediaDecodeError, MediaNotFoundError, ModelLoadError
from core.media import load_image, load_video


def unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def clip_model(tiny_clip_dir):
    """The same folder loaded straight through sentence-transformers: the reference."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_clip_dir), device="cpu")


# -- MiniLM: a real text model ------------------------------------------------------------------------


def test_minilm_knows_what_it_reads(minilm, minilm_dir):
    assert minilm.modalities == {"text"}
    assert minilm.dim == 384
    assert minilm.name == str(minilm_dir)
    assert minilm.max_tokens == 256


def test_minilm_embeddings_carry_meaning(minilm):
    cat, kitten, revenue = minilm.embed_documents(
        ["a cat sits on the mat", "a kitten on a rug", "quarterly revenue grew 12%"]
    )
    assert cat @ kitten > cat @ revenue + 0.3, (cat @ kitten, cat @ revenue)
    (query,) = minilm.embed_queries(["how did sales develop this quarter?"])
    assert query @ revenue > query @ cat


def test_minilm_matches_sentence_transformers_and_is_normalised(minilm, minilm_dir):
    from sentence_transformers import SentenceTransformer

    texts = ["first passage", "a second, longer passage about embeddings " * 5]
    ours = minilm.embed_documents(texts)
    expected = SentenceTransformer(str(minilm_dir), device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (2, 384)
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert minilm.embed_documents([]).shape == (0, 384)


def test_a_document_longer_than_the_window_is_the_mean_of_its_windows(minilm, minilm_dir):
    from sentence_transformers import SentenceTransformer

    # Two halves about different things, each under the window, together over it.
    first = "The pump's intake valve is greased every spring before the first frost. " * 12
    second = "Quarterly revenue grew in three regions after the product shipped. " * 12
    text = first + second
    spans = minilm.token_spans(text)
    assert len(spans) > minilm.max_tokens
    (ours,) = minilm.embed_documents([text])
    reference = SentenceTransformer(str(minilm_dir), device="cpu")
    pieces = minilm._windows(text)
    assert len(pieces) == 2 and "".join(pieces) == text
    assert all(len(minilm.token_spans(p)) <= minilm.max_tokens - 2 for p in pieces)
    expected = unit(unit(reference.encode(pieces, normalize_embeddings=True)).mean(axis=0))
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    # The second half counts: truncated, the model would read the valves only.
    (revenue,) = minilm.embed_queries(["how did revenue develop across regions?"])
    truncated = unit(reference.encode([text], normalize_embeddings=True))[0]
    assert revenue @ ours > revenue @ truncated + 0.05, (revenue @ ours, revenue @ truncated)
    # A query is never cut into windows.
    np.testing.assert_allclose(minilm.embed_queries([text])[0], truncated, atol=1e-5)


def test_minilm_queries_use_no_prompt_unless_given_one(minilm):
    text = "revenue growth"
    np.testing.assert_allclose(minilm.embed_queries([text]), minilm.embed_documents([text]), atol=1e-6)
    instructed = minilm.embed_queries([text], instruction="query: ")
    np.testing.assert_allclose(instructed, minilm.embed_documents(["query: " + text]), atol=1e-5)


def test_minilm_refuses_pictures_and_empty_items(minilm, media):
    with pytest.raises(InvalidInputError, match=r"document 1: the embedder .* reads only text, not image"):
        minilm.embed_documents(["fine", {"image": str(media["chart"]), "text": "caption"}])
    assert not minilm.accepts(parse_content({"video": str(media["clip"])}))
    assert minilm.accepts(parse_content("text")) and not minilm.accepts(parse_content(""))
    with pytest.raises(InvalidInputError, match="query 0 is empty"):
        minilm.embed_queries([""])
    with pytest.raises(InvalidInputError, match="list"):
        minilm.embed_documents("not a list")


def test_minilm_token_spans_follow_its_wordpiece_tokenizer(minilm):
    text = "Embeddings map text to vectors."
    spans = minilm.token_spans(text)
    pieces = minilm.model.tokenizer.tokenize(text)
    assert len(spans) == len(pieces)
    assert [text[s:e].lower() for s, e in spans] == [p.removeprefix("##") for p in pieces]


# -- tiny CLIP: text and images in one space ----------------------------------------------------------


def test_clip_reads_text_images_and_video(tiny_clip, clip_model):
    assert tiny_clip.modalities == {"text", "image", "video"}
    assert tiny_clip.dim == 24 == clip_model.get_embedding_dimension()


def test_clip_images_and_text_match_sentence_transformers(tiny_clip, clip_model, media):
    images = tiny_clip.embed_documents([{"image": str(media["chart"])}, {"image": str(media["photo"])}])
    texts = tiny_clip.embed_documents(["a bar chart", "the cat"])
    assert images.shape == texts.shape == (2, 24)
    pictures = [load_image(str(media["chart"])), load_image(str(media["photo"]))]
    np.testing.assert_allclose(images, unit(clip_model.encode(pictures)), atol=1e-5, rtol=0)
    np.testing.assert_allclose(texts, unit(clip_model.encode(["a bar chart", "the cat"])), atol=1e-5, rtol=0)
    assert np.abs(images[0] - images[1]).max() > 1e-3


def test_clip_video_is_the_mean_of_its_frames(tiny_clip, clip_model, frames, media):
    clip_frames = frames(4)
    (vector,) = tiny_clip.embed_documents([{"video": clip_frames}])
    expected = unit(unit(clip_model.encode(clip_frames)).mean(axis=0))
    np.testing.assert_allclose(vector, expected, atol=1e-5, rtol=0)
    # A video file is sampled at video_fps, like the Qwen3-VL path, then averaged the same way.
    (from_file,) = tiny_clip.embed_queries([{"video": str(media["clip"])}])
    sampled = load_video(str(media["clip"]), fps=1.0, max_frames=64).frames
    np.testing.assert_allclose(
        from_file, unit(unit(clip_model.encode(list(sampled))).mean(axis=0)), atol=1e-5
    )


def test_clip_mixed_content_averages_its_normalised_parts(tiny_clip, media):
    text, image = tiny_clip.embed_queries(["a bar chart", {"image": str(media["chart"])}])
    (mixed,) = tiny_clip.embed_queries([{"image": str(media["chart"]), "text": "a bar chart"}])
    np.testing.assert_allclose(mixed, unit((text + image) / 2), atol=1e-5, rtol=0)
    pil = Image.open(media["chart"])
    np.testing.assert_allclose(tiny_clip.embed_documents([pil])[0], image, atol=1e-5)


def test_clip_bad_media_errors_name_the_item(tiny_clip, media):
    with pytest.raises(MediaDecodeError, match=r"document 1: image 0"):
        tiny_clip.embed_documents(["fine", {"image": str(media["corrupt"])}])
    with pytest.raises(MediaNotFoundError, match=r"query 0: video 0"):
        tiny_clip.embed_queries([{"video": "/no/such/clip.mp4"}])


def test_clip_token_spans(tiny_clip):
    text = "the cat sat"
    spans = tiny_clip.token_spans(text)
    assert spans and spans[0] == (0, 3) and spans[-1][1] == len(text)


def test_load_errors_are_typed(tmp_path):
    from indexer.embedders.sentence import SentenceTransformerEmbedder

    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="cannot load embedder"):
        SentenceTransformerEmbedder(str(empty), device="cpu")
