"""Upload jobs in a real server process: searched while they run, durable across SIGKILL and SIGTERM.

Each test starts `mmsearch serve` (tiny models, small renders), uploads a PDF of many pages and
watches the server's log for its batches, then kills or stops the process at a chosen moment and
starts a new one on the same data folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from reportlab.lib.pagesizes import A6
from reportlab.pdfgen import canvas

from tests.conftest import free_port

PAGES = 80


def word(page: int) -> str:
    return f"zebrafinch{page:03d}"  # one word per page that no other page holds


@pytest.fixture(scope="module")
def long_pdf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pdf") / "handbook.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A6)
    for page in range(1, PAGES + 1):
        pdf.setFont("Helvetica", 11)
        pdf.drawString(20, 300, f"Chapter {page}")
        pdf.drawString(20, 280, f"The keyword of this page is {word(page)}.")
        pdf.showPage()
    pdf.save()
    return path


class Server:
    """One `mmsearch serve` process; its output is collected line by line in a thread."""

    def __init__(self, data_dir: Path, embedder: Path, reranker: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "MMSEARCH_DATA_DIR": str(data_dir),
            "MMSEARCH_PORT": str(self.port),
            "MMSEARCH_DEVICE": "cpu",
            "MMSEARCH_IMAGE_MAX_PIXELS": str(48 * 32 * 32),  # small renders: the tiny model stays fast
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        }
        command = [sys.executable, "-m", "app", "-v", "serve", "--no-ui"]
        command += ["--embedder", str(embedder), "--reranker", str(reranker)]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_until(lambda: self.get("/health") is not None, 180, "the server to answer")

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.lines.append(line)

    def batches(self) -> int:
        return sum("units written" in line for line in self.lines)

    def wait_until(self, condition, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert self.process.poll() is None, "".join(self.lines[-40:])
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" + "".join(self.lines[-40:])
            time.sleep(0.05)

    def get(self, path: str) -> dict | None:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return json.load(response)
        except (urllib.error.URLError, ConnectionError):
            return None

    def search(self, text: str) -> list[dict]:
        body = json.dumps({"query": text, "rerank": False, "legs": ["bm25"], "top_n": 10}).encode()
        request = urllib.request.Request(
            self.base + "/v1/search", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["hits"]

    def upload(self, path: Path) -> str:
        boundary = "mmsearch-test-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{path.name}"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + path.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            self.base + "/v1/documents",
            data=body,
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 202
            return json.load(response)["job_id"]

    def job(self, job_id: str) -> dict:
        found = self.get(f"/v1/jobs/{job_id}")
        assert found is not None, f"job {job_id} unknown"
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def servers(tmp_path, tiny_embedder_dir, tiny_reranker_dir) -> Iterator:
    started: list[Server] = []

    def start() -> Server:
        server = Server(tmp_path / "data", tiny_embedder_dir, tiny_reranker_dir)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def finish(server: Server, job_id: str) -> dict:
    server.wait_until(lambda: server.job(job_id)["state"] in ("done", "failed"), 300, "the job to finish")
    return server.job(job_id)


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
def test_a_killed_upload_resumes_by_itself_and_is_never_half_served(servers, long_pdf, tmp_path):
    first = servers()
    job_id = first.upload(long_pdf)
    first.wait_until(lambda: first.batches() >= 2, 120, "two batches")
    # Mid-job: the search answers, and the pages written so far are not served (the document is
    # not complete), nor is the job finished yet.
    assert first.search(word(1)) == []
    assert first.job(job_id)["state"] == "running"
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)

    second = servers()  # resumes the job at start-up: no one asks it to
    assert second.job(job_id)["state"] in ("queued", "running", "done")
    job = finish(second, job_id)
    assert job["state"] == "done" and job["files"][0]["status"] == "added", job
    assert job["files"][0]["units"] == PAGES
    for page in (1, PAGES // 2, PAGES):
        hits = second.search(word(page))
        assert hits and hits[0]["page"] == page, (page, hits[:2])
    documents = second.get("/v1/documents")
    assert documents["total"] == 1 and documents["documents"][0]["complete"]
    assert documents["documents"][0]["units"] == PAGES
    assert "resuming ingestion job" in "".join(second.lines)
    assert Path(documents["documents"][0]["source"]).is_file()  # the upload is the document's source


@pytest.mark.slow  # over 20 s: CI runs it after the suite (.ci/run)
def test_sigterm_stops_within_seconds_and_the_job_resumes_at_the_next_start(servers, long_pdf):
    first = servers()
    job_id = first.upload(long_pdf)
    first.wait_until(lambda: first.batches() >= 1, 120, "the first batch")
    stopped = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(timeout=30)
    assert time.monotonic() - stopped < 10, "SIGTERM took more than 10 s"
    written = first.batches()
    assert written * 8 < PAGES, "the job finished before it could be interrupted: make the PDF longer"

    second = servers()
    job = finish(second, job_id)
    assert job["state"] == "done" and job["files"][0]["units"] == PAGES, job
    assert second.search(word(PAGES))[0]["page"] == PAGES
