"""Index a dataset's corpus and run every query, for several settings in one run (a sweep).

Settings that change what is indexed (the image pixel budget, the second text vector) get their own
store; settings that only change the search (k, reranking) reuse it. One search with reranking gives
both stages: the first-stage order is each hit's ``first_stage_rank``.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings
from indexer.embedders.base import Embedder
from indexer.media_store import MediaStore
from indexer.setup import ingestor_from_parts
from indexer.store import VectorStore
from retriever.evaluation.dataset import Dataset
from retriever.evaluation.metrics import Scores, evaluate
from retriever.search import Retriever
from retriever.types import Hit

logger = logging.getLogger(__name__)

TOKEN_PIXELS = 32 * 32  # one merged vision token of the Qwen3-VL models covers 32 x 32 pixels


@dataclass(frozen=True)
class Config:
    """One point of a sweep."""

    k: int = 50
    image_tokens: int | None = None  # None: the settings' image_max_pixels
    text_vector: bool = False
    rerank: bool = True

    @property
    def label(self) -> str:
        parts = [f"k={self.k}"]
        if self.image_tokens is not None:
            parts.append(f"img={self.image_tokens}tok")
        parts.append("text+content" if self.text_vector else "content")
        parts.append("rerank" if self.rerank else "no rerank")
        return ", ".join(parts)


def sweep(
    ks: Sequence[int], image_tokens: Sequence[int | None], text_vector: Sequence[bool], rerank: Sequence[bool]
) -> list[Config]:
    """Every combination of the given values."""
    return [Config(*values) for values in itertools.product(ks, image_tokens, text_vector, rerank)]


@dataclass(frozen=True)
class ConfigResult:
    """What one configuration scored: the first stage, and after reranking when it reranks."""

    config: Config
    first_stage: Scores
    reranked: Scores | None
    latency_ms: dict[str, float]  # mean / p50 / p95 per query, of the first stage and of the whole search
    indexed_units: int


@dataclass(frozen=True)
class Models:
    """The models a sweep uses, loaded once."""

    embedder: Embedder
    text_embedder: Embedder | None = None
    reranker: Any = None


def run_sweep(
    dataset: Dataset,
    settings: Settings,
    configs: Sequence[Config],
    models: Models,
    work_dir: Path,
    *,
    progress: Callable[[str], None] = lambda message: None,
) -> list[ConfigResult]:
    """Index the corpus once per distinct indexing setting, run every query, score every config."""
    if any(c.text_vector for c in configs) and models.text_embedder is None:
        raise ValueError("a configuration with the text vector needs a text embedder")
    if any(c.rerank for c in configs) and models.reranker is None:
        raise ValueError("a configuration with reranking needs a reranker")
    results: dict[Config, ConfigResult] = {}
    by_index = itertools.groupby(sorted(configs, key=_index_key), key=_index_key)
    for (tokens, text_vector), group in by_index:
        group = list(group)
        indexed = (
            settings.model_copy(update={"image_max_pixels": tokens * TOKEN_PIXELS}) if tokens else settings
        )
        folder = work_dir / f"index-{tokens or 'default'}-{'text' if text_vector else 'content'}"
        text_embedder = models.text_embedder if text_vector else None
        with VectorStore.open(path=folder / "qdrant", collection="eval") as store:
            media = MediaStore(folder / "media")
            progress(f"indexing {len(dataset.corpus)} corpus items ({group[0].label.split(', ', 1)[1]})")
            ids = _index(dataset, indexed, store, media, models.embedder, text_embedder, folder)
            retriever = Retriever(store, media, models.embedder, models.reranker, text_embedder)
            for k, same_k in itertools.groupby(sorted(group, key=lambda c: c.k), key=lambda c: c.k):
                same_k = list(same_k)
                progress(f"running {len(dataset.queries)} queries, k={k}")
                runs = _run_queries(dataset, retriever, ids, k, rerank=any(c.rerank for c in same_k))
                for config in same_k:
                    results[config] = _score(config, runs, dataset, store.count())
    return [results[c] for c in configs]


def _index_key(config: Config) -> tuple[int, bool]:
    return (config.image_tokens or 0, config.text_vector)


def _index(
    dataset: Dataset,
    settings: Settings,
    store: VectorStore,
    media: MediaStore,
    embedder: Embedder,
    text_embedder: Embedder | None,
    folder: Path,
) -> dict[tuple[str, int | None], str]:
    """Ingest the corpus; returns (source path, page) -> corpus id, to read hits back as corpus ids."""
    texts = folder / "texts"
    texts.mkdir(parents=True, exist_ok=True)
    ids: dict[tuple[str, int | None], str] = {}
    paths: list[Path] = []
    for n, item in enumerate(dataset.corpus):
        if item.file is None:
            path = texts / f"{n:07d}.txt"
            body = f"{item.title}\n\n{item.text}" if item.title else item.text
            if not path.exists() or path.read_text(encoding="utf-8") != body:
                path.write_text(body, encoding="utf-8")
        else:
            path = item.file.resolve()
        ids[(str(path), item.page)] = item.id
        paths.append(path)
    ingestor = ingestor_from_parts(settings, store, media, embedder, text_embedder)
    report = ingestor.ingest(list(dict.fromkeys(paths)))
    for failed in (f for f in report.files if f.status == "failed"):
        logger.warning("not indexed: %s (%s)", failed.source, failed.error)
    return ids


@dataclass(frozen=True)
class _QueryRun:
    first_stage: list[str]
    reranked: list[str] | None
    first_stage_ms: float
    total_ms: float


def _run_queries(
    dataset: Dataset, retriever: Retriever, ids: dict[tuple[str, int | None], str], k: int, *, rerank: bool
) -> dict[str, _QueryRun]:
    runs = {}
    for query in dataset.queries:
        started = time.perf_counter()
        result = retriever.search(query.content(), k=k, top_n=k, rerank=rerank)
        total = 1000 * (time.perf_counter() - started)
        hits = list(result.hits)
        first = [_corpus_id(h, ids) for h in sorted(hits, key=lambda h: h.first_stage_rank)]
        reranked = [_corpus_id(h, ids) for h in hits] if rerank and retriever.reranker is not None else None
        stage_one = result.timings_ms.get("embed", 0.0) + result.timings_ms.get("search", 0.0)
        runs[query.id] = _QueryRun(
            [c for c in first if c],
            [c for c in reranked if c] if reranked is not None else None,
            stage_one,
            total,
        )
    return runs


def _corpus_id(hit: Hit, ids: dict[tuple[str, int | None], str]) -> str | None:
    # A PDF judged page by page maps (file, page); anything judged as a whole file maps (file, None).
    return ids.get((hit.source, hit.page)) or ids.get((hit.source, None))


def _score(config: Config, runs: dict[str, _QueryRun], dataset: Dataset, units: int) -> ConfigResult:
    first = evaluate({q: r.first_stage for q, r in runs.items()}, dataset.qrels, config.k)
    reranked = None
    if config.rerank:
        reranked = evaluate({q: r.reranked or [] for q, r in runs.items()}, dataset.qrels, config.k)
    latency = _summary("first_stage", [r.first_stage_ms for r in runs.values()])
    if config.rerank:
        latency |= _summary("total", [r.total_ms for r in runs.values()])
    else:
        # Without reranking the search is the first stage (plus result building).
        latency |= _summary("total", [r.first_stage_ms for r in runs.values()])
    return ConfigResult(config, first, reranked, latency, units)


def _summary(name: str, values: list[float]) -> dict[str, float]:
    if not values:
        return {f"{name}_mean": 0.0, f"{name}_p50": 0.0, f"{name}_p95": 0.0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        f"{name}_mean": statistics.fmean(values),
        f"{name}_p50": statistics.median(values),
        f"{name}_p95": p95,
    }
