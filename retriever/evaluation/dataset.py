"""Evaluation datasets in the BEIR layout, from a local folder or (when a hub is reachable) the hub.

A folder holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``:

- corpus lines: ``{"_id", "title", "text"}`` for a text item, ``{"_id", "file": "pages/a.png"}`` for
  an image or any file mmsearch indexes, ``{"_id", "file": "report.pdf", "page": 3}`` for one PDF page
  (1-based). Paths are relative to the folder.
- query lines: ``{"_id", "text"}``, optionally ``"image": "path"`` for a query by picture.
- qrels: ``query-id<TAB>corpus-id<TAB>score`` with a header line; a score is an integer grade.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import MMSearchError

logger = logging.getLogger(__name__)


class DatasetError(MMSearchError):
    """A dataset cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class CorpusItem:
    """One document of the corpus: text, or a file (with a page for one PDF page)."""

    id: str
    title: str = ""
    text: str = ""
    file: Path | None = None
    page: int | None = None


@dataclass(frozen=True)
class Query:
    """One query: text, an image, or both."""

    id: str
    text: str = ""
    image: Path | None = None

    def content(self) -> dict[str, Any]:
        """What the retriever is asked."""
        out: dict[str, Any] = {}
        if self.text:
            out["text"] = self.text
        if self.image is not None:
            out["image"] = str(self.image)
        return out


@dataclass
class Dataset:
    """A corpus, its queries and the judgements (query id -> corpus id -> grade)."""

    name: str
    corpus: list[CorpusItem]
    queries: list[Query]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def limit(self, max_queries: int | None) -> Dataset:
        """The first ``max_queries`` judged queries (all when None), for quick runs."""
        if max_queries is None:
            return self
        judged = [q for q in self.queries if q.id in self.qrels][:max_queries]
        return Dataset(self.name, self.corpus, judged, {q.id: self.qrels[q.id] for q in judged})


def load_dataset(spec: str, *, split: str = "test", cache_dir: Path | None = None) -> Dataset:
    """A local BEIR folder, or else a hub dataset name (needs the ``datasets`` package and a hub)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_folder(path, split=split)
    if path.exists():
        raise DatasetError(
            f"{spec} is a file; give the dataset's folder (with corpus.jsonl, queries.jsonl, qrels/)"
        )
    return load_hub(spec, split=split, cache_dir=cache_dir or Path("data") / "datasets")


def load_folder(folder: Path, *, split: str = "test") -> Dataset:
    """Read a BEIR folder; every problem is reported with its file and line."""
    folder = folder.resolve()
    corpus = [_corpus_item(folder, row, where) for row, where in _jsonl(folder / "corpus.jsonl")]
    queries = [_query(folder, row, where) for row, where in _jsonl(folder / "queries.jsonl")]
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise DatasetError(f"{qrels_path}: missing (the judgements of split {split!r})")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if line_no == 1 and row and not row[-1].strip().lstrip("-").isdigit():
                continue  # the header
            if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                raise DatasetError(f"{qrels_path}:{line_no}: expected query-id, corpus-id, integer score")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    _check_ids(corpus, queries, qrels, folder)
    return Dataset(folder.name, corpus, queries, qrels)


def load_hub(name: str, *, split: str = "test", cache_dir: Path) -> Dataset:
    """A BEIR-style dataset from the hub (e.g. a ViDoRe ``*_beir`` set): configs corpus, queries, qrels.

    Images in the corpus or queries are written to ``cache_dir`` so that they can be indexed as files.
    """
    try:
        import datasets
    except ImportError as exc:
        raise DatasetError(
            f"{name} is not a folder here, and loading it from the hub needs the `datasets` package "
            "(pip install datasets) and a reachable hub"
        ) from exc
    try:
        corpus_rows = datasets.load_dataset(name, "corpus", split=split)
        query_rows = datasets.load_dataset(name, "queries", split=split)
        qrel_rows = datasets.load_dataset(name, "qrels", split=split)
    except Exception as exc:  # network, unknown name, missing config: all mean "cannot load"
        raise DatasetError(f"cannot load {name!r} from the hub: {exc}") from exc
    folder = cache_dir / name.replace("/", "__")
    (folder / "images").mkdir(parents=True, exist_ok=True)

    def image_file(row: dict[str, Any], kind: str, row_id: str) -> Path | None:
        picture = row.get("image")
        if picture is None:
            return None
        target = folder / "images" / f"{kind}-{_safe(row_id)}.png"
        if not target.exists():
            picture.convert("RGB").save(target)
        return target

    corpus = []
    for row in corpus_rows:
        row_id = str(row.get("corpus-id", row.get("_id")))
        path = image_file(row, "doc", row_id)
        corpus.append(CorpusItem(row_id, str(row.get("title") or ""), str(row.get("text") or ""), path))
    queries = []
    for row in query_rows:
        row_id = str(row.get("query-id", row.get("_id")))
        queries.append(
            Query(row_id, str(row.get("query", row.get("text")) or ""), image_file(row, "query", row_id))
        )
    qrels: dict[str, dict[str, int]] = {}
    for row in qrel_rows:
        qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row.get("score", 1))
    return Dataset(name, corpus, queries, qrels)


def _jsonl(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not str(row.get("_id", "")).strip():
                raise DatasetError(f'{where}: every line needs an "_id"')
            yield row, where


def _corpus_item(folder: Path, row: dict[str, Any], where: str) -> CorpusItem:
    file = row.get("file") or row.get("image")
    path = _inside(folder, file, where) if file else None
    page = row.get("page")
    if page is not None and (not isinstance(page, int) or page < 1):
        raise DatasetError(f'{where}: "page" must be a page number from 1')
    if path is None and not (row.get("text") or row.get("title")):
        raise DatasetError(f'{where}: a corpus item needs "text" or a "file"')
    return CorpusItem(str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or ""), path, page)


def _query(folder: Path, row: dict[str, Any], where: str) -> Query:
    image = _inside(folder, row["image"], where) if row.get("image") else None
    text = str(row.get("text") or "")
    if not text.strip() and image is None:
        raise DatasetError(f'{where}: a query needs "text" or an "image"')
    return Query(str(row["_id"]), text, image)


def _inside(folder: Path, relative: str, where: str) -> Path:
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder):
        raise DatasetError(f"{where}: {relative!r} points outside the dataset folder")
    if not path.is_file():
        raise DatasetError(f"{where}: {relative!r} does not exist")
    return path


def _check_ids(
    corpus: list[CorpusItem], queries: list[Query], qrels: dict[str, dict[str, int]], folder: Path
) -> None:
    ids = [item.id for item in corpus]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{folder}/corpus.jsonl: duplicate _id values")
    known = set(ids)
    unknown = {doc for judged in qrels.values() for doc in judged if doc not in known}
    if unknown:
        # BEIR keeps them: they count as relevant documents that can never be found.
        logger.warning(
            "%d judged documents are not in the corpus (e.g. %s)", len(unknown), sorted(unknown)[0]
        )
    if not any(q.id in qrels for q in queries):
        raise DatasetError(f"{folder}: no query of queries.jsonl has a judgement in the qrels")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
