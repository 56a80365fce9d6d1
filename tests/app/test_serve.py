"""`mmsearch serve --ingest`: the README's main command, run as a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def wait_for(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, server.stdout.read()  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_serve_ingests_the_examples_and_answers_searches(tmp_path, tiny_embedder_dir, tiny_reranker_dir):
    port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "MMSEARCH_DATA_DIR": str(tmp_path / "data"),
        "MMSEARCH_PORT": str(port),
        "MMSEARCH_UI_PORT": str(ui_port),
        "MMSEARCH_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "app", "serve", "--ingest", str(EXAMPLES)]
    command += ["--embedder", str(tiny_embedder_dir), "--reranker", str(tiny_reranker_dir)]
    command += ["--add-reranker", f"second={tiny_reranker_dir}"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/health", server)
        with urllib.request.urlopen(f"{base}/v1/models", timeout=10) as response:
            assert [m["id"] for m in json.load(response)["data"]] == [tiny_reranker_dir.name, "second"]
        request = urllib.request.Request(
            f"{base}/v1/search",
            data=json.dumps({"query": "How much did revenue grow?", "top_n": 3}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        assert len(body["hits"]) == 3 and body["candidates"] == 6  # the 6 units of the 5 example files
        sources = {Path(h["source"]).parent for h in body["hits"]}
        assert sources == {EXAMPLES}
        # The search UI runs beside the API (the README's main command starts both).
        wait_for(f"http://127.0.0.1:{ui_port}/_stcore/health", server, seconds=60)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "indexed: 5 added" in output and f"mmsearch API at {base}" in output and "/v1/search" in output
    assert f"search UI at http://127.0.0.1:{ui_port}" in output
    # The UI process went down with the server: nothing answers on its port any more.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", ui_port)) != 0


def test_a_malformed_reranker_spec_stops_serve_with_the_reason(tmp_path):
    env = {**os.environ, "MMSEARCH_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    env["MMSEARCH_PORT"] = str(free_port())  # the port is checked first: the default one may be busy here
    command = [sys.executable, "-m", "app", "serve", "--no-ui", "--add-reranker", "x=m;colour=red"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "'colour=red' is not backend=B or profile=P" in " ".join(done.stderr.split())


def test_ui_command_runs_the_ui_against_a_given_api(tmp_path):
    ui_port = free_port()
    env = {**os.environ, "MMSEARCH_UI_PORT": str(ui_port)}
    command = [sys.executable, "-m", "app", "ui", "--api-url", "http://127.0.0.1:9"]
    ui = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{ui_port}/_stcore/health", ui, seconds=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=5) as page:
            assert b"<html" in page.read().lower()
    finally:
        ui.terminate()
        output, _ = ui.communicate(timeout=30)
    assert f"mmsearch UI at http://127.0.0.1:{ui_port} (API: http://127.0.0.1:9)" in output
