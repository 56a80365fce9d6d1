"""What a user meets first on the command line: PDFs in `rerank`, errors that say what to do (model
hints, busy ports), and help text that reads right at 80 columns. Real processes unless noted."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import typer
from reportlab.pdfgen import canvas
from typer.testing import CliRunner

from tests.conftest import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REPORT = EXAMPLES / "quarterly-report.pdf"  # two pages
SMALL_PAGES = str(48 * 32 * 32)  # a small page render keeps the tiny reranker fast


def run_cli(*args: str, env_extra: dict[str, str] | None = None, cwd: Path | None = None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


# -- rerank: PDFs page by page, and arguments that look like files --------------------------------------


@pytest.fixture(scope="module")
def pdf_ranking(tiny_reranker_dir, tmp_path_factory):
    notes = tmp_path_factory.mktemp("notes") / "notes.txt"
    notes.write_text("Revenue grew by 17 percent.")
    args = ["rerank", "How much did revenue grow?", str(REPORT), str(notes), "The cat sat on the mat."]
    result = run_cli(
        *args,
        "--json",
        "--model",
        str(tiny_reranker_dir),
        env_extra={"MMSEARCH_IMAGE_MAX_PIXELS": SMALL_PAGES},
    )
    return result, notes


def test_rerank_reads_a_pdf_as_its_pages_with_their_text(pdf_ranking, tiny_reranker):
    from core.settings import Settings
    from indexer.loaders.pdf import load_pdf
    from indexer.setup import load_options

    result, _ = pdf_ranking
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((r["index"], r.get("page")) for r in rows) == [(0, 1), (0, 2), (1, None), (2, None)]
    assert all(r["document"] == str(REPORT) for r in rows if r["index"] == 0)
    # Each page was scored as its picture and its text layer: the library gives the same scores.
    settings = Settings(_env_file=None, image_max_pixels=int(SMALL_PAGES))
    pages = list(load_pdf(REPORT, load_options(settings)))
    assert all(p.text.strip() for p in pages)
    expected = tiny_reranker.score(
        "How much did revenue grow?", [{"image": p.image, "text": p.text} for p in pages]
    )
    by_page = {r["page"]: r["score"] for r in rows if r["index"] == 0}
    assert [round(by_page[p], 4) for p in (1, 2)] == [round(s, 4) for s in expected]


def test_rerank_pages_option_picks_pages(tiny_reranker_dir):
    table = run_cli(
        "rerank", "revenue", str(REPORT), "--pages", "2-", "--model", str(tiny_reranker_dir),
        env_extra={"MMSEARCH_IMAGE_MAX_PIXELS": SMALL_PAGES, "COLUMNS": "200"},
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 1 and f"pdf: {REPORT} p. 2" in rows[0]


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("{tmp}/book.epub", "{tmp}/book.epub: cannot read '.epub' files; readable: "),
        ("{tmp}/draft", "{tmp}/draft: cannot read files without an extension"),
        ("scan.pdf", "scan.pdf: no such file"),
        ("minutes.epub", "minutes.epub: no such file"),
        ("drafts/summary", "drafts/summary: no such file"),
        ("{tmp}/", "{tmp}/: is a folder; name the files in it"),
    ],
)
def test_rerank_refuses_file_names_it_cannot_read(tmp_path, argument, message):
    (tmp_path / "book.epub").write_bytes(b"PK\x03\x04")
    (tmp_path / "draft").write_text("a file without an extension")
    # Refused before any model loads: the model named here does not exist.
    result = run_cli("rerank", "q", argument.format(tmp=tmp_path), "--model", str(tmp_path / "no-model"))
    assert result.returncode == 2, result.stderr
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr and "cannot load" not in result.stderr


def test_rerank_refuses_bad_page_ranges(tmp_path):
    for pages, message in (
        ("3-", f"{REPORT}: has 2 pages, none of them in --pages"),
        ("2-1", "--pages: '2-1' is not a range of pages"),
        ("first", "--pages takes page numbers and ranges like 1-3,7 or 5-"),
    ):
        result = run_cli("rerank", "q", str(REPORT), "--pages", pages, "--model", str(tmp_path / "none"))
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_parse_pages_and_what_looks_like_a_file():
    from app.cli.main import looks_like_file, parse_pages

    assert parse_pages("1-3,7, 10-") == [(1, 3), (7, 7), (10, None)]
    assert [looks_like_file(s) for s in ("book.epub", "a/b", "The cat sat on the mat.", "v1.2", "e.g.")] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_load_pdf_renders_only_the_pages_asked_for(tmp_path):
    from indexer.loaders.base import LoadOptions
    from indexer.loaders.pdf import load_pdf

    path = tmp_path / "five.pdf"
    pdf = canvas.Canvas(str(path))
    for number in range(1, 6):
        pdf.drawString(72, 720, f"page {number}")
        pdf.showPage()
    pdf.save()
    units = list(load_pdf(path, LoadOptions(image_max_pixels=16 * 32 * 32), pages=[4, 2, 9]))
    assert [(u.page, u.index, u.text) for u in units] == [(2, 1, "page 2"), (4, 3, "page 4")]


# -- a model that does not load: the hint names the command's own options ------------------------------


def test_rerank_model_hint_names_model_and_replica(tmp_path):
    result = run_cli("rerank", "q", "a document", "--model", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    err = one_line(result.stderr)
    assert f"cannot load reranker '{tmp_path / 'nowhere'}'" in err
    assert "Give --model (or MMSEARCH_RERANKER_MODEL) a hub id you can reach or a local folder." in err
    assert "mmsearch replica models/tiny, then run mmsearch rerank with --model models/tiny" in err
    assert "HF_HUB_OFFLINE=1" not in err  # it is set already
    assert "Traceback" not in result.stderr


def test_ingest_model_hint_names_embedder_and_offers_offline_mode(tmp_path):
    (tmp_path / "notes.txt").write_text("notes")
    env = {"MMSEARCH_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": ""}
    result = run_cli(
        "ingest", str(tmp_path / "notes.txt"), "--embedder", str(tmp_path / "gone"), env_extra=env
    )
    assert result.returncode == 2
    err = one_line(result.stderr)
    assert "Give --embedder (or MMSEARCH_EMBEDDER_MODEL) a hub id" in err
    assert "then run mmsearch ingest with --embedder models/tiny." in err
    assert "Set HF_HUB_OFFLINE=1 to make a missing model fail at once" in err
    assert "--model" not in err


def test_serve_model_hint_names_the_reranker_option(tmp_path, tiny_embedder_dir):
    env = {"MMSEARCH_DATA_DIR": str(tmp_path / "data"), "MMSEARCH_PORT": str(free_port())}
    result = run_cli(
        "serve", "--no-ui", "--embedder", str(tiny_embedder_dir), "--reranker", str(tmp_path / "gone"),
        env_extra=env,
    )  # fmt: skip
    assert result.returncode == 2
    err = one_line(result.stderr)
    assert "Give --reranker (or MMSEARCH_RERANKER_MODEL) a hub id" in err
    assert "then run mmsearch serve with --embedder models/tiny --reranker models/tiny." in err
    assert "--model" not in err and "mmsearch API at" not in err and "Traceback" not in result.stderr


def test_model_hint_picks_the_kind_that_failed():
    from app.cli.console import model_hint
    from core.errors import ModelLoadError

    text = model_hint(
        "ingest",
        ModelLoadError("cannot load embedder 'minilm': no such folder"),
        {"embedder": "tiny", "text embedder": "minilm"},
    )
    assert text.startswith("Give --text-embedder (or MMSEARCH_TEXT_EMBEDDER_MODEL) a hub id")
    added = model_hint(
        "serve",
        ModelLoadError("cannot load reranker 'jinaai/x': offline"),
        {"reranker": "tiny", "added reranker": ["jinaai/x"]},
    )
    assert added.startswith("Give --add-reranker (or MMSEARCH_RERANKERS) a hub id")


# -- busy ports: said plainly, before anything loads ---------------------------------------------------


@pytest.fixture
def busy_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_serve_on_a_busy_port_says_so_before_loading_anything(tmp_path, busy_port):
    env = {"MMSEARCH_DATA_DIR": str(tmp_path / "data")}
    started = time.monotonic()
    # The default models are not available here: the port must be refused before they are tried.
    result = run_cli("serve", "--no-ui", "--port", str(busy_port), env_extra=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: port {busy_port} on 127.0.0.1 is in use; pick another with --port or MMSEARCH_PORT"
    )
    assert result.stdout == "" and time.monotonic() - started < 60
    via_env = run_cli("serve", "--no-ui", env_extra={**env, "MMSEARCH_PORT": str(busy_port)})
    assert via_env.returncode == 2 and f"port {busy_port} on 127.0.0.1 is in use" in via_env.stderr


def test_ui_on_a_busy_port_says_so(busy_port):
    result = run_cli("ui", "--port", str(busy_port), "--api-url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert f"port {busy_port} on 127.0.0.1 is in use; pick another with --port or MMSEARCH_UI_PORT" in (
        result.stderr
    )


def test_port_problem_accepts_a_free_port():
    from app.cli.serve_command import port_problem

    assert port_problem("127.0.0.1", free_port(), "--port") is None


# -- help text at 80 columns -------------------------------------------------------------------------------


def commands() -> list[tuple[list[str], click.Command]]:
    from app.cli.main import cli

    found = []

    def walk(command: click.Command, path: list[str]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(cli), [])
    return found


@pytest.mark.parametrize(
    ("path", "command"), commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_help_reads_whole_at_80_columns(path, command):
    from app.cli.main import cli

    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    text = result.output
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # nothing cut short
    flat = one_line(text)
    # Every paragraph of the docstring, and every option's help, is there with its words whole
    # (a word broken at a hyphen, or a sentence cut at a docstring line break, would not match).
    for paragraph in (command.help or "").split("\n\n"):
        assert one_line(paragraph) in flat, paragraph
    for param in command.params:
        if getattr(param, "help", None):
            assert one_line(param.help) in flat, param.help
    for name, sub in getattr(command, "commands", {}).items():
        assert re.search(rf"^  {name} +{re.escape(one_line(sub.short_help))}", text, re.MULTILINE), name


def test_help_in_a_real_terminal_width():
    result = run_cli("ingest", "--help")
    assert result.returncode == 0
    assert "killed run picks up where it stopped when run again." in one_line(result.stdout)
    assert "[default: no-" not in result.stdout
