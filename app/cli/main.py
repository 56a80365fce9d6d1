"""The ``mmsearch`` command line."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli import eval_command, index_commands, serve_command, store_commands, ui_command
from app.cli.console import console, err_console
from core.errors import MMSearchError
from core.settings import Settings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".csv", ".json", ".html", ".htm"}

cli = typer.Typer(help="mmsearch: multimodal search with a Qwen3-VL reranker.", no_args_is_help=True)


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


def as_content(item: str) -> dict[str, Any]:
    """A CLI argument as content: an image, video or text file is read as such; anything else is text."""
    path = Path(item)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES | VIDEO_SUFFIXES | TEXT_SUFFIXES and not path.is_file():
        raise MMSearchError(f"{item}: no such file (to score it as text, it must not look like a file name)")
    if suffix in IMAGE_SUFFIXES:
        return {"image": str(path)}
    if suffix in VIDEO_SUFFIXES:
        return {"video": str(path)}
    if suffix in TEXT_SUFFIXES:
        return {"text": path.read_text(encoding="utf-8", errors="replace")}
    return {"text": item}


def _label(item: str, content: dict[str, Any], width: int = 70) -> str:
    if "text" in content and content["text"] == item:
        return item if len(item) <= width else item[: width - 1] + "…"
    return f"{next(iter(content))}: {item}"


@cli.command()
def rerank(
    query: Annotated[str, typer.Argument(help="Query text, or an image/video file to search with.")],
    documents: Annotated[list[str], typer.Argument(help="Documents: image, video or text files, or text.")],
    query_image: Annotated[
        Path | None, typer.Option("--query-image", help="An image to add to the query.", exists=True)
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Score DOCUMENTS against QUERY with the Qwen3-VL reranker and print them best first."""
    from reranker import reranker_from_settings

    settings = Settings()
    try:
        query_content = as_content(query)
        if query_image is not None:
            query_content["image"] = str(query_image)
        contents = [as_content(d) for d in documents]
        with err_console.status("loading the reranker…"):
            overrides = {"model_name_or_path": model, "device": device, "dtype": dtype}
            reranker = reranker_from_settings(
                settings, **{k: v for k, v in overrides.items() if v is not None}
            )
        with err_console.status(f"scoring {len(contents)} documents…"):
            ranked = reranker.rank(query_content, contents, top_n=top_n, instruction=instruction)
    except MMSearchError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc

    if as_json:
        for rank, hit in enumerate(ranked, 1):
            record = {"rank": rank, "index": hit.index, "score": hit.score, "document": documents[hit.index]}
            typer.echo(json.dumps(record))
        return
    table = Table(title=f"query: {_label(query, query_content)}")
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("#", justify="right")
    table.add_column("document")
    for rank, hit in enumerate(ranked, 1):
        table.add_row(
            str(rank), f"{hit.score:.4f}", str(hit.index), _label(documents[hit.index], contents[hit.index])
        )
    console.print(table)


@cli.command()
def replica(
    path: Annotated[Path, typer.Argument(help="Folder to write the checkpoint to.")],
    size: Annotated[str, typer.Option(help="tiny (seconds on CPU) or 2b (the real architecture).")] = "tiny",
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
    init_range: Annotated[
        float | None, typer.Option(help="Std of the random init; wider spreads scores over (0, 1).")
    ] = None,
) -> None:
    """Write a random-weight Qwen3-VL checkpoint (a reranker or an embedder) with the real Qwen vocabulary.

    For offline smoke tests and speed benchmarks: its scores are random, its speed is the real model's.
    """
    try:
        from core.qwen_vl.replica import build_qwen_tokenizer, qwen3_vl_2b_config, save_replica, tiny_config
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        err_console.print(f"[red]error:[/red] {exc}; install the test extra: pip install 'mmsearch[test]'")
        raise typer.Exit(code=2) from exc
    builders = {"tiny": tiny_config, "2b": qwen3_vl_2b_config}
    if size not in builders:
        err_console.print(f"[red]error:[/red] unknown size {size!r}; use one of {', '.join(builders)}")
        raise typer.Exit(code=2)
    with err_console.status(f"building a random {size} replica…"):
        tokenizer = build_qwen_tokenizer()
        save_replica(path, builders[size](tokenizer), tokenizer, seed=seed, initializer_range=init_range)
    err_console.print(f"wrote {path}: use it with --model {path} (or MMSEARCH_RERANKER_MODEL={path})")


cli.command()(index_commands.ingest)
cli.command()(index_commands.delete)
cli.command()(index_commands.documents)
cli.command()(serve_command.serve)
cli.command()(ui_command.ui)
cli.command("eval")(eval_command.evaluate)
cli.add_typer(store_commands.store_cli, name="store")


def main() -> None:
    cli()
