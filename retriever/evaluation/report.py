"""A run's results (one or several datasets) as JSON, as table rows for the terminal, and as a chart
(PNG, drawn with PIL): quality per configuration, and each reranker's speed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from retriever.evaluation.dataset import Dataset
from retriever.evaluation.runner import ConfigResult

FIRST, SPEED = (96, 125, 139), (112, 160, 96)
PALETTE = ((214, 96, 77), (230, 159, 0), (86, 180, 233), (204, 121, 167), (0, 158, 115), (153, 102, 51))


@dataclass(frozen=True)
class DatasetResults:
    """One dataset's configurations, as :func:`retriever.evaluation.runner.run_sweep` returned them."""

    dataset: Dataset
    results: Sequence[ConfigResult]


def to_json(runs: Sequence[DatasetResults], rerankers: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Everything a later comparison needs: each dataset's size, per configuration both stages, the
    latency, each reranker's speed, and which checkpoint each reranker name stands for."""
    return {
        "rerankers": rerankers,
        "datasets": [
            {
                "name": run.dataset.name,
                "corpus": len(run.dataset.corpus),
                "queries": len(run.dataset.queries),
                "judged_queries": sum(1 for q in run.dataset.queries if q.id in run.dataset.qrels),
                "configurations": [_config_json(r) for r in run.results],
            }
            for run in runs
        ],
    }


def _config_json(r: ConfigResult) -> dict[str, Any]:
    speed = None
    if r.speed is not None:
        speed = {
            "pairs": r.speed.pairs,
            "seconds": r.speed.seconds,
            "pairs_per_s": r.speed.pairs_per_s,
            "ms_per_25_pairs": r.speed.ms_per_25,
        }
    return {
        "label": r.config.label,
        "config": asdict(r.config),
        "indexed_units": r.indexed_units,
        "first_stage": {**r.first_stage.values, "queries": r.first_stage.queries},
        "reranked": None if r.reranked is None else {**r.reranked.values, "queries": r.reranked.queries},
        "latency_ms": r.latency_ms,
        "rerank_speed": speed,
    }


def table_rows(runs: Sequence[DatasetResults]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per dataset and first stage (k, image budget, vectors), a first-stage row, then
    a row per reranker with its quality, latency and speed.

    Configurations with different k have different Recall@k columns; a cell a row lacks is empty.
    """
    metrics: dict[str, None] = {}
    for run in runs:
        for r in run.results:
            metrics.update(dict.fromkeys(r.first_stage.values))
    names = sorted(metrics, key=_metric_order)
    several = len(runs) > 1
    header = [*(["dataset"] if several else []), "configuration", "stage", *names]
    header += ["ms/query p50", "pairs/s", "ms/25 pairs"]
    rows = []
    for run in runs:
        for n, (first, reranked) in enumerate(first_stage_groups(run.results)):
            lead = [run.dataset.name if n == 0 else ""] if several else []
            latency = f"{first.latency_ms['first_stage_p50']:.0f}"
            rows.append(
                [*lead, first.config.search_label, "first stage", *_cells(first.first_stage.values, names)]
            )
            rows[-1] += [latency, "", ""]
            for r in reranked:
                assert r.reranked is not None
                stage = f"reranked: {r.config.reranker}" if r.config.reranker else "reranked"
                speed = r.speed
                rows.append(
                    [
                        *([""] if several else []),
                        "",
                        stage,
                        *_cells(r.reranked.values, names),
                        f"{r.latency_ms['total_p50']:.0f}",
                        f"{speed.pairs_per_s:.1f}" if speed else "",
                        f"{speed.ms_per_25:.0f}" if speed else "",
                    ]
                )
    return header, rows


def first_stage_groups(results: Sequence[ConfigResult]) -> list[tuple[ConfigResult, list[ConfigResult]]]:
    """Configurations that share a first stage (same k, budget, vectors: the same candidates), in order:
    one result for the first stage, and the results that rerank it."""
    groups: dict[str, list[ConfigResult]] = {}
    for r in results:
        groups.setdefault(r.config.search_label, []).append(r)
    return [(same[0], [r for r in same if r.reranked is not None]) for same in groups.values()]


def _metric_order(name: str) -> tuple[int, int]:
    family, _, cut = name.partition("@")
    return ({"nDCG": 0, "Recall": 1, "MRR": 2}.get(family, 3), int(cut) if cut.isdigit() else 0)


def _cells(values: dict[str, float], names: Sequence[str]) -> list[str]:
    return [f"{values[name]:.3f}" if name in values else "" for name in names]


def bar_chart(runs: Sequence[DatasetResults], path: Path, metric: str = "nDCG@10") -> Path:
    """``metric`` per first stage (grouped by dataset): the first stage's bar, then one per reranker;
    below it, each reranker's speed in pairs per second."""
    font = ImageFont.load_default()
    bar, gap, left, top, height = 26, 34, 70, 66, 320
    groups = [(run.dataset.name, first_stage_groups(run.results)) for run in runs]
    names = list(dict.fromkeys(r.config.rerank_label for _, g in groups for _, rr in g for r in rr))
    colours = {name: PALETTE[n % len(PALETTE)] for n, name in enumerate(names)}
    slots = sum((1 + len(rr)) * bar + gap for _, g in groups for _, rr in g) + 40 * len(groups)
    speeds = [(dataset, r) for dataset, g in groups for _, rr in g for r in rr if r.speed is not None]
    speed_top = top + height + 110 + 18 * ((len(names) + 4) // 4)
    # Room for the speed labels (about 70 characters) beside bars of at least 350 pixels.
    width = max(left + slots + 40, 900 if speeds else 560)
    image = Image.new("RGB", (width, speed_top + (40 + 22 * len(speeds) if speeds else 0) + 20), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 12), f"{metric}: first stage and after each reranker", fill="black", font=font)
    base = top + height
    for tick in range(0, 11, 2):
        y = base - height * tick / 10
        draw.line([(left - 5, y), (image.width - 20, y)], fill=(225, 225, 225))
        draw.text((left - 35, y - 6), f"{tick / 10:.1f}", fill="black", font=font)
    x = left + gap / 2
    for dataset, dataset_groups in groups:
        if len(groups) > 1:
            draw.text((x, top - 30), dataset, fill="black", font=font)
        for first, reranked in dataset_groups:
            bars = [(first.first_stage, FIRST)] + [
                (r.reranked, colours[r.config.rerank_label]) for r in reranked
            ]
            for offset, (scores, colour) in enumerate(bars):
                if scores is None or metric not in scores.values:
                    continue
                value = scores.values[metric]
                x0 = x + offset * bar
                draw.rectangle([x0, base - height * value, x0 + bar - 3, base], fill=colour)
                draw.text((x0, base - height * value - 14), f"{value:.2f}", fill="black", font=font)
            for line_no, part in enumerate(first.config.search_label.split(", ")):
                draw.text((x, base + 8 + 12 * line_no), part, fill="black", font=font)
            x += len(bars) * bar + gap
        x += 40  # a wider gap between datasets
    legend = [("first stage", FIRST)] + [(name, colours[name]) for name in names]
    for n, (name, colour) in enumerate(legend):
        lx, ly = left + 200 * (n % 4), base + 60 + 18 * (n // 4)
        draw.rectangle([lx, ly, lx + 14, ly + 14], fill=colour)
        draw.text((lx + 20, ly + 1), name, fill="black", font=font)
    if speeds:
        _speed_bars(draw, font, speeds, colours, (left, speed_top), image.width - left - 480)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _speed_bars(
    draw: Any,
    font: Any,
    speeds: list[tuple[str, ConfigResult]],
    colours: dict[str, tuple[int, int, int]],
    origin: tuple[int, int],
    span: int,
) -> None:
    left, top = origin
    draw.text((left, top), "reranking speed (pairs/s, warm)", fill="black", font=font)
    measured = [(dataset, r.config, r.speed) for dataset, r in speeds if r.speed is not None]
    fastest = max(speed.pairs_per_s for _, _, speed in measured) or 1.0
    for n, (dataset, config, speed) in enumerate(measured):
        y = top + 24 + 22 * n
        length = max(2, span * speed.pairs_per_s / fastest)
        draw.rectangle([left, y, left + length, y + 14], fill=colours.get(config.rerank_label, SPEED))
        text = (
            f"{dataset}: {config.label} · {speed.pairs_per_s:.1f} pairs/s, {speed.ms_per_25:.0f} ms/25 pairs"
        )
        draw.text((left + length + 6, y + 1), text, fill="black", font=font)
