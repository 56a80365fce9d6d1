"""Bulk ingestion: files -> units -> vectors -> Qdrant, idempotent, resumable and streaming.

How a file is indexed (and why a killed run resumes cleanly):

1. Hash the file. If its record says this version was indexed completely with the same settings,
   it is unchanged: nothing is loaded or embedded.
2. Write the record as ``partial`` for this version.
3. Stream the units: each batch is embedded, its media written, then its points upserted as
   ``staged``: searches never see them. A point's id is uuid5(document id, content hash, settings
   fingerprint, unit index), so writing a unit twice overwrites it and a new version never overwrites
   the one being served. Units already present for this version (left by a killed run) are not
   embedded again.
4. Publish: the version's units turn ``live`` all at once, the document's other units (the previous
   version, surplus units) are removed, and the record is marked ``complete``. Until then the previous
   version stays searchable.

A file that fails is reported and rolled back: its staged units are removed and the previous
version (if any) stays searchable. Nothing but a store failure stops the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from core.content import Content
from core.errors import DocumentError, EmptyDocumentError, IngestInterrupted, MMSearchError, StoreError
from indexer.embedders.base import Embedder
from indexer.loaders import SUPPORTED_EXTENSIONS, loader_for, passed_over
from indexer.loaders import identity as loader_identity
from indexer.loaders.base import LoadOptions
from indexer.loaders.image import EXTENSIONS as IMAGE_EXTENSIONS
from indexer.media_store import MediaStore
from indexer.render_pool import RenderPool
from indexer.store import (
    BM25_VECTOR,
    CONTENT_VECTOR,
    LIVE,
    STAGED,
    TEXT_VECTOR,
    DocumentRecord,
    Filter,
    Match,
    UnitPoint,
    VectorSpec,
    VectorStore,
    bm25,
)
from indexer.units import VIDEO, Unit

logger = logging.getLogger(__name__)

# Fixed namespace: ids must be the same on every machine and every run.
NAMESPACE = uuid.UUID("8f0c5a52-3b7e-4d0e-9a51-6d2f0c1e7a93")

ADDED, UPDATED, UNCHANGED, REMOVED, FAILED = "added", "updated", "unchanged", "removed", "failed"
SKIPPED = "skipped"  # passed over by discover(): not a file mmsearch indexes (the reason says why)
STATUSES = (ADDED, UPDATED, UNCHANGED, REMOVED, FAILED, SKIPPED)


def document_id(path: Path) -> str:
    """A document's id: stable for a file's absolute path, whatever its content."""
    return str(uuid.uuid5(NAMESPACE, "file:" + str(path.resolve())))


def point_id(doc_id: str, sha256: str, index: int, fingerprint: str = "") -> str:
    """A unit's point id: uuid5 of its document, the file's content hash, the settings fingerprint
    (when given) and the unit's index.

    The document id is part of it so that two identical files at different paths stay two documents;
    the fingerprint, so that re-indexing a file with new settings writes beside the served version.
    """
    version = f"{sha256}/{fingerprint}" if fingerprint else sha256
    return str(uuid.uuid5(NAMESPACE, f"{doc_id}/{version}/{index}"))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def source_dirs(path: Path) -> list[str]:
    """Every ancestor folder of a file, so a source-prefix filter is an exact keyword match."""
    return [str(p) for p in reversed(path.resolve().parents)]


def delete_document(store: VectorStore, media: MediaStore, doc_id: str) -> list[str]:
    """Remove a document's units, their media and its record; returns the ids of the units removed."""
    removed = store.delete_document(doc_id)
    media.delete(removed)
    return removed


@dataclass
class FileResult:
    """What happened to one file."""

    source: str
    status: str
    doc_id: str | None = None
    units: int = 0
    embedded: int = 0  # units embedded in this run (fewer than ``units`` after a resume)
    skipped: int = 0  # units the embedder cannot read (e.g. an image for a text-only model)
    error: str | None = None
    seconds: float = 0.0
    reason: str | None = None  # why a ``skipped`` file was passed over (e.g. "hidden")


@dataclass
class IngestReport:
    """Everything a run did; ``failed`` decides the exit code."""

    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def skipped_files(self) -> list[FileResult]:
        """The files and folders passed over (unsupported type, hidden, ...), each with its reason."""
        return [f for f in self.files if f.status == SKIPPED]

    @property
    def units_embedded(self) -> int:
        return sum(f.embedded for f in self.files)

    def summary(self) -> dict[str, int]:
        return {status: self.count(status) for status in STATUSES}

    def to_json(self) -> str:
        return json.dumps(
            {
                "summary": self.summary(),
                "units_embedded": self.units_embedded,
                "seconds": round(self.seconds, 3),
                "files": [asdict(f) for f in self.files],
            },
            indent=2,
        )


