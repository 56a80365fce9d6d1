"""``mmsearch store ...``: look at the store, migrate an old embedded store, push one to a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.cli.console import console, err_console, plural, print_error
from app.cli.help import HelpCommand, HelpGroup
from core.errors import MMSearchError
from core.settings import Settings

EXIT_ERROR = 2

store_cli = typer.Typer(
    help="The vector store: info, migrate (an earlier embedded store), push (to a Qdrant server).",
    no_args_is_help=True,
    rich_markup_mode=None,  # Click's help layout, as every mmsearch command (see app.cli.main)
    cls=HelpGroup,
)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console,
    )  # fmt: skip


def _fail(exc: Exception) -> typer.Exit:
    print_error(exc)
    return typer.Exit(code=EXIT_ERROR)


@store_cli.command(cls=HelpCommand, short_help="What the store holds, and its index state and disk use.")
def info(
    collection: Annotated[str | None, typer.Option(help="Collection (env MMSEARCH_COLLECTION).")] = None,
) -> None:
    """What the store holds: engine, vectors and legs, units, documents, index state, disk use."""
    from indexer.setup import open_store
    from indexer.store.base import describe

    settings = Settings.with_options(collection=collection)
    try:
        with open_store(settings) as store:
            schema = store.schema()
            rows = [
                ("engine", "Qdrant server " + str(settings.qdrant_url) if store.is_server else "Qdrant Edge"),
                ("collection", store.collection),
                ("vectors", describe(schema) if schema else "(nothing indexed yet)"),
                ("legs", ", ".join(store.legs()) or "-"),
                ("units", str(store.count())),
                ("documents", str(sum(1 for _ in store.documents()))),
            ]
            details = getattr(store, "info", None)
            if details is not None:
                shard = details()
                rows.append(
                    ("indexed vectors", f"{shard['indexed_vectors']} in {shard['segments']} segments")
                )
                size = sum(p.stat().st_size for p in settings.store_path.rglob("*") if p.is_file())
                rows.append(("disk", f"{size / 2**20:.1f} MiB in {settings.store_path}"))
    except MMSearchError as exc:
        raise _fail(exc) from exc
    table = Table(show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@store_cli.command(cls=HelpCommand, short_help="Copy an earlier embedded store into Qdrant Edge.")
def migrate(
    path: Annotated[
        Path | None,
        typer.Option(help="The store folder (default: MMSEARCH_QDRANT_PATH or <data_dir>/qdrant)."),
    ] = None,
    remove_old: Annotated[
        bool, typer.Option("--remove-old", help="Delete the old engine's files once the copy is complete.")
    ] = False,
) -> None:
    """Copy a store of mmsearch's earlier embedded engine into Qdrant Edge, without re-embedding.

    Vectors, payloads and document records are copied as they are; units get their keyword (bm25)
    vector from their text on the way. Stop it at any moment: running it again resumes where it was.
    """
    from indexer.store.transfer import migrate_legacy

    folder = path or Settings().store_path
    try:
        with _progress() as bar:
            tasks: dict[str, int] = {}

            def show(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(f"migrating {name}", total=total)
                bar.update(tasks[name], completed=done)

            report = migrate_legacy(folder, progress=show, remove_old=remove_old)
    except MMSearchError as exc:
        raise _fail(exc) from exc
    for name, units in report.units.items():
        documents = plural(report.documents.get(name, 0), "document")
        err_console.print(f"{name}: {plural(units, 'unit')} and {documents} migrated", markup=False)
    if not remove_old:
        err_console.print(
            f"the old files stay in {folder} (collection/, meta.json); --remove-old deletes them"
        )


@store_cli.command(cls=HelpCommand, short_help="Copy the embedded index into a Qdrant server.")
def push(
    url: Annotated[str, typer.Option(help="The Qdrant server, e.g. http://qdrant:6333.")],
    api_key: Annotated[
        str | None, typer.Option(help="The server's API key (env MMSEARCH_QDRANT_API_KEY).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Local collection (env MMSEARCH_COLLECTION).")
    ] = None,
    to_collection: Annotated[
        str | None, typer.Option(help="Collection on the server (default: the same name).")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Start again from the first unit instead of resuming.")
    ] = False,
    keep_extra: Annotated[
        bool,
        typer.Option(
            "--keep-extra",
            help="Keep the server's units and documents that the embedded index no longer holds.",
        ),
    ] = False,
) -> None:
    """Copy the embedded index into a Qdrant server collection: the way from one machine to a cluster.

    Idempotent and resumable: points keep their ids, and an interrupted push goes on where it stopped.
    The server's collection ends as a mirror: what the embedded index no longer holds (deleted
    documents, older versions of re-indexed ones) is deleted there too, unless --keep-extra.
    Then set MMSEARCH_QDRANT_URL to the server so that every command uses it.
    """
    from indexer.store.edge import EdgeStore
    from indexer.store.transfer import push as push_store

    settings = Settings.with_options(collection=collection)
    try:
        with (
            EdgeStore.open(settings.store_path, collection=settings.collection) as source,
            _progress() as bar,
        ):
            task = bar.add_task(f"pushing {settings.collection} to {url}", total=source.count())
            report = push_store(
                source,
                url,
                api_key=api_key or settings.qdrant_api_key,
                collection=to_collection,
                restart=restart,
                prune=not keep_extra,
                progress=lambda _name, done, _total: bar.update(task, completed=done),
            )
    except MMSearchError as exc:
        raise _fail(exc) from exc
    units = sum(report.units.values())
    docs = sum(report.documents.values())
    resumed = " (resumed)" if report.resumed else ""
    err_console.print(
        f"pushed {plural(units, 'unit')} and {plural(docs, 'document')} to {url}{resumed}", markup=False
    )
    pruned_units, pruned_docs = sum(report.pruned_units.values()), sum(report.pruned_documents.values())
    if pruned_units or pruned_docs:
        err_console.print(
            f"deleted on the server what the embedded index no longer holds: "
            f"{plural(pruned_units, 'unit')}, {plural(pruned_docs, 'document')}",
            markup=False,
        )
