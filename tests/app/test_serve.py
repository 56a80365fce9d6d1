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

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_ingests_the_examples_and_answers_searches(tmp_path, tiny_embedder_dir, tiny_reranker_dir):
    port = free_port()
    env = {
        **os.environ,
        "MMSEARCH_DATA_DIR": str(tmp_path / "data"),
        "MMSEARCH_PORT": str(port),
        "MMSEARCH_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "app", "serve", "--ingest", str(EXAMPLES)]
    command += ["--embedder", str(tiny_embedder_dir), "--reranker", str(tiny_reranker_dir)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
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
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "indexed: 5 added" in output and f"mmsearch API at {base}" in output and "/v1/search" in output
