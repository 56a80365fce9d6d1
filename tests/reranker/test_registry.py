"""Reranker specs (``[NAME=]MODEL[;backend=B][;profile=P]``), the ``rerankers`` setting, and picking a
loaded reranker by name, on the tiny Qwen3-VL and jina-m0 replicas."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInputError, UnknownModelError
from core.settings import Settings
from reranker.registry import RerankerSpec, pick, specs_from_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Qwen/Qwen3-VL-Reranker-8B", ("Qwen3-VL-Reranker-8B", "Qwen/Qwen3-VL-Reranker-8B", "auto", None)),
        ("jina=jinaai/jina-reranker-m0", ("jina", "jinaai/jina-reranker-m0", "auto", None)),
        (
            " mm2b = /models/mm2b/ ; profile = /models/p.json ; backend=qwen3-vl ",
            ("mm2b", "/models/mm2b/", "qwen3-vl", "/models/p.json"),
        ),
        ("/models/run=3/ckpt", ("ckpt", "/models/run=3/ckpt", "auto", None)),  # "=" inside a path
    ],
)
def test_specs_are_read(text, expected):
    spec = RerankerSpec.parse(text)
    assert (spec.name, spec.model, spec.backend, spec.profile) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no model"),
        ("name=", "names no model"),
        ("m;colour=red", "'colour=red' is not backend=B or profile=P"),
        ("m;profile", "is not backend=B or profile=P"),
        ("m;backend=bert", "unknown backend 'bert'"),
    ],
)
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(InvalidInputError, match=message):
        RerankerSpec.parse(text)


def test_the_setting_lists_the_default_first_and_refuses_two_of_a_name(monkeypatch):
    monkeypatch.setenv("MMSEARCH_RERANKERS", "jina=jinaai/jina-reranker-m0;backend=jina-m0, Org/Other-8B")
    settings = Settings(
        _env_file=None, reranker_model="/ckpt/Qwen3-VL-Reranker-2B", reranker_profile="p.json"
    )
    specs = specs_from_settings(settings)
    assert [(s.name, s.backend, s.profile) for s in specs] == [
        ("Qwen3-VL-Reranker-2B", "auto", "p.json"),  # the default keeps the reranker_* settings
        ("jina", "jina-m0", None),
        ("Other-8B", "auto", None),  # an added one does not inherit the default's profile
    ]
    monkeypatch.setenv("MMSEARCH_RERANKERS", '["a=x", "b=y"]')  # a JSON list works too
    assert [s.name for s in specs_from_settings(Settings(_env_file=None))][1:] == ["a", "b"]
    clash = Settings(_env_file=None, rerankers=["qwen3-vl-reranker-2b=/elsewhere"])
    with pytest.raises(InvalidInputError, match="two rerankers are called"):
        specs_from_settings(clash)


def test_a_request_picks_by_name_any_case_or_by_model_id(tiny_reranker, tiny_jina):
    loaded = {"qwen": tiny_reranker, "jina": tiny_jina}
    assert pick(loaded, None) == ("qwen", tiny_reranker)  # no name: the default (first)
    assert pick(loaded, "JINA") == ("jina", tiny_jina)
    assert pick(loaded, tiny_jina.model_name) == ("jina", tiny_jina)
    with pytest.raises(UnknownModelError, match=r"no reranker called 'rerank-v3\.5'.*loaded: qwen, jina"):
        pick(loaded, "rerank-v3.5")
    with pytest.raises(UnknownModelError, match="no reranker loaded"):
        pick({}, None)


def test_every_configured_reranker_loads_under_its_name(tiny_reranker_dir, tiny_jina_dir, tiny_jina, media):
    from reranker import rerankers_from_settings

    settings = Settings(
        _env_file=None,
        reranker_model=str(tiny_reranker_dir),
        rerankers=[f"jina={tiny_jina_dir}"],
        device="cpu",
        dtype="float32",
    )
    loaded = rerankers_from_settings(settings)
    assert list(loaded) == [tiny_reranker_dir.name, "jina"]
    assert [r.backend for r in loaded.values()] == ["qwen3-vl", "jina-m0"]  # the backend is detected
    docs = ["Revenue grew 12 percent.", {"image": str(media["chart"])}]
    same = tiny_jina.score("revenue", docs)
    np.testing.assert_allclose(loaded["jina"].score("revenue", docs), same, atol=1e-6)