class Progress(Protocol):
    """What a progress display hears from the pipeline (the CLI draws a bar from it)."""

    def start(self, total_files: int) -> None: ...
    def file_started(self, path: Path) -> None: ...
    def units_done(self, count: int) -> None: ...
    def file_done(self, result: FileResult) -> None: ...


class _Silent:
    def start(self, total_files: int) -> None:
        pass

    def file_started(self, path: Path) -> None:
        pass

    def units_done(self, count: int) -> None:
        pass

    def file_done(self, result: FileResult) -> None:
        pass


@dataclass(frozen=True)
class Shard:
    """Part ``number`` of ``count`` (1-based) of a corpus that several machines ingest side by side.

    A file belongs to one part, chosen by a hash of its path relative to the folder it was found in
    (its name, when named directly). Machines that mount the corpus at different places therefore
    agree on the split, and the parts are disjoint and together cover every file.
    """

    number: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.number <= self.count:
            raise ValueError(f"shard {self.number}/{self.count}: need 1 <= I <= N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> the second of four parts."""
        number, sep, count = text.partition("/")
        if not sep or not number.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"a shard is written I/N, e.g. 2/4; got {text!r}")
        return cls(int(number), int(count))

    def takes(self, key: str) -> bool:
        """Whether the file with this relative path belongs to this part."""
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.number - 1


def discover(
    paths: Sequence[str | Path],
    *,
    recursive: bool = False,
    shard: Shard | None = None,
    follow_external_links: bool = False,
) -> tuple[list[Path], list[FileResult]]:
    """Files to ingest under ``paths``, plus a result for every path that will not be indexed.

    A file named directly is always taken: it is a root of its own (an unsupported type then fails
    with a clear message). In a folder, only supported types are taken and sub-folders are read only
    when ``recursive``; everything passed over is reported as a ``skipped`` result with its
    :attr:`FileResult.reason`: an unsupported type, a hidden file or folder (its name starts with
    ``.``), a sub-folder of a run that is not recursive, a broken link, something that is not a
    regular file, or a link that resolves outside every path given (unless
    ``follow_external_links``). A path that does not exist is a ``failed`` result.

    With ``shard``, only the files (and skipped entries) of that part of the corpus are returned.

    Returns:
        ``(files, results)``: the resolved files to index, in path order and without duplicates, and
        the failed and skipped results.
    """
    given = [Path(raw).expanduser() for raw in paths]
    roots = [path.resolve() for path in given if path.exists()]

    def inside(target: Path) -> bool:
        return any(target == root or target.is_relative_to(root) for root in roots)

    found: dict[Path, None] = {}
    passed: dict[str, FileResult] = {}
    for path in given:
        if path.is_file():
            if shard is None or shard.takes(path.name):
                found[path.resolve()] = None
        elif path.is_dir():
            for item, relative, reason in _folder_entries(path, recursive, inside, follow_external_links):
                if shard is not None and not shard.takes(relative.as_posix()):
                    continue
                if reason is None:
                    found[item.resolve()] = None
                else:
                    passed.setdefault(str(item), FileResult(str(item), SKIPPED, reason=reason))
        else:
            passed[str(path)] = FileResult(str(path), FAILED, error=f"{path}: no such file or folder")
    skipped = [r for r in passed.values() if r.status == SKIPPED and Path(r.source).resolve() not in found]
    failed = [r for r in passed.values() if r.status == FAILED]
    return list(found), failed + skipped


