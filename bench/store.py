"""The store engines side by side: Qdrant Edge (the embedded default) and qdrant-client's local mode
(the old default), on the same synthetic units, each (engine, size) in its own processes.

    .venv/bin/python bench/store.py --sizes 10000,100000 --dim 2048 --engines edge,local
    .venv/bin/python bench/store.py --sizes 1000000 --dim 1024 --engines edge --tmp /var/tmp/store-bench
    .venv/bin/python bench/store.py --table bench/results/store-....json   # print a report's table

The units look like the indexer's: a ``content`` vector (unit length, float32, ``--dim`` dims) and a
``bm25`` sparse vector (:func:`indexer.store.bm25.document_vector` of the unit's text), with the
payload the ingest pipeline writes (``doc_id``, ``modality``, ``tags``, ``source``, ``source_dirs``,
``unit_index``, ``sha256``, ``ingested_at``, ``title``, ``text``, ...). Everything derives from
``--seed``, document by document, so any run regenerates the same corpus in batches and never holds
all vectors at once.

- Vectors: 200 cluster centres (skewed popularity), one centre per document plus a document offset,
  one unit per page/passage around it; the offsets live mostly in a 256-dim subspace with a decaying
  spectrum, plus a little isotropic noise and a shared mean direction (embeddings are anisotropic).
  Same-document units have a cosine of about 0.65, same-cluster units about 0.4, others about 0.1.
- Text: about 800 characters per unit of Zipf-distributed English words (a ranked vocabulary of
  common and technical words, then a tail of rarer made-up words), with the document's identifiers
  (option names, environment variables, function names, error codes, versions) sprinkled in.
- Queries: a query vector near a random document's centre (like a new unit of it); a filter on one
  modality and one tag (both drawn with the corpus' skew); a text of 3 to 6 vocabulary words, with
  an identifier in a quarter of them.

Each case (engine, size) runs as separate processes, so that one engine's memory never counts
against another and a crash (or a kill) loses only that case:

1. ``--worker build``: generate, upsert in batches of 256 (timed alone, without the generation),
   close. While generating it computes the exact top-50 of every query with numpy (plain, and under
   the query's filter), the ground truth for recall. Edge is opened with ``optimize_every`` above the
   size, so no index is built during the upsert (``--optimize-every N`` times an ingest's rebuilds).
2. ``--worker index`` (Edge): open, ``optimize()`` (builds HNSW), close.
3. the store's files are evicted from the page cache (``posix_fadvise(DONTNEED)``), then
   ``--worker serve``: cold open (``VectorStore.open`` plus the first query), then the timed queries
   (top-50: plain dense, filtered, fused dense + bm25 by RRF, fused and filtered) after 5 warm-ups.
   The four kinds take turns query by query. Edge gets two passes: the first while the page cache
   fills (``*_first_pass_*``), the second is the steady state reported.
4. ``--worker open``: a warm-cache reopen in a fresh process (open plus first query).

Peak RSS is each worker's own high-water mark (``ru_maxrss`` from ``os.wait4``), with its anonymous
and file-backed parts sampled from ``/proc`` (Edge maps its segment files: file-backed pages count in
RSS but the kernel can drop them). Results are merged into ``--out``/store-<cpu>-<cores>c-<date>.json
or ``--report FILE`` (a row per engine, size, dim, ``--optimize-every``, ``--hnsw-ef``,
``--hnsw-ef-filtered`` and ``--full-scan-kb``; later runs replace rows with the same key) after
every case, and the Markdown table is printed at the end. ``--keep`` keeps the stores; ``--reuse``
then serves them again without rebuilding (with other search widths, say).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLLECTION = "bench"
BATCH = 256
TOP_K = 50
WARMUP = 5
N_CLUSTERS = 200
SUBSPACE = 256
NAMESPACE = uuid.UUID("5b0c3f0e-2f43-4d1c-9a53-6d2b7c1e0a11")
MODALITIES = ("page", "text", "image", "video")
MODALITY_P = (0.55, 0.25, 0.12, 0.08)
N_TAGS = 30
TAGS = tuple(f"t{i}" for i in range(N_TAGS))
EXTENSIONS = {"page": "pdf", "text": "md", "image": "png", "video": "mp4"}
ENGINES = (
    "edge",
    "edge-int8",
    "edge-binary",
    "edge-allgraphs",
    "edge-disk",
    "edge-int8-disk",
    "edge-hotidx",
    "edge-disk-hotidx",
    "local",
)
KINDS = ("dense", "filtered", "fused", "fused_filtered")

# -- vocabulary ---------------------------------------------------------------------------------------

# Ranked roughly by frequency: function words, then common words, then documentation/technical words.
_WORDS = """
the of and to a in is that for it as with was on be by this are or at from which an not have can has
but all if one their will more when its there other so each these about into only than may then also
such any no two most some them new used use we you they our your it's he she his her were been would
should could must time first after before over under between through during without within while where
how what who why very many much well just like make made see way because both same different three
part number set data file system page model first next last high low long short large small good
first way work year people day part place case point group problem fact hand side state world order
value result form line example level change question end name information area process power report
result service section figure table chapter note step method type field record version user text image
video document search query index vector store server client request response error message option
default setting configuration command output input format size memory disk cache batch thread process
run running start stop open close read write load save update delete create build install test check
""".split()  # noqa: SIM905
_DOMAIN = """
embedding embeddings retrieval reranker rerank score scores ranking recall precision latency throughput
cluster shard segment replica payload filter filters metadata schema collection collections point
points dense sparse keyword token tokens tokenizer stemming language english model models weights
checkpoint inference training fine-tune gpu cpu cuda kernel tensor tensors matrix attention layer
layers transformer vision patch patches resolution pixel pixels render rendering thumbnail frame frames
timestamp timestamps transcript audio speech subtitle caption captions chart diagram manual manuals
appendix specification spec release notes changelog upgrade migration migrate backup snapshot restore
volume volumes container docker compose kubernetes deployment helm ingress proxy gateway endpoint api
rest http https json yaml toml environment variable variables path directory folder permission
permissions owner group user users account password secret token certificate tls ssl network port host
address bandwidth timeout retry retries queue worker workers scheduler job jobs pipeline stage stages
loader loaders parser parsing extract extraction ocr layout heading paragraph sentence word words
character characters unicode encoding utf-8 ascii byte bytes compression archive zip tar gzip hash
checksum digest sha256 signature license warranty safety warning caution hazard voltage current
battery charger motor pump valve sensor sensors calibration firmware hardware device devices controller
display screen panel button switch cable connector interface adapter module modules component
components assembly maintenance inspection troubleshooting diagnostic fault alarm alert threshold limit
limits range minimum maximum average median percentile benchmark profile profiling trace log logs
logging metric metrics monitor monitoring dashboard prometheus grafana health readiness liveness
""".split()  # noqa: SIM905
_ONSETS = "b c d f g h k l m n p r s t v w b d g l m n p r s t br cl cr dr fl gr pl pr st tr th sh ch".split()  # noqa: SIM905
_VOWELS = "a e i o u a e i o u ai ea ee oo ou".split()  # noqa: SIM905
_CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "nt", "st"]
_SUFFIXES = ["", "", "", "ing", "ed", "er", "ion", "ment", "ity", "al", "ic", "ive", "ous", "ness", "ly"]
_ID_PREFIXES = ["MMSEARCH", "QDRANT", "CUDA", "HF", "TORCH", "APP", "OMP", "PYTHON"]
_ID_SUFFIXES = ["Error", "Config", "Manager", "Handler", "Store", "Index", "Client", "Options", "Loader"]


def _build_vocabulary(rng: np.random.Generator, tail: int) -> list[str]:
    seen: set[str] = set()
    vocab: list[str] = []
    for word in (*_WORDS, *_DOMAIN):
        if word not in seen:
            seen.add(word)
            vocab.append(word)
    target = len(vocab) + tail
    while len(vocab) < target:
        syllables = int(rng.integers(1, 3))
        word = (
            "".join(
                _ONSETS[rng.integers(len(_ONSETS))]
                + _VOWELS[rng.integers(len(_VOWELS))]
                + _CODAS[rng.integers(len(_CODAS))]
                for _ in range(syllables)
            )
            + _SUFFIXES[rng.integers(len(_SUFFIXES))]
        )
        if word not in seen:
            seen.add(word)
            vocab.append(word)
    return vocab


def _build_identifiers(rng: np.random.Generator, count: int) -> list[str]:
    words = [w for w in _DOMAIN if w.isalpha() and len(w) > 2]

    def w() -> str:
        return words[rng.integers(len(words))]

    makers = [
        lambda: f"--{w()}-{w()}",
        lambda: f"{_ID_PREFIXES[rng.integers(len(_ID_PREFIXES))]}_{w().upper()}_{w().upper()}",
        lambda: f"{w()}_{w()}()",
        lambda: f"{w().capitalize()}{w().capitalize()}{_ID_SUFFIXES[rng.integers(len(_ID_SUFFIXES))]}",
        lambda: f"0x{int(rng.integers(16**4, 16**8)):x}",
        lambda: f"E{int(rng.integers(1000, 10000))}",
        lambda: f"v{int(rng.integers(0, 6))}.{int(rng.integers(0, 20))}.{int(rng.integers(0, 10))}",
        lambda: f"{w()}.{w()}_{w()}",
    ]
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        ident = makers[rng.integers(len(makers))]()
        if ident not in seen:
            seen.add(ident)
            out.append(ident)
    return out


def _zipf_cdf(n: int, exponent: float, shift: float = 2.7) -> np.ndarray:
    weights = 1.0 / (np.arange(1, n + 1) + shift) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _draw(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(n)), len(cdf) - 1)


def _normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


# -- the corpus ---------------------------------------------------------------------------------------


class Corpus:
    """Deterministic synthetic units, document by document (``seed`` fixes everything)."""

    def __init__(self, seed: int, dim: int) -> None:
        self.seed, self.dim = seed, dim
        rng = np.random.default_rng([seed, 0])
        self.centres = _normalize(rng.standard_normal((N_CLUSTERS, dim), dtype=np.float32))
        self.cluster_cdf = _zipf_cdf(N_CLUSTERS, 0.8, shift=10)
        self.mean = _normalize(rng.standard_normal(dim, dtype=np.float32))
        spectrum = np.arange(1, SUBSPACE + 1, dtype=np.float32) ** -0.6
        self.spectrum = spectrum / np.sqrt((spectrum**2).sum())
        self.basis = rng.standard_normal((SUBSPACE, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        self.basis = _normalize(self.basis)
        self.tag_cdf = _zipf_cdf(N_TAGS, 1.0, shift=1.5)
        self.vocab = _build_vocabulary(rng, tail=2500)
        self.vocab_cdf = _zipf_cdf(len(self.vocab), 1.1)
        self.identifiers = _build_identifiers(rng, 8000)
        self.ident_cdf = _zipf_cdf(len(self.identifiers), 0.9)
        self.content_from = 100  # query words come from below the most frequent ranks
        self.query_cdf = _zipf_cdf(len(self.vocab) - self.content_from, 1.0)

    def _offset(self, rng: np.random.Generator, n: int, low: float, iso: float) -> np.ndarray:
        z = rng.standard_normal((n, SUBSPACE), dtype=np.float32) * self.spectrum
        return low * (z @ self.basis) + iso * rng.standard_normal(
            (n, self.dim), dtype=np.float32
        ) / np.float32(np.sqrt(self.dim))

    def document(self, d: int) -> dict[str, Any]:
        """Document ``d``'s profile: size, cluster, centre, modality, tags, identifiers, source."""
        rng = np.random.default_rng([self.seed, 1, d])
        units = int(rng.integers(20, 51))
        cluster = int(_draw(rng, self.cluster_cdf, 1)[0])
        modality = MODALITIES[int(rng.choice(len(MODALITIES), p=MODALITY_P))]
        tags: list[str] = []
        for _ in range(int(rng.integers(1, 4))):
            tag = TAGS[int(_draw(rng, self.tag_cdf, 1)[0])]
            if tag not in tags:
                tags.append(tag)
        idents = [self.identifiers[i] for i in _draw(rng, self.ident_cdf, 6)]
        centre = _normalize(0.6 * self.mean + self.centres[cluster] + self._offset(rng, 1, 0.9, 0.5)[0])
        top = ("manuals", "reports", "notes", "media", "papers")[int(rng.integers(5))]
        sub = f"{self.vocab[200 + int(rng.integers(300))]}-{int(rng.integers(100))}"
        name = f"{self.vocab[150 + int(rng.integers(400))]}-{d}"
        source = f"/data/{top}/{sub}/{name}.{EXTENSIONS[modality]}"
        ingested = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            seconds=int(rng.integers(0, 330 * 86400))
        )
        sha = hashlib.sha256(f"{self.seed}:{d}".encode()).hexdigest()
        return {
            "d": d,
            "units": units,
            "cluster": cluster,
            "modality": modality,
            "tags": tags,
            "idents": idents,
            "centre": centre,
            "doc_id": str(uuid.uuid5(NAMESPACE, source)),
            "source": source,
            "source_dirs": [f"/data/{top}", f"/data/{top}/{sub}"],
            "file_name": f"{name}.{EXTENSIONS[modality]}",
            "title": name,
            "sha256": sha,
            "ingested_at": ingested.isoformat(timespec="seconds"),
        }

    def sizes(self, total: int) -> list[int]:
        """Units of each document until ``total`` units (the last one cut short)."""
        out, n, d = [], 0, 0
        while n < total:
            units = int(np.random.default_rng([self.seed, 1, d]).integers(20, 51))
            units = min(units, total - n)
            out.append(units)
            n += units
            d += 1
        return out

    def text(self, rng: np.random.Generator, idents: list[str], target: int) -> str:
        ranks = _draw(rng, self.vocab_cdf, target // 4)
        lengths = rng.integers(8, 21, size=target // 30 + 2)
        coins = rng.random(len(lengths) * 3)
        sentences: list[str] = []
        used, size, i = 0, 0, 0
        while size < target and i < len(lengths):
            n = int(lengths[i])
            if used + n > len(ranks):
                ranks = np.concatenate([ranks, _draw(rng, self.vocab_cdf, target // 4)])
            words = [self.vocab[r] for r in ranks[used : used + n]]
            used += n
            if coins[3 * i] < 0.35:
                words.insert(int(coins[3 * i + 1] * n), idents[int(coins[3 * i + 2] * len(idents))])
            if n > 12 and coins[3 * i + 1] < 0.4:
                words[n // 2] += ","
            words[0] = words[0][:1].upper() + words[0][1:]
            sentence = " ".join(words) + "."
            sentences.append(sentence)
            size += len(sentence) + 1
            i += 1
        return " ".join(sentences)

    def units(self, total: int) -> Iterator[tuple[dict[str, Any], np.ndarray, list[dict[str, Any]]]]:
        """Per document: its profile, its unit vectors (n x dim) and payloads."""
        for d, count in enumerate(self.sizes(total)):
            doc = self.document(d)
            rng = np.random.default_rng([self.seed, 2, d])
            vectors = _normalize(doc["centre"] + self._offset(rng, count, 0.6, 0.45))
            modal = rng.random(count)
            other = rng.choice(len(MODALITIES), size=count, p=MODALITY_P)
            lengths = rng.integers(650, 950, size=count)
            payloads = []
            for i in range(count):
                modality = doc["modality"] if modal[i] < 0.9 else MODALITIES[int(other[i])]
                text = self.text(rng, doc["idents"], int(lengths[i]))
                payloads.append(
                    {
                        "doc_id": doc["doc_id"],
                        "source": doc["source"],
                        "source_dirs": doc["source_dirs"],
                        "file_name": doc["file_name"],
                        "sha256": doc["sha256"],
                        "tags": doc["tags"],
                        "ingested_at": doc["ingested_at"],
                        "unit_index": i,
                        "modality": modality,
                        "title": doc["title"],
                        "text": text,
                        "snippet": text[:160],
                        "page": i + 1 if modality == "page" else None,
                        "start_s": 30.0 * i if modality == "video" else None,
                        "end_s": 30.0 * (i + 1) if modality == "video" else None,
                        "timestamps": [],
                        "char_start": None,
                        "char_end": None,
                    }
                )
            yield doc, vectors, payloads

    def queries(self, total: int, count: int) -> dict[str, Any]:
        """``count`` queries: vectors near random documents, a (modality, tag) filter, a short text."""
        n_docs = len(self.sizes(total))
        vectors, modality, tag, texts = [], [], [], []
        for j in range(count):
            rng = np.random.default_rng([self.seed, 3, j])
            doc = self.document(int(rng.integers(n_docs)))
            vectors.append(_normalize(doc["centre"] + self._offset(rng, 1, 0.6, 0.45)[0]))
            modality.append(int(rng.choice(len(MODALITIES), p=MODALITY_P)))
            tag.append(int(_draw(rng, self.tag_cdf, 1)[0]))
            from indexer.store import bm25

            while True:
                words = [
                    self.vocab[self.content_from + r]
                    for r in _draw(rng, self.query_cdf, int(rng.integers(3, 7)))
                ]
                if rng.random() < 0.25:
                    words[int(rng.integers(len(words)))] = self.identifiers[
                        int(_draw(rng, self.ident_cdf, 1)[0])
                    ]
                text = " ".join(words)
                if bm25.query_vector(text) is not None:
                    break
            texts.append(text)
        return {"vectors": np.stack(vectors), "modality": modality, "tag": tag, "texts": texts}


def unit_id(doc: dict[str, Any], index: int) -> str:
    """A unit's point id, as the indexer makes it: uuid5 of document, content hash and index."""
    return str(uuid.uuid5(NAMESPACE, f"{doc['doc_id']}:{doc['sha256']}:{index}"))


class TopK:
    """The exact top ``k`` (cosine = dot product of unit vectors) of every query, streamed."""

    def __init__(self, queries: int, k: int) -> None:
        self.k = k
        self.scores = np.full((queries, k), -np.inf, dtype=np.float32)
        self.index = np.full((queries, k), -1, dtype=np.int64)
        self.matched = np.zeros(queries, dtype=np.int64)

    def add(self, scores: np.ndarray, first: int, mask: np.ndarray | None = None) -> None:
        if mask is not None:
            scores = np.where(mask, scores, -np.inf).astype(np.float32)
            self.matched += mask.sum(axis=1)
        else:
            self.matched += scores.shape[1]
        index = np.broadcast_to(np.arange(first, first + scores.shape[1]), scores.shape)
        all_scores = np.concatenate([self.scores, scores], axis=1)
        all_index = np.concatenate([self.index, index], axis=1)
        keep = np.argpartition(-all_scores, self.k - 1, axis=1)[:, : self.k]
        self.scores = np.take_along_axis(all_scores, keep, axis=1)
        self.index = np.take_along_axis(all_index, keep, axis=1)

    def ids(self, names: list[str]) -> list[list[str]]:
        out = []
        for scores, index in zip(self.scores, self.index, strict=True):
            order = np.argsort(-scores)
            out.append([names[int(index[o])] for o in order if np.isfinite(scores[o])])
        return out


# -- engines ------------------------------------------------------------------------------------------


def open_store(
    engine: str,
    folder: Path,
    optimize_every: int,
    hnsw_ef: int | None = None,
    hnsw_ef_filtered: int | None = None,
    full_scan_kb: int | None = None,
) -> Any:
    """The engine's store in ``folder``, through mmsearch's own store classes (a width None: the
    store's default search width; ``full_scan_kb`` None: the default, and only a new collection
    takes it)."""
    search: dict[str, Any] = {} if hnsw_ef is None else {"hnsw_ef": hnsw_ef}
    if hnsw_ef_filtered is not None:
        search["hnsw_ef_filtered"] = hnsw_ef_filtered
    if engine.startswith("edge"):
        if full_scan_kb is not None:
            search["full_scan_kb"] = full_scan_kb
        from indexer.store import VectorStore
        from indexer.store.types import DATETIME_FIELDS, INTEGER_FIELDS, KEYWORD_FIELDS

        variant = engine.split("-", 1)[1] if "-" in engine else "none"
        if variant.endswith("hotidx"):  # the layout before: every payload index read into RAM at open
            search["hot_indexes"] = None
            variant = variant.removesuffix("hotidx").rstrip("-") or "none"
        if variant.endswith("disk"):  # full vectors memory-mapped, not read into RAM at open
            search["vectors_on_disk"] = True
            variant = variant.removesuffix("disk").rstrip("-") or "none"
        if variant == "allgraphs":  # the layout before 2026-12-02: every indexed field had its subgraphs
            search["filter_graphs"] = (*KEYWORD_FIELDS, *INTEGER_FIELDS, *DATETIME_FIELDS)
            variant = "none"
        return VectorStore.open(
            path=folder,
            collection=COLLECTION,
            quantization=variant,
            optimize_every=optimize_every,
            **search,
        )
    if engine == "local":
        from qdrant_client import QdrantClient

        from indexer.store.server import ServerStore

        # Local mode searches exactly; a search width changes nothing there.
        return ServerStore(QdrantClient(path=str(folder)), COLLECTION, is_server=False, **search)
    raise SystemExit(f"unknown engine {engine!r}; use {', '.join(ENGINES)}")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def disk_usage(folder: Path) -> tuple[int, int]:
    """Bytes allocated on disk (du) and apparent size of every file under ``folder``."""
    allocated = apparent = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent


def evict_page_cache(folder: Path) -> int:
    """Drop the folder's files from the OS page cache (no root needed for clean pages)."""
    evicted = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                evicted += 1
            finally:
                os.close(fd)
    return evicted


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- workers ------------------------------------------------------------------------------------------


def worker_build(args: argparse.Namespace) -> dict[str, Any]:
    from indexer.store import bm25
    from indexer.store.types import BM25_VECTOR, CONTENT_VECTOR, UnitPoint, VectorSpec

    case = Path(args.case)
    folder = case / "store"
    corpus = Corpus(args.seed, args.dim)
    queries = corpus.queries(args.size, args.queries)
    qv = queries["vectors"]
    q_modality = np.array(queries["modality"])
    q_tag = np.array(queries["tag"])
    exact, exact_filtered = TopK(len(qv), TOP_K), TopK(len(qv), TOP_K)
    names: list[str] = []

    optimize_every = args.optimize_every or args.size + 1
    store = open_store(args.engine, folder, optimize_every, full_scan_kb=args.full_scan_kb)
    store.ensure_collections({CONTENT_VECTOR: VectorSpec("synthetic", args.dim)})

    gen_s = upsert_s = 0.0
    written = 0
    start = time.perf_counter()
    last_report = start
    pending: list[UnitPoint] = []
    pending_vectors: list[np.ndarray] = []
    pending_modality: list[int] = []
    pending_tags: list[int] = []
    modality_code = {m: i for i, m in enumerate(MODALITIES)}
    empty_bm25 = 0

    def flush() -> None:
        nonlocal upsert_s, written, last_report
        if not pending:
            return
        t = time.perf_counter()
        store.upsert_units(pending)
        upsert_s += time.perf_counter() - t
        vectors = np.stack(pending_vectors)
        scores = qv @ vectors.T
        mask = (np.array(pending_modality)[None, :] == q_modality[:, None]) & (
            (np.array(pending_tags)[None, :] >> q_tag[:, None]) & 1
        ).astype(bool)
        exact.add(scores, written)
        exact_filtered.add(scores, written, mask)
        written += len(pending)
        pending.clear()
        pending_vectors.clear()
        pending_modality.clear()
        pending_tags.clear()
        now = time.perf_counter()
        if now - last_report > 30 or written == args.size:
            log(
                f"build {args.engine} {written}/{args.size} units, {now - start:.0f} s, "
                f"upsert {written / max(upsert_s, 1e-9):.0f} pts/s, rss {rss_mib():.0f} MiB"
            )
            last_report = now

    tgen = time.perf_counter()
    for doc, vectors, payloads in corpus.units(args.size):
        tag_bits = sum(1 << TAGS.index(t) for t in doc["tags"])
        for i, payload in enumerate(payloads):
            sparse = bm25.document_vector(payload["text"])
            named: dict[str, Any] = {CONTENT_VECTOR: vectors[i].tolist()}
            if sparse is not None:
                named[BM25_VECTOR] = sparse
            else:
                empty_bm25 += 1
            point = UnitPoint(unit_id(doc, i), named, payload)
            names.append(point.id)
            pending.append(point)
            pending_modality.append(modality_code[payload["modality"]])
            pending_tags.append(tag_bits)
            pending_vectors.append(vectors[i])
            if len(pending) == BATCH:
                gen_s += time.perf_counter() - tgen
                flush()
                tgen = time.perf_counter()
    gen_s += time.perf_counter() - tgen
    flush()
    load_s = time.perf_counter() - start
    rss_loaded = rss_mib()

    points = store.count()
    t = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - t
    allocated, apparent = disk_usage(folder)

    truth = {
        "texts": queries["texts"],
        "modality": [MODALITIES[m] for m in queries["modality"]],
        "tag": [TAGS[t] for t in queries["tag"]],
        "exact": exact.ids(names),
        "exact_filtered": exact_filtered.ids(names),
        "filter_matches": exact_filtered.matched.tolist(),
    }
    (case / "truth.json").write_text(json.dumps(truth))
    np.save(case / "queries.npy", qv)
    return {
        "units": written,
        "documents": len(corpus.sizes(args.size)),
        "points": points,
        "empty_bm25": empty_bm25,
        "generate_s": round(gen_s, 3),
        "upsert_s": round(upsert_s, 3),
        "load_wall_s": round(load_s, 3),
        "upsert_pts_per_s": round(written / upsert_s, 1) if upsert_s else None,
        "optimize_every": args.optimize_every or None,
        "close_s": round(close_s, 3),
        "rss_after_upsert_mib": round(rss_loaded, 1),
        "unindexed_disk_bytes": allocated,
        "unindexed_disk_apparent_bytes": apparent,
        "build_peak_rss_self_mib": round(peak_rss_mib(), 1),
    }


def worker_index(args: argparse.Namespace) -> dict[str, Any]:
    """Edge: open the written store, build its HNSW index (``optimize``), close."""
    folder = Path(args.case) / "store"
    log(f"index {args.engine}: open")
    t = time.perf_counter()
    store = open_store(args.engine, folder, args.optimize_every or args.size + 1)
    open_s = time.perf_counter() - t
    before = store.info()
    log(f"index {args.engine}: optimize (HNSW) over {before['points']} units, {before['segments']} segments")
    t = time.perf_counter()
    store.optimize()
    optimize_s = time.perf_counter() - t
    log(f"index {args.engine}: optimize took {optimize_s:.1f} s")
    info = store.info()
    t = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - t
    return {
        "index_open_s": round(open_s, 3),
        "index_build_s": round(optimize_s, 3),
        "index_close_s": round(close_s, 3),
        "indexed_vectors_before": before["indexed_vectors"],
        "segments_before": before["segments"],
        "indexed_vectors": info["indexed_vectors"],
        "segments": info["segments"],
        "index_peak_rss_self_mib": round(peak_rss_mib(), 1),
    }


def _percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values), q)), 3)


def worker_serve(args: argparse.Namespace, warm_only: bool = False) -> dict[str, Any]:
    t = time.perf_counter()
    from indexer.store import Filter, Fusion, Leg, Match, bm25  # bm25 too: imported before timing

    if args.engine.startswith("edge"):
        import qdrant_edge  # noqa: F401
    else:
        import qdrant_client  # noqa: F401
    import_s = time.perf_counter() - t

    case = Path(args.case)
    qv = np.load(case / "queries.npy")
    vectors = [v.tolist() for v in qv]
    truth = json.loads((case / "truth.json").read_text())
    fusion = Fusion()  # the default constant; it does not change the cost

    t0 = time.perf_counter()
    store = open_store(
        args.engine, case / "store", args.optimize_every or args.size + 1, args.hnsw_ef, args.hnsw_ef_filtered
    )
    t1 = time.perf_counter()
    first = store.query([Leg("content", vectors[0])], None, TOP_K, fusion)
    t2 = time.perf_counter()
    out: dict[str, Any] = {
        "import_s": round(import_s, 3),
        "open_s": round(t1 - t0, 3),
        "first_query_ms": round((t2 - t1) * 1000, 2),
        "cold_open_s": round(t2 - t0, 3),
        "first_returned": len(first),
        "hnsw_ef": getattr(store, "hnsw_ef", None),  # the search width the store used (0: the engine's)
        "hnsw_ef_filtered": getattr(store, "hnsw_ef_filtered", None),  # None: hnsw_ef
        "full_scan_kb": getattr(store, "full_scan_kb", None),  # the collection's, from its creation
    }
    if warm_only:
        store.close()
        return out

    filters = [
        Filter.of(Match("modality", (m,)), Match("tags", (tg,)))
        for m, tg in zip(truth["modality"], truth["tag"], strict=True)
    ]
    sparse = [bm25.query_vector(text) for text in truth["texts"]]

    def legs_dense(j: int) -> list[Any]:
        return [Leg("content", vectors[j])]

    def legs_fused(j: int) -> list[Any]:
        return [Leg("content", vectors[j]), Leg("bm25", sparse[j], 1.0)]

    kinds = {
        "dense": (legs_dense, False),
        "filtered": (legs_dense, True),
        "fused": (legs_fused, False),
        "fused_filtered": (legs_fused, True),
    }
    n = len(vectors)
    for j in range(min(WARMUP, n)):
        for legs, filtered in kinds.values():
            store.query(legs(j), filters[j] if filtered else None, TOP_K, fusion)
    # The kinds take turns query by query (rotating who goes first), so that none of them pays alone
    # for what the first queries after a cold open read from disk. Edge reads its segments through
    # mmap: its first pass runs while the page cache fills, so it gets a second, steady-state pass (the
    # figures reported); the first pass' figures are kept as "*_first_pass_*". Local mode holds
    # everything in Python objects from the open on: one pass.
    names = list(kinds)
    passes = 2 if args.engine.startswith("edge") else 1
    results: dict[str, list[list[str]]] = {}
    for run in range(passes):
        times: dict[str, list[float]] = {kind: [] for kind in names}
        found: dict[str, list[list[str]]] = {kind: [] for kind in names}
        for j in range(n):
            for r in range(len(names)):
                kind = names[(j + r) % len(names)]
                legs, filtered = kinds[kind]
                flt = filters[j] if filtered else None
                q = legs(j)
                t = time.perf_counter()
                hits = store.query(q, flt, TOP_K, fusion)
                times[kind].append((time.perf_counter() - t) * 1000)
                found[kind].append([h.id for h in hits])
        last = run == passes - 1
        for kind in names:
            prefix = kind if last else f"{kind}_first_pass"
            out[f"{prefix}_p50_ms"] = _percentile(times[kind], 50)
            out[f"{prefix}_p95_ms"] = _percentile(times[kind], 95)
            out[f"{prefix}_mean_ms"] = round(float(np.mean(times[kind])), 3)
            log(
                f"serve {args.engine} pass {run + 1} {kind}: p50 {out[f'{prefix}_p50_ms']} ms, "
                f"p95 {out[f'{prefix}_p95_ms']} ms"
            )
        if last:
            results = found
            for kind in names:
                out[f"{kind}_returned_mean"] = round(float(np.mean([len(f) for f in found[kind]])), 2)
    out["passes"] = passes

    def recall(found: list[list[str]], exact: list[list[str]]) -> float:
        values = [len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True) if e]
        return round(float(np.mean(values)), 4) if values else 1.0

    out["recall_dense"] = recall(results["dense"], truth["exact"])
    out["recall_filtered"] = recall(results["filtered"], truth["exact_filtered"])
    matches = np.array(truth["filter_matches"], dtype=float)
    out["filter_selectivity_mean"] = round(float(matches.mean() / args.size), 5)
    out["filter_matches_min"] = int(matches.min())
    if hasattr(store, "info"):
        info = store.info()
        out["serve_points"] = info["points"]
        out["serve_indexed_vectors"] = info["indexed_vectors"]
        out["serve_segments"] = info["segments"]
    out["rss_after_queries_mib"] = round(rss_mib(), 1)
    out["serve_peak_rss_self_mib"] = round(peak_rss_mib(), 1)
    store.close()
    return out


# -- the driver ---------------------------------------------------------------------------------------


class Child:
    """The running worker, so that a signal to the driver stops it too."""

    proc: subprocess.Popen | None = None
    stopped: dict[str, Any] | None = None  # the row of a case stopped by a signal


def run_worker(
    kind: str, engine: str, size: int, args: argparse.Namespace, case: Path, logfile: Path
) -> dict[str, Any]:
    """Run one worker process; returns its JSON, return code, wall time and peak RSS (wait4)."""
    result_file = case.parent / f"{case.name}.{kind}.json"
    saved = case.parent / f"{case.name}.{kind}.run.json"
    if args.reuse and kind in ("build", "index") and saved.exists() and (case / "store").exists():
        return json.loads(saved.read_text())  # the store kept (--keep) by an earlier run
    result_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--engine",
        engine,
        "--size",
        str(size),
        "--dim",
        str(args.dim),
        "--queries",
        str(args.queries),
        "--seed",
        str(args.seed),
        "--optimize-every",
        str(args.optimize_every),
        *(["--hnsw-ef", str(args.hnsw_ef)] if args.hnsw_ef is not None else []),
        *(["--hnsw-ef-filtered", str(args.hnsw_ef_filtered)] if args.hnsw_ef_filtered is not None else []),
        *(["--full-scan-kb", str(args.full_scan_kb)] if args.full_scan_kb is not None else []),
        "--case",
        str(case),
        "--result",
        str(result_file),
    ]
    start = time.perf_counter()
    with open(logfile, "a") as logf:
        logf.write(f"\n== {kind}: {' '.join(command)}\n")
        logf.flush()
        env = dict(os.environ)
        if kind == "build":
            # Generation and the numpy ground truth are the bench's own work: one BLAS thread, which on
            # 2 busy cores is ~10x faster than OpenBLAS' default of one per core. The engines' reads run
            # with the defaults a user gets.
            env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.Popen(command, cwd=ROOT, stdout=logf, stderr=logf, env=env)
        Child.proc = proc
        status, usage = 0, None
        peaks = {"RssAnon": 0, "RssFile": 0}
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            _sample(proc.pid, peaks)
            if args.case_timeout and time.perf_counter() - start > args.case_timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        Child.proc = None
    out: dict[str, Any] = {
        "rc": proc.returncode,
        "wall_s": round(time.perf_counter() - start, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1) if usage else None,
        # Sampled every 0.2 s: anonymous memory (heap) and file-backed pages (the mmap'd segments,
        # which the kernel can drop and read again) at their highest.
        "peak_anon_mib": round(peaks["RssAnon"] / 1024, 1),
        "peak_file_mib": round(peaks["RssFile"] / 1024, 1),
    }
    if proc.returncode == 0 and result_file.exists():
        out["data"] = json.loads(result_file.read_text())
        saved.write_text(json.dumps(out))
    else:
        out["log_tail"] = logfile.read_text()[-2000:]
    return out


