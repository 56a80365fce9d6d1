"""The ``mmsearch`` command line."""

from __future__ import annotations

import json
import logging
import os
import re
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli import eval_command, index_commands, search_command, serve_command, store_commands, ui_command
from app.cli.console import console, err_console, plural, print_error, print_model_error
from app.cli.help import HelpCommand, HelpGroup
from core.errors import InvalidInputError, MMSearchError, ModelLoadError
from core.settings import Settings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
READABLE_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES | TEXT_SUFFIXES | PDF_SUFFIXES
# An argument "looks like a file" when it has no spaces and ends in an extension (a dot, a letter,
# then up to seven letters or digits: ".docx", ".mp3"), or holds a path separator.
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")

cli = typer.Typer(
    help="mmsearch: multimodal search with a Qwen3-VL reranker.",
    no_args_is_help=True,
    # Click's own help layout: it rewraps every paragraph to the terminal and never cuts a word, where
    # the rich layout keeps a docstring's line breaks and cuts long names (an env variable) with "…".
    rich_markup_mode=None,
    cls=HelpGroup,
)


@cli.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:
        # transformers draws its own progress bars while loading weights; the CLI shows a spinner.
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        # The hub client logs every retry of an unreachable host; the final error says it all.
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Candidate:
    """One thing to score: its content, the argument it came from (by position), and its page."""

    content: dict[str, Any]
    argument: int
    page: int | None = None


def looks_like_file(item: str) -> bool:
    """Whether a command-line argument is meant as a file name rather than as text."""
    if any(c.isspace() for c in item):
        return Path(item).is_file()
    return bool(_EXTENSION.search(Path(item).name)) or "/" in item or os.sep in item


def parse_pages(text: str) -> list[tuple[int, int | None]]:
    """``"1-3,7,10-"`` -> ``[(1, 3), (7, 7), (10, None)]`` (1-based, inclusive; None: to the end).

    Raises:
        InvalidInputError: anything else, a page 0, or a range that ends before it starts.
    """
    ranges: list[tuple[int, int | None]] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d*))?", part)
        if match is None:
            raise InvalidInputError(f"--pages takes page numbers and ranges like 1-3,7 or 5-, got {text!r}")
        first = int(match.group(1))
        last = first if match.group(2) is None else (int(match.group(2)) if match.group(2) else None)
        if first < 1 or (last is not None and last < first):
            raise InvalidInputError(f"--pages: {part!r} is not a range of pages (they start at 1)")
        ranges.append((first, last))
    return ranges


def _chosen_pages(ranges: list[tuple[int, int | None]] | None, count: int) -> list[int] | None:
    if ranges is None:
        return None
    return sorted({p for first, last in ranges for p in range(first, min(last or count, count) + 1)})


def as_content(item: str) -> dict[str, Any]:
    """A CLI argument as one content: an image, video or text file is read as such; text is text.

    Raises:
        MMSearchError: a file name that does not exist, or a file of a type that cannot be read (a
            PDF has several pages: see :func:`as_candidates`).
    """
    path = Path(item)
    suffix = path.suffix.lower()
    if not looks_like_file(item) and suffix not in READABLE_SUFFIXES:
        return {"text": item}
    if path.is_dir():
        raise MMSearchError(f"{item}: is a folder; name the files in it")
    if not path.is_file():
        raise MMSearchError(f"{item}: no such file (to score it as text, it must not look like a file name)")
    if suffix in IMAGE_SUFFIXES:
        return {"image": str(path)}
    if suffix in VIDEO_SUFFIXES:
        return {"video": str(path)}
    if suffix in TEXT_SUFFIXES:
        return {"text": path.read_text(encoding="utf-8", errors="replace")}
    if suffix in PDF_SUFFIXES:
        raise MMSearchError(f"{item}: a PDF cannot be the query; give one of its pages as an image")
    kind = f"'{suffix}' files" if suffix else "files without an extension"
    raise MMSearchError(
        f"{item}: cannot read {kind}; readable: {', '.join(sorted(READABLE_SUFFIXES))} "
        "(to score the name as text, it must not look like a file name)"
    )