def _folder_entries(
    folder: Path, recursive: bool, inside: Callable[[Path], bool], follow_external_links: bool
) -> list[tuple[Path, Path, str | None]]:
    """Every entry under ``folder`` as ``(path, path relative to folder, reason it is skipped or None)``,
    in path order. Hidden folders, and sub-folders when not ``recursive``, are one entry each (their
    contents are not listed); a folder reached twice (a link to a folder already read) is read once."""
    entries: list[tuple[Path, Path, str | None]] = []
    seen = {folder.resolve()}
    pending = [(folder, Path())]
    while pending:
        current, prefix = pending.pop()
        try:
            with os.scandir(current) as listing:
                children = list(listing)
        except OSError as exc:
            entries.append((current, prefix, f"cannot be read: {exc.strerror or exc}"))
            continue
        for child in children:
            item, relative = Path(child.path), prefix / child.name
            if child.name.startswith("."):
                entries.append((item, relative, "hidden"))
                continue
            target = None
            if child.is_symlink():
                try:
                    target = item.resolve(strict=True)
                except (OSError, RuntimeError):  # a dangling link, or a loop of links
                    entries.append((item, relative, "a broken link"))
                    continue
                if not follow_external_links and not inside(target):
                    entries.append((item, relative, f"resolves outside the folders given, to {target}"))
                    continue
            try:
                is_dir, is_file = child.is_dir(), child.is_file()  # both follow links
            except OSError as exc:
                entries.append((item, relative, f"cannot be read: {exc.strerror or exc}"))
                continue
            if is_dir:
                if not recursive:
                    entries.append((item, relative, "a sub-folder, read only with --recursive"))
                    continue
                real = target or item.resolve()
                if real not in seen and not (target is not None and inside(target)):
                    # A link to a folder inside the paths given is skipped: its files are reached by
                    # their own paths (and a link back up the tree cannot loop).
                    seen.add(real)
                    pending.append((item, relative))
                continue
            if not is_file:
                entries.append((item, relative, "not a regular file"))
            elif item.suffix.lower() not in SUPPORTED_EXTENSIONS:
                entries.append((item, relative, passed_over(item)))
            else:
                entries.append((item, relative, None))
    return sorted(entries, key=lambda entry: entry[0])


def unit_content(unit: Unit, modalities: frozenset[str]) -> Content | None:
    """What an embedder that reads ``modalities`` embeds for a unit; None when it can read nothing of it."""
    if unit.modality == VIDEO and unit.frames:
        if "video" in modalities:
            return Content(videos=(tuple(unit.frames),))
    elif unit.image is not None and "image" in modalities:
        return Content(images=(unit.image,))
    if unit.text.strip() and "text" in modalities:
        return Content(texts=(unit.text,))
    return None


