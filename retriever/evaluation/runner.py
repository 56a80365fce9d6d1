"""Index a dataset's corpus and run every query, for several settings in one run (a sweep).

Settings that change what is indexed (the image pixel budget, the second text vector) get their own
store; settings that only change the search (k, which reranker, or none) reuse it. Each query's first
stage runs once per k; every reranker then scores the same candidates, timed on its own, which gives
its speed (pairs per second) on this corpus beside its quality.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.settings import Settings
from indexer.embedders.base import Embedder
from indexer.media_store import MediaStore
from indexer.setup import ingestor_from_parts
from indexer.store import VectorStore
from retriever.evaluation.dataset import Dataset
from retriever.evaluation.metrics import Scores, evaluate
from retriever.search import Candidates, Retriever
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
    reranker: str | None = None  # which of Models.rerankers; None: the first
    legs: str | None = None  # recall legs joined by "+", e.g. "content+bm25"; None: the settings'
    fusion: str | None = None  # leg weights and RRF constant, e.g. "bm25=2,k=30"; None: the settings'

    @property
    def search_label(self) -> str:
        """What the first stage depends on: k, the image budget, the vectors, the legs and fusion."""
        parts = [f"k={self.k}"]
        if self.image_tokens is not None:
            parts.append(f"img={self.image_tokens}tok")
        parts.append("text+content" if self.text_vector else "content")
        if self.legs is not None:
            parts.append(f"legs={self.legs}")
        if self.fusion is not None:
            parts.append(f"rrf {self.fusion}")
        return ", ".join(parts)

    @property
    def rerank_label(self) -> str:
        if not self.rerank:
            return "no rerank"
        return f"rerank {self.reranker}" if self.reranker else "rerank"

    @property
    def label(self) -> str:
        return f"{self.search_label}, {self.rerank_label}"


def sweep(
    ks: Sequence[int],
    image_tokens: Sequence[int | None],
    text_vector: Sequence[bool],
    rerank: Sequence[bool],
    rerankers: Sequence[str | None] = (None,),
    legs: Sequence[str | None] = (None,),
    fusions: Sequence[str | None] = (None,),
) -> list[Config]:
    """Every combination of the given values; each reranker is one more value of ``rerank=True``."""
    configs = []
    grid = itertools.product(ks, image_tokens, text_vector, legs, fusions, rerank)
    for k, tokens, text, leg, fusion, on in grid:
        if on:
            configs += [Config(k, tokens, text, True, name, leg, fusion) for name in rerankers]
        else:
            configs.append(Config(k, tokens, text, False, None, leg, fusion))
    return configs


def parse_fusion(spec: str | None, settings: Settings) -> tuple[dict[str, float], int]:
    """Leg weights and the RRF constant from ``"bm25=2,text=0.5,k=30"`` over the settings' values.

    Raises:
        ValueError: a malformed spec or an unknown leg.
    """
    weights, k = dict(settings.leg_weights), settings.rrf_k
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            raise ValueError(f"fusion settings are written leg=weight,...,k=N; got {part!r}")
        if name == "k":
            k = int(number)
        elif name in weights:
            weights[name] = number
        else:
            raise ValueError(f"unknown leg {name!r} in {spec!r}; legs are {', '.join(weights)}")
    return weights, k


@dataclass(frozen=True)
class RerankSpeed:
    """How fast a reranker scored this sweep's candidates (warm: its first query ran once untimed)."""

    pairs: int
    seconds: float

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else 0.0

    @property
    def ms_per_25(self) -> float:
        """Milliseconds for 25 pairs: one query of 25 candidates, as published comparisons time it."""
        return 25_000 * self.seconds / self.pairs if self.pairs else 0.0


@dataclass(frozen=True)
class ConfigResult:
    """What one configuration scored: the first stage, and after reranking when it reranks."""

    config: Config
    first_stage: Scores
    reranked: Scores | None
    latency_ms: dict[str, float]  # mean / p50 / p95 per query, of the first stage and of the whole search
    indexed_units: int
    speed: RerankSpeed | None = None  # the reranker's, when the configuration reranks


