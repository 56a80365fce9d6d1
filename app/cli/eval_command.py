"""``mmsearch eval``: retrieval quality (and reranking speed) of a configuration, or a sweep of them,
on one or several BEIR datasets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.cli.console import err_console, plural, print_error, print_model_error
from core.errors import MMSearchError, ModelLoadError
from core.settings import Settings

if TYPE_CHECKING:
    from reranker.registry import RerankerSpec
    from retriever.evaluation.runner import Config, Models

# A pipe or a file gets the whole table, not one squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
EXIT_ERROR = 2
CHOICES = {"on": [True], "off": [False], "both": [False, True]}


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        print_error(f"{option} takes positive integers separated by commas, got {text!r}")
        raise typer.Exit(code=EXIT_ERROR)
    return values


def _choice(text: str, option: str) -> list[bool]:
    if text not in CHOICES:
        print_error(f"{option} is on, off or both, got {text!r}")
        raise typer.Exit(code=EXIT_ERROR)
    return CHOICES[text]


def evaluate(
    datasets: Annotated[
        list[str],
        typer.Argument(
            help="BEIR folders (corpus.jsonl, queries.jsonl, qrels/) or hub dataset names; several are "
            "reported side by side."
        ),
    ],
    split: Annotated[str, typer.Option(help="Which qrels/<split>.tsv to score against.")] = "test",
    out: Annotated[
        Path | None, typer.Option(help="Results folder (default: eval-results/<dataset>).")
    ] = None,
    k: Annotated[
        str, typer.Option("--k", help="First-stage candidates; several compare, e.g. 10,50.")
    ] = "50",
    image_tokens: Annotated[
        str | None,
        typer.Option(
            help="Image budgets in vision tokens of 32x32 pixels, e.g. 640,1280 (default: the settings')."
        ),
    ] = None,
    text_vector: Annotated[
        str, typer.Option(help="The second, text-only vector: on, off or both (needs --text-embedder).")
    ] = "off",
    rerank: Annotated[str, typer.Option(help="Rerank the candidates: on, off or both.")] = "both",
    legs: Annotated[
        str | None,
        typer.Option(
            help="Recall legs to compare: alternatives comma-separated, legs of one joined by +, e.g. "
            "content,bm25,content+bm25 (default: MMSEARCH_SEARCH_LEGS)."
        ),
    ] = None,
    fusion: Annotated[
        str | None,
        typer.Option(
            help="Fusion settings to compare, separated by ;, each leg=weight,...,k=N, e.g. "
            "'bm25=1;bm25=2,k=30' (default: MMSEARCH_LEG_WEIGHTS and MMSEARCH_RRF_K)."
        ),
    ] = None,
    max_queries: Annotated[int | None, typer.Option(min=1, help="Only the first N judged queries.")] = None,
    embedder: Annotated[
        str | None, typer.Option(help="Embedding model (env MMSEARCH_EMBEDDER_MODEL).")
    ] = None,
    text_embedder: Annotated[
        str | None, typer.Option(help="Text model for the second vector (env MMSEARCH_TEXT_EMBEDDER_MODEL).")
    ] = None,
    reranker: Annotated[
        list[str] | None,
        typer.Option(
            help="Rerankers to compare, comma-separated or repeated, each [NAME=]MODEL[;backend=B]"
            "[;profile=P] (default: MMSEARCH_RERANKER_MODEL and MMSEARCH_RERANKERS)."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (env MMSEARCH_DEVICE).")] = None,
) -> None:
    """Index each dataset's corpus into its own store, run every query, and report nDCG, Recall and
    MRR of the first stage and after reranking, with latency per query and each reranker's speed.

    Several values of --k, --image-tokens, --text-vector, --legs, --fusion, --rerank and --reranker
    make a sweep: every combination runs in one go (each indexing setting is indexed once, each first
    stage runs once and every reranker scores the same candidates). Writes results.json and
    chart.png to --out and prints a table. Exit code 2 when a dataset or a model cannot be loaded.
    """
    from reranker.registry import parse_specs, specs_from_settings
    from retriever import check_legs
    from retriever.evaluation.dataset import load_dataset
    from retriever.evaluation.report import DatasetResults, bar_chart, table_rows, to_json
    from retriever.evaluation.runner import parse_fusion, run_sweep, sweep

    ks = _ints(k, "--k")
    budgets: list[int | None] = list(_ints(image_tokens, "--image-tokens")) if image_tokens else [None]
    reranking = _choice(rerank, "--rerank")
    settings = Settings.with_options(
        embedder_model=embedder, text_embedder_model=text_embedder, device=device
    )
    try:
        specs = parse_specs(reranker) if reranker else specs_from_settings(settings)
    except MMSearchError as exc:
        print_error(f"--reranker: {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc
    if not any(reranking):
        specs = []
    leg_sets: list[str | None] = [None]
    if legs:
        leg_sets = [part.strip() for part in legs.split(",") if part.strip()]
        try:
            for leg_set in leg_sets:
                check_legs(leg_set.split("+"))
        except MMSearchError as exc:
            print_error(f"--legs: {exc}")
            raise typer.Exit(code=EXIT_ERROR) from exc
    fusions: list[str | None] = (
        [part.strip() for part in fusion.split(";") if part.strip()] if fusion else [None]
    )
    try:
        for spec in fusions:
            parse_fusion(spec, settings)
    except ValueError as exc:
        print_error(f"--fusion: {exc}")
        raise typer.Exit(code=EXIT_ERROR) from exc
    configs = sweep(
        ks,
        budgets,
        _choice(text_vector, "--text-vector"),
        reranking,
        [s.name for s in specs],
        leg_sets,
        fusions,
    )
    if any(c.text_vector for c in configs) and not settings.text_embedder_model:
        print_error("--text-vector on/both needs a text model: --text-embedder M")
        raise typer.Exit(code=EXIT_ERROR)
    runs = []
    try:
        loaded = [
            load_dataset(name, split=split, cache_dir=settings.data_dir / "datasets").limit(max_queries)
            for name in datasets
        ]
        models = _load_models(settings, configs, specs)
        folder = out or Path("eval-results") / "+".join(d.name.replace("/", "__") for d in loaded)
        with err_console.status("evaluating…") as status:
            for n, data in enumerate(loaded):
                work = folder / "work" / f"{n}-{data.name.replace('/', '__')}"  # two "test" folders apart

                def report(message: str, name: str = data.name) -> None:
                    status.update(f"{name}: {message}" if len(loaded) > 1 else message)

                runs.append(
                    DatasetResults(data, run_sweep(data, settings, configs, models, work, progress=report))
                )
    except ModelLoadError as exc:
        names = {"embedder": settings.embedder_model, "text embedder": settings.text_embedder_model}
        print_model_error("eval", exc, names)
        raise typer.Exit(code=EXIT_ERROR) from exc
    except MMSearchError as exc:
        print_error(exc)
        raise typer.Exit(code=EXIT_ERROR) from exc

    header, rows = table_rows(runs)
    if len(runs) == 1:
        data = runs[0].dataset
        items, queries = (
            plural(len(data.corpus), "corpus item"),
            plural(len(data.queries), "query", "queries"),
        )
        title = f"{data.name}: {items}, {queries}"
    else:
        title = f"{len(runs)} datasets: " + ", ".join(run.dataset.name for run in runs)
    table = Table(title=title)
    for name in header:
        table.add_column(name, justify="left" if name in ("dataset", "configuration", "stage") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    folder.mkdir(parents=True, exist_ok=True)
    described = {
        name: {"model": getattr(r, "model_name", ""), "backend": getattr(r, "backend", "")}
        for name, r in models.rerankers.items()
    }
    (folder / "results.json").write_text(
        json.dumps(to_json(runs, described), indent=2) + "\n", encoding="utf-8"
    )
    bar_chart(runs, folder / "chart.png")
    err_console.print(f"results: {folder / 'results.json'} · chart: {folder / 'chart.png'}")


def _load_models(settings: Settings, configs: list[Config], specs: list[RerankerSpec]) -> Models:
    from indexer.embedders import embedder_from_settings, text_embedder_from_settings
    from reranker import rerankers_from_specs
    from retriever.evaluation.runner import Models

    with err_console.status("loading the models…"):
        embedder = embedder_from_settings(settings)
        text = text_embedder_from_settings(settings) if any(c.text_vector for c in configs) else None
        rerankers = rerankers_from_specs(settings, specs) if any(c.rerank for c in configs) else {}
    return Models(embedder, text, rerankers)