class Ingestor:
    """Indexes files into a :class:`VectorStore` and a :class:`MediaStore`.

    Args:
        store: the open vector store.
        media: where unit pictures go.
        embedder: makes the ``content`` vector of every unit.
        text_embedder: optional; makes a ``text`` vector from each unit's text (page text layer, chunk).
        options: how loaders read files.
        batch_units: units embedded per call (bounds memory: a batch of page renders is held at once).
        render_workers: worker processes that render and encode PDF pages, read images (OCR
            included) and OCR video keyframes ahead of the embedder (:mod:`indexer.render_pool`);
            0 does it all in this thread. They start with the first such file and stop at the end of
            :meth:`ingest`, at :meth:`close` or at interpreter exit.
    """

    # Whether ingest() takes files that resolve outside the paths given (indexer.setup sets it from
    # the follow_external_links setting); see discover().
    follow_external_links: bool = False

    def __init__(
        self,
        store: VectorStore,
        media: MediaStore,
        embedder: Embedder,
        text_embedder: Embedder | None = None,
        *,
        options: LoadOptions | None = None,
        batch_units: int = 8,
        render_workers: int = 0,
    ) -> None:
        if text_embedder is not None and "text" not in text_embedder.modalities:
            raise ValueError(f"the text embedder {text_embedder.name} does not read text")
        self.store = store
        self.media = media
        self.embedder = embedder
        self.text_embedder = text_embedder
        self.options = options or LoadOptions()
        self.batch_units = batch_units
        # Two batches of pages ahead: batch n + 1 renders while batch n is embedded.
        self.render_pool = (
            RenderPool(render_workers, lookahead_pages=2 * batch_units) if render_workers > 0 else None
        )
        vectors = {CONTENT_VECTOR: VectorSpec(embedder.name, embedder.dim)}
        if text_embedder is not None:
            vectors[TEXT_VECTOR] = VectorSpec(text_embedder.name, text_embedder.dim)
        store.ensure_collections(vectors)
        # How an embedder turns a unit into a vector, where it says (a sentence-transformers model's
        # long documents, embedded in windows): a new way re-embeds what the old one made.
        revisions = {
            name: rev
            for name, model in ((CONTENT_VECTOR, embedder), (TEXT_VECTOR, text_embedder))
            if model is not None and (rev := getattr(model, "document_revision", None))
        }
        self.fingerprint = _fingerprint(self.options, vectors, revisions)
        self._read_ahead_at = 0  # next index of ingest()'s file list that _read_ahead() considers
        self._hashes: dict[Path, tuple[tuple[int, int], str]] = {}  # sha256 of files read ahead

    # -- public ---------------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        recursive: bool = False,
        tags: Sequence[str] = (),
        prune: bool = False,
        progress: Progress | None = None,
        shard: Shard | None = None,
    ) -> IngestReport:
        """Index every file under ``paths`` (only ``shard``'s part, if given); with ``prune``, drop
        documents under them whose file is gone."""
        started = time.perf_counter()
        progress = progress or _Silent()
        files, missing = discover(
            paths, recursive=recursive, shard=shard, follow_external_links=self.follow_external_links
        )
        report = IngestReport(files=missing)
        progress.start(len(files) + len(missing))
        for result in missing:
            progress.file_done(result)
        self._read_ahead_at = 0
        try:
            for at, path in enumerate(files):
                self._read_ahead(files, at)
                progress.file_started(path)
                result = self.ingest_file(path, tags=tags, progress=progress)
                report.files.append(result)
                progress.file_done(result)
        finally:
            self.close()  # no render worker outlives the run
            self._hashes.clear()
        if prune:
            report.files.extend(self.prune(paths))
        self.store.optimize()  # the search index over what this run wrote, before anyone queries it
        report.seconds = time.perf_counter() - started
        return report

    def ingest_file(
        self, path: Path, *, tags: Sequence[str] = (), progress: Progress | None = None
    ) -> FileResult:
        """Index one file; never raises for a bad file (the result says what went wrong)."""
        progress = progress or _Silent()
        started = time.perf_counter()
        path = path.resolve()
        doc_id = document_id(path)
        result = FileResult(str(path), FAILED, doc_id=doc_id)
        previous = None
        sha = None
        try:
            loader = loader_for(path)
            sha = self._sha256(path)
            fingerprint = self.file_fingerprint(path)
            previous = self.store.get_document(doc_id)
            tags = sorted(set(tags))
            if _is_current(previous, sha, fingerprint):
                if list(previous.tags) != tags:  # type: ignore[union-attr]
                    self.store.set_tags(doc_id, tags)
                    self.store.put_document(_replace(previous, tags=tuple(tags)))
                result.status, result.units = UNCHANGED, previous.unit_count  # type: ignore[union-attr]
                return result
            self._index(path, loader, doc_id, sha, tags, previous, result, progress, fingerprint)
            replaced = previous is not None and (previous.complete or previous.sha256 != sha)
            result.status = UPDATED if replaced else ADDED
        except (StoreError, IngestInterrupted):  # the run stops; what was written is kept for a resume
            raise
        except Exception as exc:  # one bad file must never stop a bulk run
            result.status, result.error = FAILED, _message(path, exc)
            logger.debug("failed to ingest %s", path, exc_info=True)
            if sha is not None:
                self._roll_back(doc_id, sha, previous)
        finally:
            result.seconds = time.perf_counter() - started
        return result

    def close(self) -> None:
        """Stop the render workers, if any (they start again with the next PDF)."""
        if self.render_pool is not None:
            self.render_pool.close()

    def delete(self, doc_id: str) -> int:
        """Remove one document (its units, media and record); returns the number of units removed."""
        return len(delete_document(self.store, self.media, doc_id))

    def prune(self, paths: Sequence[str | Path]) -> list[FileResult]:
        """Remove documents whose source lies under ``paths`` but no longer exists."""
        roots = [Path(p).expanduser().resolve() for p in paths]
        results = []
        for record in list(self.store.documents()):
            source = Path(record.source)
            under = any(source == root or source.is_relative_to(root) for root in roots)
            if under and not source.exists():
                removed = self.delete(record.doc_id)
                results.append(FileResult(record.source, REMOVED, doc_id=record.doc_id, units=removed))
        # A run killed between writing a unit's media and its point leaves media no point names;
        # normally the resumed run reuses them, but a file changed in between orphans them.
        orphans = self.media.unit_ids() - self.store.all_unit_ids()
        self.media.delete(orphans)
        if orphans:
            logger.info("removed the media of %d units that are not in the index", len(orphans))
        return results

    # -- one file -------------------------------------------------------------------------------------

    def _index(
        self,
        path: Path,
        loader: Any,
        doc_id: str,
        sha: str,
        tags: list[str],
        previous: DocumentRecord | None,
        result: FileResult,
        progress: Progress,
        fingerprint: str,
    ) -> None:
        resuming = previous is not None and previous.sha256 == sha and not previous.complete
        ingested_at = previous.ingested_at if resuming else _now()  # type: ignore[union-attr]
        done = set(self.store.unit_ids(doc_id, sha256=sha)) if resuming else set()
        record = DocumentRecord(
            doc_id=doc_id,
            source=str(path),
            sha256=sha,
            modality="",
            title=path.stem,
            unit_count=0,
            tags=tuple(tags),
            ingested_at=ingested_at,
            fingerprint=fingerprint,
        )
        self.store.put_document(record)
        base = {
            "doc_id": doc_id,
            "source": str(path),
            "source_dirs": source_dirs(path),
            "file_name": path.name,
            "sha256": sha,
            "tags": tags,
            "ingested_at": ingested_at,
            "state": STAGED,
        }
        count, modality, title = 0, "", path.stem
        pooled = self.render_pool.reads(loader) if self.render_pool is not None else None
        units = (pooled or loader)(path, self.options)
        try:
            while batch := list(islice(units, self.batch_units)):
                count += len(batch)
                modality, title = batch[0].modality, batch[0].title
                todo = [(point_id(doc_id, sha, u.index, fingerprint), u) for u in batch]
                todo = [(pid, u) for pid, u in todo if pid not in done]
                written, skipped = self._write(todo, base)
                result.embedded += written
                result.skipped += skipped
                progress.units_done(len(batch))
                logger.info("%s: %d units written (%d embedded so far)", path.name, count, result.embedded)
        finally:
            close = getattr(units, "close", None)
            if close is not None:
                close()
        if count == 0:
            raise EmptyDocumentError(f"{path.name} holds nothing to index")
        if result.skipped == count:
            raise DocumentError(
                f"{path.name}: the embedder {self.embedder.name} reads only "
                f"{', '.join(sorted(self.embedder.modalities))}, and this file has none of it"
            )
        self._publish(doc_id, sha, count, fingerprint)
        self.store.put_document(
            _replace(record, modality=modality, title=title, unit_count=count, complete=True)
        )
        result.units = count

    def _write(self, todo: list[tuple[str, Unit]], base: dict[str, Any]) -> tuple[int, int]:
        """Embed, store media and upsert a batch; returns (units written, units skipped)."""
        readable = []
        for pid, unit in todo:
            content = unit_content(unit, self.embedder.modalities)
            if content is not None:
                readable.append((pid, unit, content))
        if not readable:
            return 0, len(todo)
        vectors = self.embedder.embed_documents([c for _, _, c in readable])
        text_vectors: dict[str, list[float]] = {}
        if self.text_embedder is not None:
            texts = [(pid, u.text) for pid, u, _ in readable if u.text.strip()]
            if texts:
                embedded = self.text_embedder.embed_documents([Content(texts=(t,)) for _, t in texts])
                text_vectors = {pid: row.tolist() for (pid, _), row in zip(texts, embedded, strict=True)}
        points = []
        for (pid, unit, _), vector in zip(readable, vectors, strict=True):
            refs = self.media.put(pid, unit)  # media first: a point never names a missing file
            named: dict[str, Any] = {CONTENT_VECTOR: vector.tolist()}
            if pid in text_vectors:
                named[TEXT_VECTOR] = text_vectors[pid]
            keywords = bm25.document_vector(unit.text) if self.store.has_keyword_leg else None
            if keywords is not None:
                named[BM25_VECTOR] = keywords
            points.append(UnitPoint(pid, named, {**base, **_unit_payload(unit), **refs.payload()}))
        self.store.upsert_units(points)
        return len(points), len(todo) - len(points)

    def _publish(self, doc_id: str, sha: str, count: int, fingerprint: str) -> None:
        """Make a complete version searchable at once, then drop the document's other units.

        Killed in between, the next run finds the record partial, embeds nothing and publishes again.
        """
        version = Filter.of(Match("doc_id", (doc_id,)), Match("sha256", (sha,)), Match("state", (STAGED,)))
        self.store.set_payload(version, {"state": LIVE})
        wanted = {point_id(doc_id, sha, index, fingerprint) for index in range(count)}
        stale = [pid for pid in self.store.unit_ids(doc_id) if pid not in wanted]
        self.store.delete_units(stale)
        self.media.delete(stale)

    # -- a file's fingerprint, and images read ahead by the render workers -------------------------------

    def file_fingerprint(self, path: Path) -> str:
        """The settings fingerprint, plus what else this file's units depend on (a video's sidecar
        subtitles, :func:`indexer.loaders.identity`): when it changes, the file is indexed again."""
        extra = loader_identity(path)
        if not extra:
            return self.fingerprint
        return hashlib.sha256(f"{self.fingerprint}/{extra}".encode()).hexdigest()[:16]

    def _sha256(self, path: Path) -> str:
        """The file's sha256, hashed once for a file that :meth:`_read_ahead` hashed already."""
        known = self._hashes.pop(path, None)
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if known is not None and stat is not None and known[0] == (stat.st_size, stat.st_mtime_ns):
            return known[1]
        return file_sha256(path)

    def _read_ahead(self, files: Sequence[Path], at: int) -> None:
        """Have the render workers read (decode, size, OCR) the next images to index while the files
        before them embed. Each file is considered once; an unchanged one is not read, which would
        cost its OCR for nothing; at most ``lookahead_images`` wait at once."""
        pool = self.render_pool
        if pool is None:
            return
        self._read_ahead_at = max(self._read_ahead_at, at)
        while self._read_ahead_at < min(len(files), at + 4 * pool.lookahead_images):
            path = files[self._read_ahead_at]
            if path.suffix.lower() in IMAGE_EXTENSIONS and not pool.prefetching(path):
                try:
                    stat = path.stat()
                    sha = file_sha256(path)
                    changed = not _is_current(
                        self.store.get_document(document_id(path)), sha, self.file_fingerprint(path)
                    )
                except (OSError, MMSearchError):
                    changed = False  # ingest_file() says what is wrong with it
                if changed:
                    if not pool.prefetch_image(path, self.options):
                        return  # full: this file is considered again at the next one
                    self._hashes[path] = ((stat.st_size, stat.st_mtime_ns), sha)
            self._read_ahead_at += 1

    def _staged_ids(self, doc_id: str) -> list[str]:
        staged = Filter.of(Match("doc_id", (doc_id,)), Match("state", (STAGED,)))
        return [p.id for p in self.store.iter_units(staged, fields=False)]

    def _roll_back(self, doc_id: str, sha: str, previous: DocumentRecord | None) -> None:
        """Undo a failed file: drop its staged units; keep a previous complete version searchable."""
        keep_previous = previous is not None and previous.complete
        partial = self._staged_ids(doc_id)
        self.store.delete_units(partial)
        self.media.delete(partial)
        if keep_previous:
            self.store.put_document(previous)  # type: ignore[arg-type]
        else:
            delete_document(self.store, self.media, doc_id)  # an earlier partial version's units too


