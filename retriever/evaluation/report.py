"""A sweep's results as JSON, as table rows for the terminal, and as a bar chart (PNG, drawn with PIL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from retriever.evaluation.dataset import Dataset
from retriever.evaluation.runner import ConfigResult

FIRST, RERANKED = (96, 125, 139), (214, 96, 77)


def to_json(results: Sequence[ConfigResult], dataset: Dataset) -> dict[str, Any]:
    """Everything a later comparison needs: the dataset's size, and per configuration both stages."""
    return {
        "dataset": {
            "name": dataset.name,
            "corpus": len(dataset.corpus),
            "queries": len(dataset.queries),
            "judged_queries": sum(1 for q in dataset.queries if q.id in dataset.qrels),
        },
        "configurations": [
            {
                "label": r.config.label,
                "config": asdict(r.config),
                "indexed_units": r.indexed_units,
                "first_stage": {**r.first_stage.values, "queries": r.first_stage.queries},
                "reranked": None
                if r.reranked is None
                else {**r.reranked.values, "queries": r.reranked.queries},
                "latency_ms": r.latency_ms,
            }
            for r in results
        ],
    }


def table_rows(results: Sequence[ConfigResult]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per configuration and stage, metrics then latency."""
    metrics = list(results[0].first_stage.values) if results else []
    header = ["configuration", "stage", *metrics, "ms/query p50"]
    rows = []
    for r in results:
        rows.append(
            [
                r.config.label,
                "first stage",
                *_fmt(r.first_stage.values),
                f"{r.latency_ms['first_stage_p50']:.0f}",
            ]
        )
        if r.reranked is not None:
            rows.append(["", "reranked", *_fmt(r.reranked.values), f"{r.latency_ms['total_p50']:.0f}"])
    return header, rows


def bar_chart(results: Sequence[ConfigResult], path: Path, metric: str = "nDCG@10") -> Path:
    """Grouped bars of ``metric`` per configuration: the first stage, and after reranking."""
    font = ImageFont.load_default()
    bar, gap, left, top, height = 26, 34, 70, 50, 320
    width = left + len(results) * (2 * bar + gap) + 40
    image = Image.new("RGB", (max(width, 420), top + height + 140), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 12), f"{metric} per configuration", fill="black", font=font)
    base = top + height
    for tick in range(0, 11, 2):
        y = base - height * tick / 10
        draw.line([(left - 5, y), (image.width - 20, y)], fill=(225, 225, 225))
        draw.text((left - 35, y - 6), f"{tick / 10:.1f}", fill="black", font=font)
    x = left + gap / 2
    for r in results:
        for offset, (scores, colour) in enumerate(((r.first_stage, FIRST), (r.reranked, RERANKED))):
            if scores is None:
                continue
            value = scores.values[metric]
            x0 = x + offset * bar
            draw.rectangle([x0, base - height * value, x0 + bar - 3, base], fill=colour)
            draw.text((x0, base - height * value - 14), f"{value:.2f}", fill="black", font=font)
        for line_no, part in enumerate(r.config.label.split(", ")):
            draw.text((x, base + 8 + 12 * line_no), part, fill="black", font=font)
        x += 2 * bar + gap
    legend_y = image.height - 30
    for n, (name, colour) in enumerate((("first stage", FIRST), ("reranked", RERANKED))):
        draw.rectangle([left + 130 * n, legend_y, left + 130 * n + 14, legend_y + 14], fill=colour)
        draw.text((left + 130 * n + 20, legend_y + 1), name, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _fmt(values: dict[str, float]) -> list[str]:
    return [f"{v:.3f}" for v in values.values()]
