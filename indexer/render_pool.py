"""PDF pages rendered and encoded, images and video keyframes read by OCR, in worker processes ahead
of the embedder.

A page costs about 70 ms of CPU before it can be embedded and stored: pdfium's render and text layer
(OCR for a scan), the page PNG and the thumbnail. In the embedder's thread that work and the forward
pass take turns; a :class:`RenderPool` moves it to worker processes (pdfium is not thread-safe, so
each process has one document open, in its one thread) and keeps a bounded number of pages rendering
ahead, so while batch *n* is embedded batch *n + 1* is already being rendered.

:meth:`RenderPool.load` is a drop-in for :func:`indexer.loaders.pdf.load_pdf`: the same units in the
same order (each worker calls the loader's own per-page function), the same errors at the same page,
plus each page's stored files already encoded (:attr:`Unit.image_png`, :attr:`Unit.thumbnail_jpg`:
byte for byte what :class:`~indexer.media_store.MediaStore` would write). A long PDF is cut into
runs of a few pages handed to the workers in turn; every worker opens the document itself. At most
``lookahead_pages`` pages are rendering or rendered-but-unread at once, so memory stays flat on a
5,000-page PDF.

Images and videos:

- :meth:`RenderPool.load_image` is a drop-in for :func:`indexer.loaders.image.load_image_file`: a
  worker decodes, sizes and OCRs the image and encodes its thumbnail. An image is one file, so the
  overlap comes from reading the *next files* ahead: :meth:`RenderPool.prefetch_image` starts up to
  ``lookahead_images`` of them (the ingest pipeline names the images it will index next, not the
  unchanged ones) while earlier files embed, and ``load_image`` takes the result when its file comes
  (checked against the file's size and modification time, else read again).
- :meth:`RenderPool.load_video` is :func:`indexer.loaders.video.load_video_file` decoding in this
  process and sending its keyframes to the workers for OCR: segments wait, a bounded number, for
  their text while the next ones are decoded (at most ``lookahead_pages`` frames in flight).

A worker that dies (killed, out of memory) fails the file being rendered with a
:class:`~core.errors.DocumentError` that says so; the pool is rebuilt for the next file (an image
read ahead when it died is read again once, since which of them killed it is not known). Workers
leave with the pool (:meth:`RenderPool.close`, at the latest at interpreter exit) and on their own
when the process that started them is gone.

Workers are started with ``spawn``, which imports the main module again in each of them: a script
that ingests with render workers keeps its work under ``if __name__ == "__main__":`` (as
``bench/ingest.py`` does; the ``mmsearch`` command and the API server do).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.errors import DocumentError
from indexer.loaders.base import Loader, LoadOptions
from indexer.units import Unit

logger = logging.getLogger(__name__)

CHUNK_PAGES = 4  # pages one task renders: few enough to spread a document, enough to amortise a call


def default_workers() -> int:
    """``min(4, CPU cores - 1)``: leave a core to the process that embeds and writes (0 on one core)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class RenderWorkerDied(DocumentError):
    """The worker process rendering a document died (killed, out of memory): the file is not indexed."""