def _exit(rc: int) -> str:
    return f"killed by signal {-rc}" if rc < 0 else f"rc {rc}"


def _sample(pid: int, peaks: dict[str, int]) -> None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = line.split(":", 1)[0]
            if name in peaks:
                peaks[name] = max(peaks[name], int(line.split()[1]))


def machine() -> dict[str, Any]:
    import psutil

    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "hostname": socket.gethostname(),
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("qdrant-edge-py", "qdrant-client", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def edge_defaults() -> dict[str, Any]:
    """``EdgeStore``'s keyword defaults (search width, rebuild interval...) in the code measured."""
    import inspect

    from indexer.store.edge import EdgeStore

    params = inspect.signature(EdgeStore.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def report_path(out_dir: Path, info: dict[str, Any]) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", info["cpu"].lower()).strip("-") or info["hostname"]
    return out_dir / f"store-{slug}-{info['cpus_usable']}c-{dt.date.today().isoformat()}.json"


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["engine"],
        row["size"],
        row["dim"],
        row.get("optimize_every"),
        row.get("hnsw_ef_option"),
        row.get("hnsw_ef_filtered_option"),
        row.get("full_scan_kb_option"),
    )


def save(path: Path, rows: list[dict[str, Any]], run: dict[str, Any]) -> None:
    report: dict[str, Any] = {"benchmark": "bench/store.py", "rows": [], "runs": []}
    if path.exists():
        with contextlib.suppress(ValueError):
            report = json.loads(path.read_text())
    keys = {row_key(r) for r in rows}
    report["rows"] = [r for r in report["rows"] if row_key(r) not in keys] + rows
    report["rows"].sort(key=lambda r: tuple(x if x is not None else 0 for x in row_key(r)))
    report["runs"] = [r for r in report.get("runs", []) if r.get("started") != run["started"]] + [run]
    report["machine"], report["versions"] = run["machine"], run["versions"]
    report["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def run_case(engine: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(args.tmp)
    label = f"{engine}-{size}-{args.dim}" + (f"-opt{args.optimize_every}" if args.optimize_every else "")
    # The full-scan threshold is the collection's own: another value is another store.
    label += f"-fs{args.full_scan_kb}" if args.full_scan_kb is not None else ""
    # Search widths are not part of the folder: --reuse serves one store with other widths.
    case = tmp / label
    logfile = tmp / f"{label}.log"
    if not (args.reuse and (case / "store").exists()):
        shutil.rmtree(case, ignore_errors=True)
        for stale in tmp.glob(f"{label}.*.run.json"):
            stale.unlink()
    case.mkdir(parents=True, exist_ok=True)
    logfile.write_text("")
    row: dict[str, Any] = {
        "engine": engine,
        "size": size,
        "dim": args.dim,
        "queries": args.queries,
        "optimize_every": args.optimize_every or None,
        "hnsw_ef_option": args.hnsw_ef,
        "hnsw_ef_filtered_option": args.hnsw_ef_filtered,
        "full_scan_kb_option": args.full_scan_kb,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "status": "ok",
    }
    print(f"[{time.strftime('%H:%M:%S')}] {label}: build (log {logfile})", flush=True)
    try:
        return _run_phases(engine, size, args, case, logfile, row)
    except KeyboardInterrupt:
        # Stopped by hand (or SIGTERM): keep how far it got.
        progress = [line for line in logfile.read_text().splitlines() if line.startswith("[")]
        row["status"] = "stopped"
        row["reached"] = progress[-1] if progress else ""
        row["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        Child.stopped = row
        raise
    finally:
        if not args.keep:
            shutil.rmtree(case, ignore_errors=True)


def _run_phases(
    engine: str, size: int, args: argparse.Namespace, case: Path, logfile: Path, row: dict[str, Any]
) -> dict[str, Any]:
    label = case.name
    build = run_worker("build", engine, size, args, case, logfile)
    row["build_wall_s"], row["build_peak_rss_mib"] = build["wall_s"], build["peak_rss_mib"]
    row["build_peak_anon_mib"], row["build_peak_file_mib"] = (
        build.get("peak_anon_mib"),
        build.get("peak_file_mib"),
    )
    if "data" not in build:
        row["status"] = f"build failed ({_exit(build['rc'])})"
        row["error"] = build.get("log_tail", "")
    else:
        row.update(build["data"])
        if engine.startswith("edge"):
            print(f"[{time.strftime('%H:%M:%S')}] {label}: index", flush=True)
            index = run_worker("index", engine, size, args, case, logfile)
            row["index_wall_s"], row["index_peak_rss_mib"] = index["wall_s"], index["peak_rss_mib"]
            row["index_peak_anon_mib"] = index.get("peak_anon_mib")
            row["index_peak_file_mib"] = index.get("peak_file_mib")
            if "data" not in index:
                row["status"] = f"index failed ({_exit(index['rc'])})"
                row["error"] = index.get("log_tail", "")
                return row
            row.update(index["data"])
        else:
            row["index_build_s"] = row["index_peak_rss_mib"] = row["index_peak_anon_mib"] = None
        row["disk_bytes"], row["disk_apparent_bytes"] = disk_usage(case / "store")
        row["evicted_files"] = evict_page_cache(case / "store")
        print(f"[{time.strftime('%H:%M:%S')}] {label}: serve", flush=True)
        serve = run_worker("serve", engine, size, args, case, logfile)
        row["serve_wall_s"], row["serve_peak_rss_mib"] = serve["wall_s"], serve["peak_rss_mib"]
        row["serve_peak_anon_mib"], row["serve_peak_file_mib"] = (
            serve.get("peak_anon_mib"),
            serve.get("peak_file_mib"),
        )
        if "data" not in serve:
            row["status"] = f"serve failed ({_exit(serve['rc'])})"
            row["error"] = serve.get("log_tail", "")
        else:
            row.update(serve["data"])
            warm = run_worker("open", engine, size, args, case, logfile)
            if "data" in warm:
                row["warm_open_s"] = warm["data"]["open_s"]
                row["warm_cold_open_s"] = warm["data"]["cold_open_s"]
                row["warm_first_query_ms"] = warm["data"]["first_query_ms"]
    row["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return row


# -- the table ----------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _rss(row: dict[str, Any], phase: str) -> str:
    anon = row.get(f"{phase}_peak_anon_mib")
    return _f(row.get(f"{phase}_peak_rss_mib"), 0) + (f" ({_f(anon, 0)})" if anon else "")


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| engine | units | dim | upsert pts/s | index build s | cold open s (open + 1st query) "
        "| warm reopen s "
        "| dense p50 / p95 ms | filtered p50 / p95 ms | fused p50 / p95 ms | fused+filter p95 ms "
        "| recall@50 dense | recall@50 filtered | peak RSS (anon) MiB: upsert / index / serve | disk MiB |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        engine = r["engine"] + (
            f" (optimize_every {r['optimize_every']:,})" if r.get("optimize_every") else ""
        )
        if r.get("hnsw_ef_option") is not None:
            engine += f" (hnsw_ef {r['hnsw_ef_option']})"
        if r.get("hnsw_ef_filtered_option") is not None:
            engine += f" (hnsw_ef_filtered {r['hnsw_ef_filtered_option']})"
        if r.get("full_scan_kb_option") is not None:
            engine += f" (full_scan_kb {r['full_scan_kb_option']:,})"
        if r.get("status") != "ok":
            engine += f" **{r['status']}**" + (f" ({r['reached']})" if r.get("reached") else "")

        def pair(kind: str, r: dict[str, Any] = r) -> str:
            return f"{_f(r.get(kind + '_p50_ms'))} / {_f(r.get(kind + '_p95_ms'))}"

        lines.append(
            f"| {engine} | {r['size']:,} | {r['dim']} | {_f(r.get('upsert_pts_per_s'), 0)} "
            f"| {_f(r.get('index_build_s'))} | {_f(r.get('cold_open_s'), 2)} "
            f"| {_f(r.get('warm_cold_open_s'), 2)} "
            f"| {pair('dense')} | {pair('filtered')} | {pair('fused')} "
            f"| {_f(r.get('fused_filtered_p95_ms'))} "
            f"| {_f(r.get('recall_dense'), 3)} | {_f(r.get('recall_filtered'), 3)} "
            f"| {_rss(r, 'build')} / {_rss(r, 'index')} / {_rss(r, 'serve')} "
            f"| {_f((r.get('disk_bytes') or 0) / 2**20, 0)} |"
        )
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="10000,100000,1000000", help="units per case, comma-separated")
    p.add_argument("--dim", type=int, default=2048, help="dims of the content vector")
    p.add_argument("--queries", type=int, default=200, help="timed queries of each kind")
    p.add_argument("--engines", default="edge,local", help=f"comma-separated, of {', '.join(ENGINES)}")
    p.add_argument("--local-max", type=int, default=20000, help="largest size run on local mode")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder of the JSON report")
    p.add_argument("--tmp", default="/tmp/mmsearch-store-bench", help="where the stores are written")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--optimize-every",
        type=int,
        default=0,
        help="Edge: rebuild HNSW every N points during the upsert, as an ingest does (0: only once, "
        "after the upsert, so upsert and index build are timed apart)",
    )
    p.add_argument(
        "--case-timeout", type=float, default=0, help="seconds per worker before it is killed (0: none)"
    )
    p.add_argument(
        "--hnsw-ef",
        type=int,
        default=None,
        help="search width passed to the store (default: the store's own)",
    )
    p.add_argument(
        "--hnsw-ef-filtered",
        type=int,
        default=None,
        help="search width of filtered searches under ACORN passed to the store (default: the store's own)",
    )
    p.add_argument(
        "--full-scan-kb",
        type=int,
        default=None,
        help="KB of vectors below which a new Edge collection scores a filter's matches without the "
        "graph (default: the store's own; another value is another store folder)",
    )
    p.add_argument("--keep", action="store_true", help="keep the stores under --tmp")
    p.add_argument(
        "--reuse", action="store_true", help="serve from stores kept by an earlier --keep run (no rebuild)"
    )
    p.add_argument("--table", metavar="REPORT", help="print the table of a report and exit")
    p.add_argument(
        "--report",
        metavar="FILE",
        help="merge the rows into this report (default: --out/store-<cpu>-<date>.json)",
    )
    # worker mode (internal)
    p.add_argument("--worker", choices=("build", "index", "serve", "open"), help=argparse.SUPPRESS)
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.worker:
        work = {
            "build": worker_build,
            "index": worker_index,
            "serve": worker_serve,
            "open": lambda a: worker_serve(a, warm_only=True),
        }
        data = work[args.worker](args)
        Path(args.result).write_text(json.dumps(data, indent=1))
        return 0
    if args.table:
        print(table(json.loads(Path(args.table).read_text())["rows"]))
        return 0

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for engine in engines:
        if engine not in ENGINES:
            raise SystemExit(f"unknown engine {engine!r}; use {', '.join(ENGINES)}")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    info = machine()
    run = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "versions": versions(),
        "settings": {
            "batch": BATCH,
            "top_k": TOP_K,
            "warmup": WARMUP,
            "seed": args.seed,
            "dim": args.dim,
            "queries": args.queries,
            "clusters": N_CLUSTERS,
            "hnsw_ef": args.hnsw_ef,
            "hnsw_ef_filtered": args.hnsw_ef_filtered,
            "full_scan_kb": args.full_scan_kb,
        },
        "edge_store_defaults": edge_defaults(),
    }
    path = Path(args.report) if args.report else report_path(Path(args.out), info)
    Path(args.tmp).mkdir(parents=True, exist_ok=True)

    def stop(signum: int, _frame: Any) -> None:
        if Child.proc is not None:
            Child.proc.kill()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    rows: list[dict[str, Any]] = []
    try:
        for size in sizes:
            for engine in engines:
                if engine == "local" and size > args.local_max:
                    print(
                        f"local mode skipped at {size:,} units (--local-max {args.local_max:,})", flush=True
                    )
                    continue
                row = run_case(engine, size, args)
                rows.append(row)
                save(path, rows, run)
                print(f"[{time.strftime('%H:%M:%S')}] {row['engine']} {size:,}: {row['status']}", flush=True)
    except KeyboardInterrupt:
        if Child.stopped is not None:
            rows.append(Child.stopped)
            save(path, rows, run)
        print("stopped", flush=True)
    print(f"\nreport: {path}\n")
    print(table(json.loads(path.read_text())["rows"]) if path.exists() else "(nothing measured)")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
