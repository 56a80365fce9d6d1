"""Background ingestion of uploaded files: streaming uploads to disk, and the in-memory job registry.

An upload (``POST /v1/documents``) is streamed straight to ``<data_dir>/uploads/<job_id>/<name>``,
counting bytes as they arrive, so an oversize body is refused without being held in memory or on disk.
The files are then indexed by a job on the job thread, one job at a time; its embedding forwards run on
the scheduler's ingest thread, beside the query thread (:mod:`app.api.scheduler`), so searches never
wait for them.

Uploaded files stay in the uploads folder after indexing: they are the sources of their documents
(a document's id is derived from its source path, and re-indexing reads the source again). A file that
fails to index is removed, since it is the source of nothing; deleting a document through the API
removes its uploaded source too.

Jobs are saved in the store (:meth:`VectorStore.put_job`), so a job id answers after a restart and
from every API replica of one Qdrant server; a job that a stopped or killed server left unfinished is
resumed at the next start (its finished files are not indexed again, the file it was in resumes from
its last batch). Only the newest finished jobs are kept (:attr:`JobRegistry.max_finished`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import shutil
import socket
import threading
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any

from app.api.schemas.documents import FileResultModel, JobModel
from core.errors import (
    IngestInterrupted,
    InputTooLongError,
    InvalidInputError,
    MediaTooLargeError,
    MMSearchError,
    UnsupportedFormatError,
)

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
PENDING = "pending"

MAX_NAME_CHARS = 120  # of a saved file name, extension included
MAX_FILES_PER_UPLOAD = 100
MAX_FIELD_BYTES = 16 * 1024  # a form field that is not a file (tags)
MAX_TAGS, MAX_TAG_CHARS = 64, 100

_UNSAFE = re.compile(r"[^\w.\- ]+")  # \w is Unicode-aware: accented and CJK names survive


def safe_filename(name: str, *, max_chars: int = MAX_NAME_CHARS) -> str:
    """A client's file name made safe to create in a folder of ours, keeping its extension.

    Only the last path component is kept (either separator), characters other than letters, digits,
    ``.``, ``-``, ``_`` and space become ``_``, leading dots are dropped (no hidden files, no ``..``)
    and the stem is shortened so that the whole name fits ``max_chars``.
    """
    name = unicodedata.normalize("NFC", name).replace("\\", "/")
    name = PurePosixPath(name).name if "/" in name else name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control characters
    name = _UNSAFE.sub("_", name).strip(" .")
    name = name.lstrip(".")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem, ext = stem.strip(" ._") or "upload", ext.strip()[:16]
    suffix = f".{ext}" if ext else ""
    return stem[: max_chars - len(suffix)].rstrip(" .") + suffix


def parse_tags(values: Sequence[str]) -> list[str]:
    """Tags from form fields: each may hold several, comma-separated; returned sorted and unique."""
    tags = sorted({t.strip() for value in values for t in value.split(",") if t.strip()})
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG_CHARS for t in tags):
        raise InvalidInputError(f"at most {MAX_TAGS} tags of at most {MAX_TAG_CHARS} characters each")
    return tags


# -- uploads ----------------------------------------------------------------------------------------------


@dataclass
class Upload:
    """What an upload request held: the files saved (in request order) and its other form fields."""

    files: list[Path] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)


class _MultipartWriter:
    """Parses a multipart body chunk by chunk, writing each file part straight to its final file."""

    def __init__(self, boundary: bytes, folder: Path, extensions: frozenset[str]) -> None:
        from python_multipart.multipart import MultipartParser

        self.folder = folder
        self.extensions = extensions
        self.upload = Upload()
        self.ended = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._out: IO[bytes] | None = None
        self._field: str | None = None
        self._data = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def write(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def finish(self) -> Upload:
        self._parser.finalize()
        self.close()
        if not self.ended:
            raise InvalidInputError("the multipart body ended before its closing boundary")
        return self.upload

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    # -- parser callbacks ---------------------------------------------------------------------------------

    def _part_begin(self) -> None:
        self._disposition, self._field, self._data = b"", None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        if b"filename" not in options:
            self._field = options.get(b"name", b"").decode("utf-8", "replace")
            return
        raw = options[b"filename"].decode("utf-8", "replace")
        if not raw:
            return  # a form's empty file input: nothing was chosen
        if len(self.upload.files) >= MAX_FILES_PER_UPLOAD:
            raise InvalidInputError(f"at most {MAX_FILES_PER_UPLOAD} files per upload")
        name = safe_filename(raw)
        suffix = Path(name).suffix.lower()
        if suffix not in self.extensions:
            raise UnsupportedFormatError(
                f"{name}: files of type {suffix or '(no extension)'} cannot be indexed; "
                f"supported: {', '.join(sorted(self.extensions))}"
            )
        path = self._unique(self.folder / name)
        self._out = path.open("xb")  # x: never overwrite, whatever a name turned into
        self.upload.files.append(path)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self._out.write(data[start:end])
        elif self._field is not None:
            if len(self._data) + end - start > MAX_FIELD_BYTES:
                raise InputTooLongError(f"form field {self._field!r} is over {MAX_FIELD_BYTES} bytes")
            self._data += data[start:end]

    def _part_end(self) -> None:
        if self._out is not None:
            self.close()
        elif self._field is not None:
            self.upload.fields.setdefault(self._field, []).append(self._data.decode("utf-8", "replace"))
        self._field = None

    def _end(self) -> None:
        self.ended = True

    @staticmethod
    def _unique(path: Path) -> Path:
        # Two files of one upload may share a name (or sanitise to the same one).
        candidate, n = path, 1
        while candidate.exists():
            candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
            n += 1
        return candidate


async def receive_upload(
    stream: AsyncIterable[bytes],
    content_type: str,
    folder: Path,
    *,
    max_bytes: int,
    extensions: frozenset[str],
) -> Upload:
    """Stream a multipart body into ``folder``, refusing it as soon as it passes ``max_bytes``.

    Parsing and file writes run in a worker thread chunk by chunk, so the event loop never waits on
    the disk. On any failure the folder is removed: a refused upload leaves nothing behind.

    Raises:
        MediaTooLargeError: the body is larger than ``max_bytes`` (413).
        UnsupportedFormatError: a file's extension is not one the indexer reads (415).
        InvalidInputError: the body is not valid multipart/form-data (422).
    """
    import anyio
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInputError("the multipart body has no boundary in its Content-Type")
    folder.mkdir(parents=True, exist_ok=False)
    writer = _MultipartWriter(boundary, folder, extensions)
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > max_bytes:
                raise MediaTooLargeError(f"the upload is larger than the server's limit of {max_bytes} bytes")
            if chunk:
                await anyio.to_thread.run_sync(writer.write, chunk)
        return await anyio.to_thread.run_sync(writer.finish)
    except FormParserError as exc:
        writer.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise InvalidInputError(f"the body is not valid multipart/form-data: {exc}") from None
    except BaseException:
        writer.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise


# -- jobs -------------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


OWNER = f"{socket.gethostname()}:{os.getpid()}"  # which server process runs a job
LEASE = timedelta(minutes=2)  # a running job whose owner has not written for this long is orphaned
HEARTBEAT = timedelta(seconds=15)
# Units per embedding forward of an upload job. Small, so that a stopping server waits for one short
# forward at most (on a CPU, batching saves little; on a GPU, a forward of two is short).
FORWARD_ITEMS = 2
JOB_NICENESS = 10


@dataclass
class _FileEntry:
    path: Path
    status: str = PENDING
    doc_id: str | None = None
    units: int = 0
    error: str | None = None


@dataclass
class Job:
    """One upload's ingestion. Mutated only under the registry's lock; saved in the store."""

    id: str
    files: list[_FileEntry]
    tags: list[str]
    state: str = QUEUED
    error: str | None = None
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    owner: str = OWNER
    heartbeat: datetime = field(default_factory=_now)

    def model(self) -> JobModel:
        return JobModel(
            id=self.id,
            state=self.state,  # type: ignore[arg-type]
            tags=list(self.tags),
            files=[
                FileResultModel(
                    file_name=f.path.name,
                    status=f.status,  # type: ignore[arg-type]
                    doc_id=f.doc_id,
                    units=f.units,
                    error=f.error,
                )
                for f in self.files
            ],
            error=self.error,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )

    def state_dict(self) -> dict[str, Any]:
        """What the store keeps (JSON)."""
        stamp = lambda t: t.isoformat() if t else None  # noqa: E731
        return {
            "id": self.id,
            "state": self.state,
            "tags": list(self.tags),
            "error": self.error,
            "files": [{**asdict(f), "path": str(f.path)} for f in self.files],
            "created_at": stamp(self.created_at),
            "started_at": stamp(self.started_at),
            "finished_at": stamp(self.finished_at),
            "owner": self.owner,
            "heartbeat": stamp(self.heartbeat),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Job:
        files = [_FileEntry(**{**f, "path": Path(f["path"])}) for f in state.get("files", [])]
        return cls(
            id=state["id"],
            files=files,
            tags=list(state.get("tags", [])),
            state=state.get("state", QUEUED),
            error=state.get("error"),
            created_at=_time(state.get("created_at")) or _now(),
            started_at=_time(state.get("started_at")),
            finished_at=_time(state.get("finished_at")),
            owner=state.get("owner", ""),
            heartbeat=_time(state.get("heartbeat")) or _now(),
        )

    def orphaned(self) -> bool:
        """Unfinished, and its server is gone: stopped, killed, or silent past the lease."""
        if self.state not in (QUEUED, RUNNING):
            return False
        host, _, pid = self.owner.rpartition(":")
        if host == socket.gethostname() and pid.isdigit():
            return int(pid) == os.getpid() or not _alive(int(pid))
        return _now() - self.heartbeat > LEASE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_uuid(job_id: str) -> str | None:
    """A job id in its canonical form, or None when it is not one."""
    try:
        return str(uuid.UUID(job_id))
    except (ValueError, AttributeError, TypeError):
        return None


class JobQueueFullError(Exception):
    """Too many jobs are waiting (or the server is stopping); the route answers 503 with Retry-After."""


class _Scheduled:
    """An embedder whose forwards run on the scheduler's ingest thread, beside the queries'.

    Raises :class:`IngestInterrupted` once the registry stops: the file is left for a resume.
    """

    def __init__(self, embedder: Any, registry: JobRegistry) -> None:
        self._embedder = embedder
        self._registry = registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def embed_documents(self, contents: Any) -> Any:
        """Embed in forwards of ``FORWARD_ITEMS``: a query waits for at most one of them."""
        import numpy as np

        parts = []
        for start in range(0, len(contents), FORWARD_ITEMS):
            parts.append(self._forward(contents[start : start + FORWARD_ITEMS]))
        return np.concatenate(parts) if parts else self._forward(contents)

    def _forward(self, contents: Any) -> Any:
        from concurrent.futures import CancelledError

        from app.api.scheduler import SchedulerStopped

        self._registry.beat()
        if self._registry.stopping.is_set():
            raise IngestInterrupted("the server is stopping")
        try:
            return self._registry.scheduler.run_background(self._embedder.embed_documents, contents)
        except (SchedulerStopped, CancelledError):
            raise IngestInterrupted("the server is stopping") from None


class JobRegistry:
    """The server's ingestion jobs: saved in the store, run one at a time by a job thread.

    The job thread reads, renders and writes; the embedding forwards go to the scheduler's ingest
    thread, which runs beside the query thread, so searches never wait for an upload's batches.
    Jobs a stopped or killed server left unfinished are resumed by :meth:`resume` at start-up.

    Args:
        services: the loaded services (store, media, embedders, model thread, settings).
        max_finished: finished jobs remembered; older ones are forgotten first.
        max_pending: jobs that may wait or run at once; more are refused.
    """

    def __init__(self, services: Any, *, max_finished: int = 1000, max_pending: int = 64) -> None:
        self.services = services
        self.scheduler = services.model_executor
        self.max_finished = max_finished
        self.max_pending = max_pending
        self.stopping = threading.Event()
        self._jobs: OrderedDict[str, Job] = OrderedDict()  # this process' unfinished and recent jobs
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ingestor: Any = None
        self._running: Job | None = None
        self._thread = threading.Thread(target=self._work, name="mmsearch-jobs", daemon=True)
        self._thread.start()

    @property
    def uploads_dir(self) -> Path:
        """Where uploads are kept: ``<data_dir>/uploads``."""
        return Path(self.services.settings.data_dir) / "uploads"

    @property
    def store(self) -> Any:
        return self.services.store

    def new_job_id(self) -> str:
        return str(uuid.uuid4())

    def pending(self) -> int:
        """Jobs queued or running in this process."""
        with self._lock:
            return sum(1 for job in self._jobs.values() if job.state in (QUEUED, RUNNING))

    def check_capacity(self) -> None:
        """Refuse a new upload early (before its body is read) when the queue is full."""
        if self.stopping.is_set():
            raise JobQueueFullError("the server is shutting down; retry later")
        if self.pending() >= self.max_pending:
            raise JobQueueFullError(f"{self.max_pending} ingestion jobs are already waiting; retry later")

    def submit(self, job_id: str, files: Sequence[Path], tags: Sequence[str]) -> JobModel:
        """Save the job in the store and queue it; returns the job as queued."""
        self.check_capacity()
        job = Job(job_id, [_FileEntry(path) for path in files], list(tags))
        self._enqueue(job)
        with self._lock:
            return job.model()

    def get(self, job_id: str) -> JobModel | None:
        """A job's current state (this process' or any other's, from the store), or None."""
        canonical = job_uuid(job_id)
        if canonical is None:
            return None
        with self._lock:
            job = self._jobs.get(canonical)
            if job is not None:
                return job.model()
        state = self.store.get_job(canonical)
        return Job.from_state(state).model() if state else None

    def resume(self) -> list[str]:
        """Queue again every unfinished job whose server is gone; returns their ids (at start-up)."""
        resumed = []
        for state in list(self.store.jobs()):
            try:
                job = Job.from_state(state)
            except (KeyError, TypeError, ValueError):
                logger.warning("ignoring an unreadable saved job %r", state.get("id"))
                continue
            if not job.orphaned():
                continue
            job.state, job.owner = QUEUED, OWNER
            for entry in job.files:
                if entry.status == PENDING and not entry.path.is_file():
                    entry.status, entry.error = FAILED, f"{entry.path.name}: the uploaded file is gone"
            logger.info("resuming ingestion job %s (%d files)", job.id, len(job.files))
            self._enqueue(job)
            resumed.append(job.id)
        return resumed

    def ingestor(self) -> Any:
        """The ingestor, built on first use, its embedders' forwards routed through the scheduler."""
        if self._ingestor is None:
            from indexer.setup import ingestor_from_parts

            s = self.services
            text = _Scheduled(s.text_embedder, self) if s.text_embedder is not None else None
            self._ingestor = ingestor_from_parts(
                s.settings, s.store, s.media, _Scheduled(s.embedder, self), text
            )
        return self._ingestor

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the current batch; an unfinished job stays saved and resumes at the next start."""
        self.stopping.set()
        self._queue.put(None)
        # A batch waiting for the ingest thread is dropped (the job thread sees IngestInterrupted).
        self.scheduler.shutdown(wait=False, cancel_futures=True)
        self._thread.join(timeout)
        if self._ingestor is not None and not self._thread.is_alive():
            self._ingestor.close()  # its render worker processes

    def beat(self) -> None:
        """Note in the store that the running job's server is alive (at most every few seconds)."""
        job = self._running
        if job is not None and _now() - job.heartbeat > HEARTBEAT:
            with self._lock:
                job.heartbeat = _now()
            self._save(job)

    # -- internals ----------------------------------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
        self._save(job)
        self._queue.put(job)

    def _save(self, job: Job) -> None:
        with self._lock:
            state = job.state_dict()
        self.store.put_job(job.id, state)

    def _work(self) -> None:
        # Reading and rendering files is the job thread's own CPU work: at a lower priority than
        # the threads that answer requests, so on a busy machine the kernel gives queries the cores.
        with contextlib.suppress(AttributeError, OSError):  # Linux sets a nice value per thread
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)
        while (job := self._queue.get()) is not None:
            if self.stopping.is_set():
                return
            self._running = job
            try:
                self._run(job)
            except Exception:  # never lose the thread: the job says what happened
                logger.exception("ingestion job %s failed", job.id)
            finally:
                self._running = None

    def _run(self, job: Job) -> None:
        from indexer.ingest import FAILED as FILE_FAILED

        with self._lock:
            job.state, job.started_at, job.heartbeat = RUNNING, job.started_at or _now(), _now()
        self._save(job)
        try:
            ingestor = self.ingestor()
            for entry in job.files:
                if entry.status != PENDING:
                    continue  # done before a restart
                result = ingestor.ingest_file(entry.path, tags=job.tags)
                if result.status == FILE_FAILED:
                    # A failed file is the source of no document: keep no copy of it.
                    entry.path.unlink(missing_ok=True)
                with self._lock:
                    entry.status, entry.units, entry.error = result.status, result.units, result.error
                    entry.doc_id = result.doc_id if result.status != FILE_FAILED else None
                self._save(job)
                logger.info("job %s: %s %s (%d units)", job.id, entry.path.name, result.status, result.units)
            # No optimize() here: the embedded engine holds Python's GIL while it builds its index,
            # which would stall every request. New points are searched exactly until the next start
            # (see Services.load) or until store_optimize_every of them pile up.
            with self._lock:
                job.state = DONE
        except IngestInterrupted:
            with self._lock:
                job.state = QUEUED  # saved as unfinished: the next start resumes it
            logger.info("ingestion job %s stopped with the server; it resumes at the next start", job.id)
            self._save(job)
            return
        except Exception as exc:  # a store failure (or a model that cannot load) stops the whole job
            logger.exception("ingestion job %s failed", job.id)
            message = str(exc) if isinstance(exc, MMSearchError) else f"unexpected {type(exc).__name__}"
            with self._lock:
                job.state, job.error = FAILED, message
                for entry in job.files:
                    if entry.status == PENDING:
                        entry.status, entry.error = FILE_FAILED, f"not indexed: {message}"
        with self._lock:
            job.finished_at = _now()
        self._save(job)
        with contextlib.suppress(OSError):
            job.files[0].path.parent.rmdir()  # only when every file failed (the folder is empty)
        self._forget_old()

    def _forget_old(self) -> None:
        with self._lock:
            for jid in [jid for jid, job in self._jobs.items() if job.state in (DONE, FAILED)]:
                del self._jobs[jid]  # finished jobs are read from the store from now on
        finished = sorted(
            (s.get("finished_at") or "", s["id"])
            for s in self.store.jobs()
            if s.get("state") in (DONE, FAILED)
        )
        for _, jid in finished[: max(0, len(finished) - self.max_finished)]:
            self.store.delete_job(jid)


_registry_lock = threading.Lock()


def jobs_for(services: Any) -> JobRegistry:
    """The job registry of a running server (created on first use, kept in ``services.extras``)."""
    with _registry_lock:
        registry = services.extras.get("jobs")
        if registry is None:
            registry = services.extras["jobs"] = JobRegistry(services)
        return registry


def remove_uploaded_source(services: Any, source: str) -> bool:
    """Delete a document's source file when it is an upload of this server; returns whether it did.

    Sources elsewhere (indexed by ``mmsearch ingest``) are the user's files and are never touched.
    """
    uploads = (Path(services.settings.data_dir) / "uploads").resolve()
    path = Path(source).resolve()
    if not path.is_relative_to(uploads) or path == uploads:
        return False
    existed = path.is_file()
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        if path.parent != uploads:
            path.parent.rmdir()  # the job's folder, once its last document is gone
    return existed