class RenderPool:
    """Worker processes that render PDF pages, in page order, a bounded number of pages ahead.

    Args:
        workers: worker processes (at least 1); started on the first document, not here.
        lookahead_pages: most pages rendering or waiting to be read at once (memory bound: one
            page render at the reranker budget is ~5 MiB); at least one run of pages per worker.
        chunk_pages: pages one task renders.
        lookahead_images: most images read ahead (:meth:`prefetch_image`) and not loaded yet;
            default ``2 * workers`` (one reading and one waiting per worker), at most
            ``lookahead_pages``.
        context: the multiprocessing start method, ``spawn`` or ``forkserver`` (never ``fork``: the
            parent has threads and pdfium state that a fork would copy).

    Use it from one thread at a time.
    """

    def __init__(
        self,
        workers: int,
        *,
        lookahead_pages: int = 16,
        chunk_pages: int = CHUNK_PAGES,
        lookahead_images: int | None = None,
        context: str = "spawn",
    ) -> None:
        if workers < 1:
            raise ValueError("a render pool needs at least one worker")
        if context not in ("spawn", "forkserver"):
            raise ValueError(f"context must be spawn or forkserver, not {context!r}")
        self.workers = workers
        self.chunk_pages = max(1, chunk_pages)
        self.lookahead_pages = max(lookahead_pages, self.chunk_pages * workers)
        wanted = 2 * workers if lookahead_images is None else lookahead_images
        self.lookahead_images = max(1, min(wanted, self.lookahead_pages))
        self.context = context
        self._executor: ProcessPoolExecutor | None = None
        self._pending: deque[Future[Any]] = deque()  # the current document's tasks, in page order
        # Images read ahead: path -> (size and mtime_ns when asked, options, the worker's task).
        self._images: dict[Path, tuple[tuple[int, int], LoadOptions, Future[Any]]] = {}
        self._finalizer = weakref.finalize(self, _shutdown, [None])  # runs at interpreter exit too

    # -- life cycle -----------------------------------------------------------------------------------

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(self.context),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _shutdown, [self._executor])
            logger.debug("render pool: %d %s workers", self.workers, self.context)
        return self._executor

    @property
    def started(self) -> bool:
        """Whether worker processes are running (they start with the first document)."""
        return self._executor is not None

    def pids(self) -> list[int]:
        """The worker processes' ids (empty before the first document)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return list(processes)

    def close(self) -> None:
        """Stop the workers and wait for them; the pool starts again if used afterwards."""
        executor, self._executor = self._executor, None
        self._pending.clear()
        for _, _, future in self._images.values():
            future.cancel()
        self._images.clear()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one document ---------------------------------------------------------------------------------

    def pages_ready(self) -> int:
        """Pages of the current document rendered by the workers and not read yet."""
        return sum(len(f.result()[0]) for f in list(self._pending) if f.done() and not f.exception())

    def load(self, path: Path, options: LoadOptions) -> Iterator[Unit]:
        """Yield the units of a PDF as :func:`indexer.loaders.pdf.load_pdf` does, rendered by the workers.

        Raises:
            The loader's errors (encrypted, corrupt, empty, missing), at the same page;
            RenderWorkerDied: a worker process died while rendering this document.
        """
        from core.media import describe_source

        path = Path(path)
        label = describe_source(path)
        options = replace(options, token_spans=None)  # a tokenizer is not for PDF pages, nor picklable
        pending = self._pending
        pending.clear()
        try:
            count, title = self._pool().submit(_open_document, path, label).result()
            starts = iter(range(0, count, self.chunk_pages))

            def fill() -> None:
                while len(pending) * self.chunk_pages < self.lookahead_pages:
                    start = next(starts, None)
                    if start is None:
                        return
                    pages = range(start, min(start + self.chunk_pages, count))
                    pending.append(self._pool().submit(_render_pages, path, pages, title, options, label))

            fill()
            while pending:
                units, error = pending[0].result()
                pending.popleft()
                fill()  # the next run renders while the caller embeds this one
                yield from units
                if error is not None:
                    raise error
        except BrokenProcessPool as exc:  # on a task's result, or on submitting to a pool found broken
            self.close()  # the next document gets a new pool
            raise RenderWorkerDied(
                f"{label}: the worker process rendering this PDF died (killed, or out of memory); "
                f"the file is not indexed, try it again"
            ) from exc
        finally:
            for future in pending:
                future.cancel()
            pending.clear()

    # -- any file the workers read ----------------------------------------------------------------------

    def reads(self, loader: Loader) -> Callable[[Path, LoadOptions], Iterator[Unit]] | None:
        """This pool's drop-in for ``loader`` (PDF, image, video), or None: load it in this thread."""
        from indexer.loaders.image import load_image_file
        from indexer.loaders.pdf import load_pdf
        from indexer.loaders.video import load_video_file

        return {load_pdf: self.load, load_image_file: self.load_image, load_video_file: self.load_video}.get(
            loader  # type: ignore[arg-type]
        )

    # -- images ------------------------------------------------------------------------------------------

    def prefetching(self, path: Path) -> bool:
        """Whether this image is being read ahead (or was, and is waiting to be loaded)."""
        return Path(path) in self._images

    def prefetch_image(self, path: Path, options: LoadOptions) -> bool:
        """Start reading an image that :meth:`load_image` will be asked for soon.

        Returns:
            False when ``lookahead_images`` are read ahead already (or the file is gone): ask again
            once one of them is loaded.
        """
        path = Path(path)
        if path in self._images:
            return True
        key = _file_key(path)
        if key is None or len(self._images) >= self.lookahead_images:
            return False
        options = replace(options, token_spans=None)
        try:
            future = self._pool().submit(_image_unit, path, options)
        except BrokenProcessPool:  # a worker died since the last file: start afresh
            self.close()
            future = self._pool().submit(_image_unit, path, options)
        self._images[path] = (key, options, future)
        return True

    def load_image(self, path: Path, options: LoadOptions) -> Iterator[Unit]:
        """Yield the unit of an image as :func:`indexer.loaders.image.load_image_file` does, read in a
        worker (the one :meth:`prefetch_image` started, if the file has not changed since).

        Raises:
            The loader's errors; RenderWorkerDied: a worker process died while reading it.
        """
        from core.media import describe_source

        path = Path(path)
        options = replace(options, token_spans=None)
        future = None
        entry = self._images.pop(path, None)
        if entry is not None:
            key, asked, future = entry
            if key != _file_key(path) or asked != options:
                future.cancel()  # changed since it was read ahead: read it again
                future = None
        retry = future is not None  # a task read ahead may die of another image's fault
        while True:
            try:
                if future is None:
                    future = self._pool().submit(_image_unit, path, options)
                unit, error = future.result()
                break
            except BrokenProcessPool as exc:
                self.close()
                if not retry:
                    raise RenderWorkerDied(
                        f"{describe_source(path)}: the worker process reading this image died (killed, "
                        f"or out of memory); the file is not indexed, try it again"
                    ) from exc
                future, retry = None, False
        if error is not None:
            raise error
        yield unit

    # -- videos ------------------------------------------------------------------------------------------

    def load_video(self, path: Path, options: LoadOptions) -> Iterator[Unit]:
        """Yield the units of a video as :func:`indexer.loaders.video.load_video_file` does, decoded
        here, its keyframes read by OCR in the workers.

        Raises:
            The loader's errors; RenderWorkerDied: a worker process died while reading its frames.
        """
        from core.media import describe_source
        from indexer.loaders.video import load_video_file

        try:
            yield from load_video_file(
                path,
                options,
                read_frame=self._read_frame,
                lookahead_segments=max(1, self.lookahead_pages // 2),
                max_frames_reading=self.lookahead_pages,
            )
        except BrokenProcessPool as exc:
            self.close()
            raise RenderWorkerDied(
                f"{describe_source(Path(path))}: the worker process reading this video's frames died "
                f"(killed, or out of memory); the file is not indexed, try it again"
            ) from exc

    def _read_frame(self, image: Any) -> Future[Any]:
        return self._pool().submit(_read_frame, image)


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _shutdown(holder: list[ProcessPoolExecutor | None]) -> None:
    executor = holder[0]
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=True)