def _unit_payload(unit: Unit) -> dict[str, Any]:
    return {
        "unit_index": unit.index,
        "modality": unit.modality,
        "title": unit.title,
        "text": unit.text,
        "snippet": unit.snippet,
        "page": unit.page,
        "start_s": unit.start_s,
        "end_s": unit.end_s,
        "timestamps": list(unit.timestamps),
        "char_start": unit.char_start,
        "char_end": unit.char_end,
        # The words with their boxes are in the media store (MediaRefs.words, "words_file"), not here:
        # every query fetches the payloads of its candidates.
    }


def _is_current(record: DocumentRecord | None, sha: str, fingerprint: str) -> bool:
    return (
        record is not None and record.complete and record.sha256 == sha and record.fingerprint == fingerprint
    )


def _replace(record: DocumentRecord, **changes: Any) -> DocumentRecord:
    return DocumentRecord(**{**asdict(record), **changes})


def _fingerprint(options: LoadOptions, vectors: dict[str, VectorSpec], revisions: dict[str, str]) -> str:
    # Units depend on these settings: when they change, a file's units must be rebuilt.
    # (asdict would deep-copy token_spans, a bound method of the embedder: read the fields one by one.)
    described: dict[str, Any] = {
        f.name: getattr(options, f.name) for f in fields(options) if f.name not in ("policy", "token_spans")
    }
    described["tokenizer"] = options.token_spans is not None
    described["vectors"] = {name: asdict(spec) for name, spec in sorted(vectors.items())}
    if revisions:  # absent for embedders that never changed how they embed: their units stay
        described["revisions"] = revisions
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _message(path: Path, exc: BaseException) -> str:
    if isinstance(exc, MMSearchError):
        text = str(exc)
        return text if path.name in text or str(path) in text else f"{path.name}: {text}"
    return f"{path.name}: unexpected {type(exc).__name__}: {exc}"
