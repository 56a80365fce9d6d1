"""CLI commands that write or read the index: ``ingest``, ``delete``, ``documents``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.cli.console import console, err_console, plural, print_error, print_model_error
from core.errors import MMSearchError, ModelLoadError
from core.settings import Settings

if TYPE_CHECKING:
    from indexer.ingest import IngestReport

EXIT_FAILED_FILES = 1
EXIT_NOTHING_TO_INDEX = 1  # no file to index was found (each path missing, or every file skipped)
EXIT_ERROR = 2
SKIPPED_SHOWN = 20  # skipped files listed on the terminal (the JSON report lists them all)


class BarProgress:
    """Draws the ingest progress: files done, units, units per second, current file.

    With nothing to do (no file found) no bar is drawn at all: the summary says so.
    """

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[files]} · {task.fields[units]} · {task.fields[rate]} units/s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.units = 0
        self.started = time.perf_counter()
        self.task = None
        self.console = console

    def __enter__(self) -> BarProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.bar.__exit__(None, None, None)

    def start(self, total_files: int) -> None:
        self.started = time.perf_counter()
        if total_files:
            self.bar.__enter__()
            files = "file" if total_files == 1 else "files"
            self.task = self.bar.add_task(
                "ingesting", total=total_files, files=files, units=plural(0, "unit"), rate="0.0"
            )

    def file_started(self, path: Path) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=_short(path.name))

    def units_done(self, count: int) -> None:
        self.units += count
        rate = self.units / max(time.perf_counter() - self.started, 1e-9)
        if self.task is not None:
            self.bar.update(self.task, units=plural(self.units, "unit"), rate=f"{rate:.1f}")

    def file_done(self, result) -> None:  # type: ignore[no-untyped-def]
        if self.task is None:
            return
        self.bar.advance(self.task)
        if self.bar.tasks[0].finished:
            self.bar.update(self.task, description="done")
        if result.error:
            self.bar.console.print(f"[red]failed:[/red] {escape(result.error)}")


def _short(name: str, width: int = 32) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def ingest(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH", help="Files or folders to index.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tags", "-t", metavar="T,...", help="Tag every document (repeat or comma-separate)."),
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove indexed documents under PATHS whose file is gone.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", metavar="FILE", help="Write a JSON report to this file ('-' for stdout)."),
    ] = None,
    embedder: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Embedding model (env MMSEARCH_EMBEDDER_MODEL).")
    ] = None,
    text_embedder: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL", help="Text model for a second vector (env MMSEARCH_TEXT_EMBEDDER_MODEL)."
        ),
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (env MMSEARCH_COLLECTION).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (env MMSEARCH_DEVICE).")] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="I/N",
            help="Index only part I of N of the files (e.g. 2/4), to split a corpus across machines "
            "that write into one Qdrant server.",
        ),
    ] = None,
) -> None:
    """Index files into the search store: PDFs, images, videos, text, Markdown and HTML.

    Unchanged files are skipped, changed files replace their old version, and a killed run picks up
    where it stopped when run again. In a folder, files of other types, hidden files and links that
    resolve outside the paths given (unless MMSEARCH_FOLLOW_EXTERNAL_LINKS=1) are skipped, and
    listed with the reason. Exit code 0: all files indexed; 1: some files failed (listed), or there
    was nothing to index; 2: nothing could run (bad settings, store in use, model not found).
    """
    from indexer.ingest import IngestReport, Shard, discover
    from indexer.setup import build_ingestor, open_store

    try:
        part = Shard.parse(shard) if shard is not None else None
    except ValueError as exc:
        print_error(f"--shard: {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc
    settings = Settings.with_options(
        embedder_model=embedder, text_embedder_model=text_embedder, collection=collection, device=device
    )
    tag_list = sorted({t.strip() for item in tags or [] for t in item.split(",") if t.strip()})
    # Found first, so that a run with nothing to index says so before any model loads.
    found, passed = discover(
        paths, recursive=recursive, shard=part, follow_external_links=settings.follow_external_links
    )
    if not found and not prune:
        result = IngestReport(files=passed)
        for failure in passed:
            if failure.error:
                err_console.print(f"[red]failed:[/red] {escape(failure.error)}")
        _summarise(result, paths)
        _write_report(result, report)
        raise typer.Exit(code=EXIT_NOTHING_TO_INDEX)
    names = {"embedder": settings.embedder_model, "text embedder": settings.text_embedder_model}
    try:
        with open_store(settings) as store:
            with err_console.status("loading the embedder…"):
                ingestor = build_ingestor(settings, store)
            with BarProgress(err_console) as progress:
                result = ingestor.ingest(
                    paths, recursive=recursive, tags=tag_list, prune=prune, progress=progress, shard=part
                )
    except ModelLoadError as exc:
        print_model_error("ingest", exc, names)
        raise typer.Exit(code=EXIT_ERROR) from exc
    except MMSearchError as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_ERROR) from exc

    _summarise(result, paths)
    _write_report(result, report)
    if result.failed:
        raise typer.Exit(code=EXIT_FAILED_FILES)


def _summarise(result: IngestReport, paths: list[Path], shown: int = SKIPPED_SHOWN) -> None:
    """The run's counts on stderr, the files skipped (with the reason), and "nothing to index" when
    nothing was found."""
    skipped = result.skipped_files
    for entry in skipped[:shown]:
        err_console.print(f"skipped: {entry.source}: {entry.reason}", markup=False, style="yellow")
    if len(skipped) > shown:
        more = len(skipped) - shown
        err_console.print(
            f"skipped: … and {more} more (--report lists them all)", markup=False, style="yellow"
        )
    counts = ", ".join(f"{n} {status}" for status, n in result.summary().items())
    rate = result.units_embedded / max(result.seconds, 1e-9)
    err_console.print(
        f"{counts} · {plural(result.units_embedded, 'unit')} embedded in {result.seconds:.1f} s "
        f"({rate:.1f} units/s)",
        markup=False,
    )
    indexed = sum(result.count(status) for status in ("added", "updated", "unchanged"))
    if not indexed and not result.failed:
        from indexer.loaders import SUPPORTED_EXTENSIONS

        given = ", ".join(str(p) for p in paths)
        why = f"{len(skipped)} skipped" if skipped else "no files in it"
        err_console.print(
            f"nothing to index in {given} ({why}); mmsearch indexes "
            f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}",
            markup=False,
            style="red",
        )


def _write_report(result: IngestReport, report: Path | None) -> None:
    if report is None:
        return
    if str(report) == "-":
        typer.echo(result.to_json())
    else:
        report.write_text(result.to_json() + "\n", encoding="utf-8")


def delete(
    documents: Annotated[
        list[str],
        typer.Argument(
            metavar="DOC",
            help="Document ids, or the start of one (as `mmsearch documents` shows them), or file paths.",
        ),
    ],
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (env MMSEARCH_COLLECTION).")
    ] = None,
) -> None:
    """Remove documents from the index (their units, media and record). The files stay untouched.

    A document is named by its id, by the start of its id when no other id starts the same way, or by
    the path of its file. Exit code 0: all removed; 1: some were not in the index or ambiguous.
    """
    from indexer.ingest import delete_document, document_id
    from indexer.media_store import MediaStore
    from indexer.setup import open_store

    settings = Settings.with_options(collection=collection)
    missing, ambiguous = [], []
    try:
        with open_store(settings) as store:
            media = MediaStore(settings.media_dir)
            ids: list[str] | None = None  # every id, listed once when a prefix needs them
            for item in documents:
                doc_id = item if store.get_document(item) else document_id(Path(item))
                if store.get_document(doc_id) is None:
                    if ids is None:
                        ids = [r.doc_id for r in store.documents()]
                    matches = sorted(i for i in ids if i.startswith(item.lower())) if item else []
                    if len(matches) > 1:
                        ambiguous.append((item, matches))
                        continue
                    if not matches:
                        missing.append(item)
                        continue
                    doc_id = matches[0]
                removed = delete_document(store, media, doc_id)
                if ids is not None and doc_id in ids:
                    ids.remove(doc_id)
                shown = doc_id if doc_id.startswith(item.lower()) else item  # a prefix: the whole id
                err_console.print(f"deleted {shown} ({plural(len(removed), 'unit')})", markup=False)
    except MMSearchError as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_ERROR) from exc
    for item, matches in ambiguous:
        listed = ", ".join(matches[:10]) + (f" and {len(matches) - 10} more" if len(matches) > 10 else "")
        print_error(
            f"{item} is the start of {plural(len(matches), 'document id')}: {listed}; give more of the id"
        )
    if missing:
        err_console.print(f"[red]not in the index:[/red] {escape(', '.join(missing))}")
    if missing or ambiguous:
        raise typer.Exit(code=EXIT_FAILED_FILES)


def documents(
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (env MMSEARCH_COLLECTION).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List the indexed documents: id, kind, units, state, title, source.

    Ids are shown as their shortest start (at least 8 characters) that no other id shares, which
    `mmsearch delete` accepts; --json gives them whole.
    """
    import json

    from indexer.setup import open_store

    settings = Settings.with_options(collection=collection)
    try:
        with open_store(settings) as store:
            records = sorted(store.documents(), key=lambda r: r.source)
    except MMSearchError as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_ERROR) from exc
    if as_json:
        for record in records:
            typer.echo(json.dumps(record.payload()))
        return
    short = short_ids([r.doc_id for r in records])
    table = Table(title=plural(len(records), "document"))
    table.add_column("doc id", no_wrap=True, min_width=max((len(i) for i in short.values()), default=8))
    for column in ("kind", "units", "state"):
        table.add_column(column, no_wrap=True)
    table.add_column("title", overflow="fold")
    table.add_column("source", overflow="fold")
    for r in records:
        state = "complete" if r.complete else "partial"
        table.add_row(
            short[r.doc_id], r.modality, str(r.unit_count), state, escape(r.title), escape(r.source)
        )
    console.print(table)


def short_ids(ids: list[str], minimum: int = 8) -> dict[str, str]:
    """Each id's shortest start, of at least ``minimum`` characters, that no other id starts with."""
    ordered = sorted(set(ids))
    short = {}
    for i, doc_id in enumerate(ordered):
        shared = 0
        for neighbour in ordered[max(i - 1, 0) : i] + ordered[i + 1 : i + 2]:
            common = next(
                (n for n, (a, b) in enumerate(zip(doc_id, neighbour, strict=False)) if a != b),
                min(len(doc_id), len(neighbour)),
            )
            shared = max(shared, common)
        short[doc_id] = doc_id[: max(minimum, shared + 1)]
    return short
