"""``mmsearch search``: the two-stage search over the index, from the command line."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from app.cli.console import console, err_console, plural, print_error, print_model_error
from core.errors import InvalidInputError, MMSearchError, ModelLoadError, SchemaMismatchError
from core.settings import Settings

if TYPE_CHECKING:
    from indexer.embedders.base import Embedder
    from indexer.store import VectorStore
    from retriever import Hit

EXIT_NO_HITS = 1
EXIT_ERROR = 2
SNIPPET_CHARS = 80


def search(
    query: Annotated[
        str,
        typer.Argument(metavar="QUERY", help="What to look for (may be left out with --image)."),
    ] = "",
    image: Annotated[
        Path | None,
        typer.Option("--image", exists=True, dir_okay=False, metavar="FILE", help="An image to search with."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", metavar="TAG", help="Only documents with this tag (repeatable: any)."),
    ] = None,
    modality: Annotated[
        list[str] | None,
        typer.Option(
            "--modality", "-m", metavar="KIND", help="Only units of this kind: page, image, video, text."
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(metavar="PATH", help="Only documents from this file or under this folder."),
    ] = None,
    top_n: Annotated[int, typer.Option("--top-n", "-n", min=1, metavar="N", help="Hits to show.")] = 10,
    k: Annotated[
        int,
        typer.Option("--k", "-k", min=1, metavar="K", help="First-stage candidates the reranker rescores."),
    ] = 50,
    no_rerank: Annotated[
        bool, typer.Option("--no-rerank", help="Show the first stage's order (no reranker is loaded).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
    embedder: Annotated[
        str | None,
        typer.Option(metavar="MODEL", help="Embedding model (default: the one that built the collection)."),
    ] = None,
    reranker: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Reranker model (env MMSEARCH_RERANKER_MODEL).")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Qdrant collection (env MMSEARCH_COLLECTION).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (env MMSEARCH_DEVICE).")] = None,
) -> None:
    """Search the index: recall candidates by vector and keyword, rerank them, print the best.

    Searches the local store (or the Qdrant server of MMSEARCH_QDRANT_URL) with the embedder that
    built the collection (--embedder may name it another way, e.g. as a local copy) and prints rank,
    score, document, page or time span, and snippet. Exit code 0: hits found; 1: nothing
    matched; 2: the search could not run (bad input, empty index, model not found).
    """
    from indexer.media_store import MediaStore
    from indexer.setup import open_store
    from indexer.units import MODALITIES
    from retriever import Retriever, SearchFilters

    settings = Settings.with_options(
        embedder_model=embedder, reranker_model=reranker, collection=collection, device=device
    )
    kinds = tuple(dict.fromkeys(modality or ()))
    unknown = [m for m in kinds if m not in MODALITIES]
    if unknown:
        print_error(f"--modality {unknown[0]!r}: use one of {', '.join(MODALITIES)}")
        raise typer.Exit(code=EXIT_ERROR)
    if not query.strip() and image is None:
        print_error("give a QUERY, an --image, or both")
        raise typer.Exit(code=EXIT_ERROR)
    filters = SearchFilters(
        modalities=kinds,
        tags=tuple(sorted({t.strip() for item in tag or [] for t in item.split(",") if t.strip()})),
        source_prefix=str(Path(source).expanduser().resolve()) if source else None,
    )
    content: dict[str, Any] = {"text": query} if query.strip() else {}
    if image is not None:
        content["image"] = str(image)
    names: dict[str, str | None] = {"embedder": settings.embedder_model, "reranker": settings.reranker_model}
    try:
        with open_store(settings) as store:
            if not store.count():
                raise InvalidInputError(
                    f"the index (collection {settings.collection!r}) is empty: index files first, "
                    "e.g. mmsearch ingest PATH"
                )
            with err_console.status("loading the models…"):
                content_model, text_model = _embedders(settings, store)
                names["embedder"] = content_model.name
                rerank_model = None
                if not no_rerank:
                    from reranker import reranker_from_settings

                    rerank_model = reranker_from_settings(settings)
            retriever = Retriever.from_settings(
                settings, store, MediaStore(settings.media_dir), content_model, rerank_model, text_model
            )
            with err_console.status("searching…"):
                result = retriever.search(
                    content, filters, k=max(k, top_n), top_n=top_n, rerank=not no_rerank
                )
    except ModelLoadError as exc:
        print_model_error("search", exc, names)
        raise typer.Exit(code=EXIT_ERROR) from exc
    except MMSearchError as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_ERROR) from exc

    if as_json:
        for hit in result.hits:
            typer.echo(json.dumps(_record(hit)))
    elif result.hits:
        console.print(_table(query or f"image: {image}", result.hits))
    if not result.hits:
        of = plural(result.candidates, "candidate")
        err_console.print(f"nothing matched (of {of}): try other words or fewer filters", markup=False)
        raise typer.Exit(code=EXIT_NO_HITS)
    if not as_json:
        legs = ", ".join(result.legs) or "none"
        ms = " · ".join(f"{stage} {value:.0f} ms" for stage, value in result.timings_ms.items())
        found = f"{plural(len(result.hits), 'hit')} of {plural(result.candidates, 'candidate')}"
        err_console.print(f"{found} · legs: {legs} · {ms}", markup=False)


def _embedders(settings: Settings, store: VectorStore) -> tuple[Embedder, Embedder | None]:
    """The collection's embedders: the ones the settings name (checked against what the collection
    recorded), else the models the collection recorded.

    Raises:
        SchemaMismatchError: the settings name another model than the one that built the collection.
    """
    from indexer.embedders import embedder_from_settings, text_embedder_from_settings
    from indexer.embedders.identity import same_model
    from indexer.store import CONTENT_VECTOR, TEXT_VECTOR

    schema = store.schema() or {}
    chosen = {}
    if CONTENT_VECTOR in schema and "embedder_model" not in settings.model_fields_set:
        chosen["embedder_model"] = schema[CONTENT_VECTOR].model
    if CONTENT_VECTOR in schema and "embedding_dim" not in settings.model_fields_set:
        chosen["embedding_dim"] = schema[CONTENT_VECTOR].dim  # the Matryoshka size it was built with
    if TEXT_VECTOR in schema and not settings.text_embedder_model:
        chosen["text_embedder_model"] = schema[TEXT_VECTOR].model
    if chosen:
        settings = settings.model_copy(update=chosen)
    models = {CONTENT_VECTOR: embedder_from_settings(settings)}
    if TEXT_VECTOR in schema:
        models[TEXT_VECTOR] = text_embedder_from_settings(settings)
    for vector, model in models.items():
        recorded = schema.get(vector)
        if model is None or recorded is None:
            continue
        if not same_model(recorded.model, model.name) or recorded.dim != model.dim:
            raise SchemaMismatchError(
                f"collection {settings.collection!r} was built with the embedder {recorded.model} "
                f"({recorded.dim} dimensions) for its {vector!r} vector, but this search embeds with "
                f"{model.name} ({model.dim}); search with the collection's embedder (leave out "
                "--embedder and MMSEARCH_EMBEDDER_MODEL)"
            )
        model.name = recorded.model
    return models[CONTENT_VECTOR], models.get(TEXT_VECTOR)  # type: ignore[return-value]


def where(hit: Hit) -> str:
    """A hit's place in its document: ``p. 3``, ``0:10–0:20``, or ``""``."""
    if hit.page is not None:
        return f"p. {hit.page}"
    if hit.start_s is not None:
        return f"{_clock(hit.start_s)}–{_clock(hit.end_s or hit.start_s)}"
    return ""


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def _record(hit: Hit) -> dict[str, Any]:
    record = {
        "rank": hit.rank,
        "score": hit.rerank_score if hit.rerank_score is not None else hit.first_stage_score,
    }
    record.update({k: v for k, v in asdict(hit).items() if k not in ("image", "thumbnail", "frames")})
    return record


def _table(title: str, hits: tuple[Hit, ...]) -> Table:
    table = Table(title=f"query: {escape_markup(title)}", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("document", overflow="fold")
    table.add_column("where", no_wrap=True)
    table.add_column("snippet", overflow="fold")
    for hit in hits:
        score = hit.rerank_score if hit.rerank_score is not None else hit.first_stage_score
        document = (
            f"{hit.title}\n{hit.source}" if hit.title and hit.title != Path(hit.source).stem else hit.source
        )
        table.add_row(str(hit.rank), f"{score:.4f}", escape_markup(document), where(hit), marked_snippet(hit))
    return table


def marked_snippet(hit: Hit) -> Text:
    """The hit's snippet (cut to :data:`SNIPPET_CHARS`) as plain text, the query's matches in bold."""
    kept = len(hit.snippet) if len(hit.snippet) <= SNIPPET_CHARS else SNIPPET_CHARS - 1
    text = Text(hit.snippet[:kept] + ("…" if kept < len(hit.snippet) else ""))
    # A Text is never parsed for markup: the document's own brackets stay as they are.
    for span in hit.snippet_spans:
        if span.start < min(span.end, kept):
            text.stylize("bold yellow", span.start, min(span.end, kept))
    return text


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)