def as_candidates(
    item: str, argument: int, *, pages: list[tuple[int, int | None]] | None, settings: Settings
) -> list[Candidate]:
    """The candidates one DOCUMENT argument gives: one per PDF page (the page's picture and its text
    layer), else one (see :func:`as_content`).

    Raises:
        MMSearchError: a missing or unreadable file, or a PDF with none of the pages asked for.
    """
    if Path(item).suffix.lower() not in PDF_SUFFIXES:
        return [Candidate(as_content(item), argument)]
    if not Path(item).is_file():
        as_content(item)  # raises: no such file
    import pypdfium2

    from indexer.loaders.pdf import load_pdf
    from indexer.setup import load_options

    try:
        with closing(pypdfium2.PdfDocument(item)) as pdf:
            count = len(pdf)
    except pypdfium2.PdfiumError:
        count = 0  # load_pdf says what is wrong with it
    chosen = _chosen_pages(pages, count)
    if count and chosen is not None and not chosen:
        raise MMSearchError(f"{item}: has {plural(count, 'page')}, none of them in --pages")
    found = []
    for unit in load_pdf(Path(item), load_options(settings), pages=chosen):
        content: dict[str, Any] = {"image": unit.image}
        if unit.text.strip():
            content["text"] = unit.text
        found.append(Candidate(content, argument, unit.page))
    return found


def _label(item: str, candidate: Candidate, width: int = 70) -> str:
    content = candidate.content
    if "text" in content and content["text"] == item:
        return item if len(item) <= width else item[: width - 1] + "…"
    if candidate.page is not None:
        return f"pdf: {item} p. {candidate.page}"
    return f"{next(iter(content))}: {item}"


