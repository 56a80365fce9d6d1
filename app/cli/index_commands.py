"""CLI commands that write or read the index: ``ingest``, ``delete``, ``documents``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.cli.console import console, err_console
from core.errors import MMSearchError
from core.settings import Settings

EXIT_FAILED_FILES = 1
EXIT_ERROR = 2


class BarProgress:
    """Draws the ingest progress: files done, units, units per second, current file."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[units]} units · {task.fields[rate]} units/s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.units = 0
        self.started = time.perf_counter()
        self.task = None

    def __enter__(self) -> BarProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def start(self, total_files: int) -> None:
        self.started = time.perf_counter()
        self.task = self.bar.add_task("ingesting", total=total_files, units=0, rate="0.0")

    def file_started(self, path: Path) -> None:
        self.bar.update(self.task, description=_short(path.name))

    def units_done(self, count: int) -> None:
        self.units += count
        rate = self.units / max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(self.task, units=self.units, rate=f"{rate:.1f}")

    def file_done(self, result) -> None:  # type: ignore[no-untyped-def]
        self.bar.advance(self.task)
        if self.bar.tasks[0].finished:
            self.bar.update(self.task, description="done")
        if result.error:
            self.bar.console.print(f"[red]failed:[/red] {result.error}")


def _short(name: str, width: int = 32) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    tags: Annotated[
        list[str] | None, typer.Option("--tags", "-t", help="Tag every document (repeat or comma-separate).")
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Remove indexed documents under PATHS whose file is gone.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a JSON report to this file ('-' for stdout).")
    ] = None,
    embedder: Annotated[
        str | None, typer.Option(help="Embedding model (env MMSEARCH_EMBEDDER_MODEL).")
    ] = None,
    text_embedder: Annotated[
        str | None, typer.Option(help="Text model for a second vector (env MMSEARCH_TEXT_EMBEDDER_MODEL).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (env MMSEARCH_COLLECTION).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (env MMSEARCH_DEVICE).")] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Index only part I of N of the files (e.g. 2/4), to split a corpus across machines "
            "that write into one Qdrant server."
        ),
    ] = None,
) -> None:
    """Index files into the search store: PDFs, images, videos, text, Markdown and HTML.

    Unchanged files are skipped, changed files replace their old version, and a killed run picks up
    where it stopped when run again. Exit code 0: all files indexed; 1: some files failed (listed);
    2: nothing could run (bad settings, store in use, model not found).
    """
    from indexer.ingest import Shard
    from indexer.setup import build_ingestor, open_store

    try:
        part = Shard.parse(shard) if shard is not None else None
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] --shard: {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc
    settings = Settings.with_options(
        embedder_model=embedder, text_embedder_model=text_embedder, collection=collection, device=device
    )
    tag_list = sorted({t.strip() for item in tags or [] for t in item.split(",") if t.strip()})
    try:
        with open_store(settings) as store:
            with err_console.status("loading the embedder…"):
                ingestor = build_ingestor(settings, store)
            with BarProgress(err_console) as progress:
                result = ingestor.ingest(
                    paths, recursive=recursive, tags=tag_list, prune=prune, progress=progress, shard=part
                )
    except MMSearchError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc

    summary = result.summary()
    rate = result.units_embedded / max(result.seconds, 1e-9)
    err_console.print(
        ", ".join(f"{n} {status}" for status, n in summary.items())
        + f" · {result.units_embedded} units embedded in {result.seconds:.1f} s ({rate:.1f} units/s)"
    )
    if report is not None:
        if str(report) == "-":
            typer.echo(result.to_json())
        else:
            report.write_text(result.to_json() + "\n", encoding="utf-8")
    if result.failed:
        raise typer.Exit(code=EXIT_FAILED_FILES)


def delete(
    documents: Annotated[
        list[str], typer.Argument(help="Document ids (see `mmsearch documents`) or file paths.")
    ],
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (env MMSEARCH_COLLECTION).")
    ] = None,
) -> None:
    """Remove documents from the index (their units, media and record). The files stay untouched."""
    from indexer.ingest import delete_document, document_id
    from indexer.media_store import MediaStore
    from indexer.setup import open_store

    settings = Settings.with_options(collection=collection)
    missing = []
    try:
        with open_store(settings) as store:
            media = MediaStore(settings.media_dir)
            for item in documents:
                doc_id = item if store.get_document(item) else document_id(Path(item))
                if store.get_document(doc_id) is None:
                    missing.append(item)
                    continue
                removed = delete_document(store, media, doc_id)
                err_console.print(f"deleted {item} ({len(removed)} units)")
    except MMSearchError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc
    if missing:
        err_console.print(f"[red]not in the index:[/red] {', '.join(missing)}")
        raise typer.Exit(code=EXIT_FAILED_FILES)


def documents(
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (env MMSEARCH_COLLECTION).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List the indexed documents: id, kind, units, title, source."""
    import json

    from indexer.setup import open_store

    settings = Settings.with_options(collection=collection)
    try:
        with open_store(settings) as store:
            records = sorted(store.documents(), key=lambda r: r.source)
    except MMSearchError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc
    if as_json:
        for record in records:
            typer.echo(json.dumps(record.payload()))
        return
    table = Table(title=f"{len(records)} documents")
    for column in ("doc id", "kind", "units", "state", "title", "source"):
        table.add_column(column)
    for r in records:
        state = "complete" if r.complete else "partial"
        table.add_row(r.doc_id, r.modality, str(r.unit_count), state, r.title, r.source)
    console.print(table)