@dataclass(frozen=True)
class Models:
    """The models a sweep uses, loaded once; ``rerankers`` by name, in the order they are reported."""

    embedder: Embedder
    text_embedder: Embedder | None = None
    rerankers: dict[str, Any] = field(default_factory=dict)

    def reranker(self, name: str | None) -> tuple[str, Any]:
        """The reranker a configuration names (None: the first), with its name."""
        if not self.rerankers:
            raise ValueError("a configuration with reranking needs a reranker")
        if name is None:
            return next(iter(self.rerankers.items()))
        if name not in self.rerankers:
            raise ValueError(f"no reranker called {name!r}; loaded: {', '.join(self.rerankers)}")
        return name, self.rerankers[name]


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
    for config in (c for c in configs if c.rerank):
        models.reranker(config.reranker)  # every named reranker is loaded, before any indexing
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
            setting = group[0].search_label.split(", ", 1)[1]
            progress(f"indexing {len(dataset.corpus)} corpus items ({setting})")
            ids = _index(dataset, indexed, store, media, models.embedder, text_embedder, folder)

            def recall_key(c: Config) -> tuple[int, str, str]:
                return (c.k, c.legs or "", c.fusion or "")

            for (k, legs, fusion), same_k in itertools.groupby(sorted(group, key=recall_key), key=recall_key):
                same_k = list(same_k)
                weights, rrf_k = parse_fusion(fusion or None, settings)
                retriever = Retriever(
                    store,
                    media,
                    models.embedder,
                    None,
                    text_embedder,
                    legs=legs.split("+") if legs else settings.search_legs,
                    weights=weights,
                    rrf_k=rrf_k,
                )
                progress(f"running {len(dataset.queries)} queries, {same_k[0].search_label}")
                first = _first_stage(dataset, retriever, ids, k)
                for config in same_k:
                    reranked = speed = None
                    if config.rerank:
                        name, reranker = models.reranker(config.reranker)
                        progress(f"reranking {len(first)} queries' candidates with {name}, k={k}")
                        reranked, speed = _rerank(first, retriever, reranker, ids)
                    results[config] = _score(config, first, reranked, speed, dataset, store.count())
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
    texts = (folder / "texts").resolve()  # hits name their files by absolute path (a relative --out too)
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
class _FirstStage:
    candidates: Candidates
    ranking: list[str]  # corpus ids, best first
    ms: float  # embed + vector search


@dataclass(frozen=True)
class _Reranked:
    ranking: list[str]
    ms: float  # hydrate + rerank


def _first_stage(
    dataset: Dataset, retriever: Retriever, ids: dict[tuple[str, int | None], str], k: int
) -> dict[str, _FirstStage]:
    runs = {}
    for query in dataset.queries:
        candidates = retriever.recall(query.content(), k=k)
        hits = retriever.order(candidates, None, k).hits
        ms = candidates.timings_ms.get("embed", 0.0) + candidates.timings_ms.get("search", 0.0)
        runs[query.id] = _FirstStage(candidates, _corpus_ids(hits, ids), ms)
    return runs


def _rerank(
    first: dict[str, _FirstStage], retriever: Retriever, reranker: Any, ids: dict[tuple[str, int | None], str]
) -> tuple[dict[str, _Reranked], RerankSpeed]:
    """Every query's candidates scored by ``reranker``; the scoring alone is what its speed counts."""
    runs, pairs, seconds, warm = {}, 0, 0.0, False
    for query_id, run in first.items():
        candidates = Candidates(run.candidates.query, run.candidates.points)
        documents = retriever.hydrate(candidates, reranker)
        if not documents:
            runs[query_id] = _Reranked([], candidates.timings_ms["hydrate"])
            continue
        if not warm:  # the first call of a model pays one-time costs (allocation, kernel choice)
            reranker.score(candidates.query, documents)
            warm = True
        started = time.perf_counter()
        scores = reranker.score(candidates.query, documents)
        elapsed = time.perf_counter() - started
        pairs, seconds = pairs + len(documents), seconds + elapsed
        hits = retriever.order(candidates, scores, len(documents)).hits
        runs[query_id] = _Reranked(_corpus_ids(hits, ids), candidates.timings_ms["hydrate"] + 1000 * elapsed)
    return runs, RerankSpeed(pairs, seconds)


def _corpus_ids(hits: Sequence[Hit], ids: dict[tuple[str, int | None], str]) -> list[str]:
    return [c for c in (_corpus_id(h, ids) for h in hits) if c]


def _corpus_id(hit: Hit, ids: dict[tuple[str, int | None], str]) -> str | None:
    # A PDF judged page by page maps (file, page); anything judged as a whole file maps (file, None).
    return ids.get((hit.source, hit.page)) or ids.get((hit.source, None))


def _score(
    config: Config,
    first: dict[str, _FirstStage],
    reranked: dict[str, _Reranked] | None,
    speed: RerankSpeed | None,
    dataset: Dataset,
    units: int,
) -> ConfigResult:
    first_scores = evaluate({q: r.ranking for q, r in first.items()}, dataset.qrels, config.k)
    latency = _summary("first_stage", [r.ms for r in first.values()])
    if reranked is None:
        # Without reranking the search is the first stage.
        latency |= _summary("total", [r.ms for r in first.values()])
        return ConfigResult(config, first_scores, None, latency, units)
    reranked_scores = evaluate({q: r.ranking for q, r in reranked.items()}, dataset.qrels, config.k)
    latency |= _summary("total", [first[q].ms + r.ms for q, r in reranked.items()])
    return ConfigResult(config, first_scores, reranked_scores, latency, units, speed)


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