@cli.command(cls=HelpCommand, short_help="Score documents against a query with the reranker.")
def rerank(
    query: Annotated[
        str, typer.Argument(metavar="QUERY", help="Query text, or an image/video file to search with.")
    ],
    documents: Annotated[
        list[str],
        typer.Argument(
            metavar="DOCUMENT",
            help="Documents: PDF (every page, see --pages), image, video or text files, or text.",
        ),
    ],
    query_image: Annotated[
        Path | None, typer.Option("--query-image", help="An image to add to the query.", exists=True)
    ] = None,
    pages: Annotated[
        str | None,
        typer.Option(
            metavar="RANGES", help="Pages of each PDF to score, e.g. 1-3,7 or 5- (default: every page)."
        ),
    ] = None,
    top_n: Annotated[int | None, typer.Option("--top-n", "-n", min=1, help="Show only the best N.")] = None,
    instruction: Annotated[
        str | None, typer.Option(help="Task instruction (default: generic search).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Hub id or local folder (env MMSEARCH_RERANKER_MODEL).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (env MMSEARCH_DEVICE).")] = None,
    dtype: Annotated[
        str | None, typer.Option(help="float32, bfloat16, float16 (env MMSEARCH_DTYPE).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """Score DOCUMENTS against QUERY with the reranker and print them best first.

    A PDF is read page by page: each page is a document of its own (its picture and its text layer).
    An argument that looks like a file name (it has an extension or a path separator) must be a
    file mmsearch reads; anything else is scored as text. Exit code 2 on bad input, with the reason.
    """
    from reranker import reranker_from_settings

    settings = Settings()
    try:
        ranges = parse_pages(pages) if pages is not None else None
        query_content = as_content(query)
        if query_image is not None:
            query_content["image"] = str(query_image)
        with err_console.status("reading the documents…"):
            candidates = [
                c
                for i, item in enumerate(documents)
                for c in as_candidates(item, i, pages=ranges, settings=settings)
            ]
        with err_console.status("loading the reranker…"):
            overrides = {"model_name_or_path": model, "device": device, "dtype": dtype}
            reranker = reranker_from_settings(
                settings, **{k: v for k, v in overrides.items() if v is not None}
            )
        contents = [c.content for c in candidates]
        if not getattr(reranker, "reads_text", True):
            contents = [{k: v for k, v in c.items() if k != "text" or "image" not in c} for c in contents]
        with err_console.status(f"scoring {plural(len(contents), 'document')}…"):
            ranked = reranker.rank(query_content, contents, top_n=top_n, instruction=instruction)
    except ModelLoadError as exc:
        print_model_error("rerank", exc, {"reranker": model or settings.reranker_model})
        raise typer.Exit(code=2) from exc
    except MMSearchError as exc:
        print_error(exc)
        raise typer.Exit(code=2) from exc

    if as_json:
        for rank, hit in enumerate(ranked, 1):
            candidate = candidates[hit.index]
            record = {
                "rank": rank,
                "index": candidate.argument,
                "score": hit.score,
                "document": documents[candidate.argument],
            }
            if candidate.page is not None:
                record["page"] = candidate.page
            typer.echo(json.dumps(record))
        return
    table = Table(title=f"query: {_label(query, Candidate(query_content, -1))}")
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("#", justify="right")
    table.add_column("document")
    for rank, hit in enumerate(ranked, 1):
        candidate = candidates[hit.index]
        item = documents[candidate.argument]
        table.add_row(str(rank), f"{hit.score:.4f}", str(candidate.argument), _label(item, candidate))
    console.print(table)


@cli.command(cls=HelpCommand, short_help="Write a random-weight checkpoint for offline tests.")
def replica(
    path: Annotated[Path, typer.Argument(help="Folder to write the checkpoint to.")],
    size: Annotated[str, typer.Option(help="tiny (seconds on CPU) or 2b (the real architecture).")] = "tiny",
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
    init_range: Annotated[
        float | None, typer.Option(help="Std of the random init; wider spreads scores over (0, 1).")
    ] = None,
) -> None:
    """Write a random-weight Qwen3-VL checkpoint with the real Qwen vocabulary.

    It loads as a reranker or as an embedder (--model, --reranker, --embedder), for offline smoke
    tests and speed benchmarks: its scores are random, its speed is the real model's.
    """
    try:
        from core.qwen_vl.replica import build_qwen_tokenizer, qwen3_vl_2b_config, save_replica, tiny_config
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        print_error(f"{exc}; install the test extra: pip install 'mmsearch[test]'")
        raise typer.Exit(code=2) from exc
    builders = {"tiny": tiny_config, "2b": qwen3_vl_2b_config}
    if size not in builders:
        print_error(f"unknown size {size!r}; use one of {', '.join(builders)}")
        raise typer.Exit(code=2)
    with err_console.status(f"building a random {size} replica…"):
        tokenizer = build_qwen_tokenizer()
        save_replica(path, builders[size](tokenizer), tokenizer, seed=seed, initializer_range=init_range)
    err_console.print(
        f"wrote {path}: use it as a reranker (mmsearch rerank --model {path}, serve --reranker {path}, "
        f"MMSEARCH_RERANKER_MODEL={path}) or as an embedder (ingest/serve/search --embedder {path}, "
        f"MMSEARCH_EMBEDDER_MODEL={path})",
        markup=False,
    )


for name, short_help, function in (
    ("search", "Search the index: recall, then rerank.", search_command.search),
    ("ingest", "Index files and folders into the search store.", index_commands.ingest),
    ("delete", "Remove documents from the index.", index_commands.delete),
    ("documents", "List the indexed documents.", index_commands.documents),
    ("serve", "Run the REST API, with the search UI beside it.", serve_command.serve),
    ("ui", "Run the search UI against a running API.", ui_command.ui),
    ("eval", "Measure retrieval quality (nDCG, Recall, MRR) and speed.", eval_command.evaluate),
):
    cli.command(name, cls=HelpCommand, short_help=short_help)(function)
cli.add_typer(store_commands.store_cli, name="store", short_help="The vector store: info, migrate, push.")


def main() -> None:
    cli()
