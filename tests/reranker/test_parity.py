"""Our batched scorer against the plain one-pair-per-forward reference, in fp32 on CPU."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_chart, write_video
from tests.reranker.reference import ReferenceScorer, Side

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference(tiny_reranker_dir):
    return ReferenceScorer(tiny_reranker_dir)


@pytest.fixture(scope="module")
def video_frames():
    # 512x288 is already inside the video pixel budget and a multiple of 32, so neither pipeline resizes.
    return [make_chart(512, 288, seed=40 + i) for i in range(4)]


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (90, 20, 160)]
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", colors, fps=2, size=(512, 288))


def decode_reference_frames(path, fps=1.0, max_frames=64):
    """Decode with PyAV and sample with the official smart_nframes rule."""
    import av
    from qwen_vl_utils.vision_process import smart_nframes

    with av.open(str(path)) as container:
        decoded = [f.to_image() for f in container.decode(video=0)]
        rate = float(container.streams.video[0].average_rate)
    n = smart_nframes({"fps": fps, "max_frames": max_frames}, total_frames=len(decoded), video_fps=rate)
    indices = np.linspace(0, len(decoded) - 1, n).round().astype(int).tolist()
    return [decoded[i] for i in indices], indices, rate


def test_text_pairs_match_reference(tiny_reranker, reference):
    query = "What was the revenue growth in 2023?"
    docs = [
        "Revenue grew by 12 percent in 2023.",
        "The cat sat on the mat.",
        "A long report. " * 40,
        "",
    ]
    ours = tiny_reranker.score(query, docs)
    expected = [reference.score(Side(text=query), Side(text=d or None)) for d in docs]
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)


def test_image_and_mixed_documents_match_reference(tiny_reranker, reference, media):
    query = "bar chart of quarterly sales"
    docs = [
        {"image": str(media["chart"])},
        {"image": str(media["photo"])},
        {"image": str(media["wide"]), "text": "Figure 3: sales by region"},
        {"image": [str(media["chart"]), str(media["photo"])], "text": "two figures"},
    ]
    sides = [
        Side(images=[media["chart"]]),
        Side(images=[media["photo"]]),
        Side(images=[media["wide"]], text="Figure 3: sales by region"),
        Side(images=[media["chart"], media["photo"]], text="two figures"),
    ]
    ours = tiny_reranker.score(query, docs)
    expected = [reference.score(Side(text=query), s) for s in sides]
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)


def test_image_query_matches_reference(tiny_reranker, reference, media):
    query = {"image": str(media["chart"]), "text": "find pages like this"}
    docs = ["a table of numbers", {"image": str(media["photo"])}]
    ours = tiny_reranker.score(query, docs)
    q = Side(images=[media["chart"]], text="find pages like this")
    expected = [
        reference.score(q, Side(text="a table of numbers")),
        reference.score(q, Side(images=[media["photo"]])),
    ]
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)


def test_video_documents_match_reference(tiny_reranker, reference, video_frames, video_file):
    query = "a clip with a red frame"
    ours = tiny_reranker.score(query, [{"video": video_frames}, {"video": str(video_file), "text": "clip"}])
    decoded, indices, rate = decode_reference_frames(video_file)
    expected = [
        reference.score(Side(text=query), Side(video=video_frames, video_fps=1.0)),
        reference.score(
            Side(text=query), Side(video=decoded, video_fps=rate, video_indices=indices, text="clip")
        ),
    ]
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)


def test_instruction_override_matches_reference(tiny_reranker, reference):
    instruction = "Find the passage that states a number."
    ours = tiny_reranker.score("growth", ["Revenue grew by 12 percent."], instruction=instruction)
    expected = reference.score(Side(text="growth"), Side(text="Revenue grew by 12 percent."), instruction)
    default = tiny_reranker.score("growth", ["Revenue grew by 12 percent."])
    assert abs(ours[0] - expected) < TOLERANCE
    assert abs(ours[0] - default[0]) > TOLERANCE  # the override really reached the prompt


def test_scores_spread_over_the_unit_interval(tiny_reranker, media):
    docs = [f"document number {i} about topic {i * 7}" for i in range(12)]
    docs += [{"image": str(media[k])} for k in ("chart", "photo", "wide")]
    scores = tiny_reranker.score("which topic?", docs)
    assert all(0.0 < s < 1.0 for s in scores)
    # Parity on scores that all sit near 0.5 would prove little.
    assert max(scores) - min(scores) > 0.3, scores
    assert min(scores) < 0.5 < max(scores), scores


def test_video_query_matches_reference(tiny_reranker, reference, video_frames, media):
    query = {"video": video_frames, "text": "find this scene"}
    docs = ["a red car", {"image": str(media["chart"])}]
    ours = tiny_reranker.score(query, docs)
    q = Side(video=video_frames, video_fps=1.0, text="find this scene")
    expected = [reference.score(q, Side(text="a red car")), reference.score(q, Side(images=[media["chart"]]))]
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)