# -- in the worker processes -----------------------------------------------------------------------------

# The document this worker has open: (path, size, mtime_ns, pdfium document, title).
_DOCUMENT: tuple[Path, int, int, Any, str] | None = None


def _init_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group: the parent decides what stops, the workers just exit
    # with the pool. A worker whose parent is gone (killed without closing the pool) leaves too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="render-parent-watch", daemon=True).start()


def _document(path: Path, label: str) -> tuple[Any, str]:
    from indexer.loaders import pdf as pdf_loader

    global _DOCUMENT
    stat = path.stat() if path.is_file() else None
    key = (path, stat.st_size, stat.st_mtime_ns) if stat is not None else None
    if _DOCUMENT is not None and key is not None and _DOCUMENT[:3] == key:
        return _DOCUMENT[3], _DOCUMENT[4]
    if _DOCUMENT is not None:
        _DOCUMENT[3].close()
        _DOCUMENT = None
    document = pdf_loader._open(path, label)
    title = pdf_loader._title(document, path)
    if key is not None:
        _DOCUMENT = (*key, document, title)
    return document, title


def _open_document(path: Path, label: str) -> tuple[int, str]:
    from core.errors import EmptyDocumentError

    document, title = _document(path, label)
    count = len(document)
    if count == 0:
        raise EmptyDocumentError(f"{label}: the PDF has no pages")
    return count, title


def _render_pages(
    path: Path, pages: range, title: str, options: LoadOptions, label: str
) -> tuple[list[Unit], BaseException | None]:
    """Units of ``pages`` (0-based), stored files encoded; with the error that stopped them, if any."""
    from indexer.loaders import pdf as pdf_loader
    from indexer.media_store import encode_page

    document, _ = _document(path, label)
    units: list[Unit] = []
    try:
        for index in pages:
            unit = pdf_loader._page_unit(document, index, title, options, label)
            png, thumb = encode_page(unit.image)  # type: ignore[arg-type]
            units.append(replace(unit, image_png=png, thumbnail_jpg=thumb))
    except Exception as exc:  # the pages before it are good: the caller yields them, then raises
        return units, exc
    return units, None


def _image_unit(path: Path, options: LoadOptions) -> tuple[Unit | None, BaseException | None]:
    """An image's unit (decoded, sized, OCR'd, thumbnail encoded), or the loader's error."""
    from indexer.loaders.image import load_image_file
    from indexer.media_store import encode, thumbnail

    try:
        (unit,) = list(load_image_file(path, options))
    except Exception as exc:  # the caller raises it, as the in-thread loader would
        return None, exc
    return replace(unit, thumbnail_jpg=encode(thumbnail(unit.image), ".jpg")), None  # type: ignore[arg-type]


def _read_frame(image: Any) -> Any:
    """What OCR reads in a video keyframe (as :func:`indexer.loaders.video.read_here` does)."""
    from indexer import ocr

    return ocr.recognize(image, native_detection=True)
