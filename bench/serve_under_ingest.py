"""Search latency while an upload is being indexed, and the upload's progress while searches run.

    .venv/bin/python bench/serve_under_ingest.py --pages 300 --queries 200

Starts `mmsearch serve` as a real process (random-weight tiny Qwen3-VL embedder and reranker, CPU),
indexes a small PDF so searches have something to find, then measures in one run:

1. idle: ``--queries`` searches (``rerank: false``, one client sending ``--rate`` searches a second,
   or back to back with ``--rate 0``): p50/p95;
2. job alone: a ``--pages``-page PDF uploaded with no searches running: pages/s;
3. both: the same PDF under another name uploaded, and searches sent at the same pace until its job
   ends: search p50/p95 and the job's pages/s.

Targets (issue "serving under load"): search p95 during the job <= 2x the idle p95, and the job keeps
>= 50% of its pages/s alone. Results: a JSON under bench/results/ and a Markdown row printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def build_models(work: Path) -> tuple[Path, Path]:
    from core.qwen_vl.replica import build_qwen_tokenizer, save_replica, tiny_config

    tokenizer = build_qwen_tokenizer()
    embedder = save_replica(work / "tiny-embedder", tiny_config(tokenizer), tokenizer, seed=3)
    reranker = save_replica(work / "tiny-reranker", tiny_config(tokenizer), tokenizer, seed=5)
    return embedder, reranker


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def call(self, path: str, body: bytes | None = None, headers: dict | None = None) -> dict:
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.load(response)

    def __init__(self, base: str) -> None:
        self.base = base
        self.stages: list[dict[str, float]] = []  # the server's own timings of each search

    def search(self, n: int) -> float:
        body = json.dumps({"query": f"{WORDS[n % len(WORDS)]} results of unit {n % 37}", "rerank": False})
        started = time.perf_counter()
        answer = self.call("/v1/search", body.encode(), {"content-type": "application/json"})
        elapsed = (time.perf_counter() - started) * 1000
        assert answer["hits"], "a search found nothing"
        # What the request spent outside the stages: waiting for the model thread, HTTP, JSON.
        self.stages.append({**answer["timings_ms"], "outside": elapsed - sum(answer["timings_ms"].values())})
        return elapsed

    def upload(self, path: Path, name: str) -> str:
        boundary = "bench-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + path.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
        return self.call("/v1/documents", body, headers)["job_id"]

    def job(self, job_id: str) -> dict:
        return self.call(f"/v1/jobs/{job_id}")


def wait_job(client: Client, job_id: str) -> tuple[float, dict]:
    """Seconds from 'running' to done, measured by the server's own timestamps."""
    while (job := client.job(job_id))["state"] not in ("done", "failed"):
        time.sleep(0.2)
    assert job["state"] == "done", job
    started = dt.datetime.fromisoformat(job["started_at"])
    finished = dt.datetime.fromisoformat(job["finished_at"])
    return (finished - started).total_seconds(), job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300, help="pages of the uploaded PDF")
    parser.add_argument("--queries", type=int, default=200, help="searches of the idle phase")
    parser.add_argument("--image-max-pixels", type=int, default=256 * 32 * 32, help="page render budget")
    parser.add_argument(
        "--rate", type=float, default=5.0, help="searches per second sent (0: back to back, a stress test)"
    )
    parser.add_argument(
        "--server-threads", type=int, default=0, help="OMP_NUM_THREADS of the server (0: torch's default)"
    )
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()

    from ingest import make_pdf

    work = Path(tempfile.mkdtemp(prefix="mmsearch-serve-bench-"))
    try:
        embedder, reranker = build_models(work)
        seed_pdf = make_pdf(work / "seed.pdf", 20)
        big_pdf = make_pdf(work / "upload.pdf", args.pages)
        port = free_port()
        env = {
            **os.environ,
            "MMSEARCH_DATA_DIR": str(work / "data"),
            "MMSEARCH_PORT": str(port),
            "MMSEARCH_DEVICE": "cpu",
            "MMSEARCH_IMAGE_MAX_PIXELS": str(args.image_max_pixels),
            "HF_HUB_OFFLINE": "1",
        }
        if args.server_threads:
            env["OMP_NUM_THREADS"] = str(args.server_threads)
        command = [sys.executable, "-m", "app", "serve", "--no-ui", "--embedder", str(embedder)]
        command += ["--reranker", str(reranker), "--ingest", str(seed_pdf)]
        log = (work / "server.log").open("w")
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        client = Client(f"http://127.0.0.1:{port}")
        try:
            deadline = time.monotonic() + 600
            while True:
                try:
                    client.call("/health")
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        tail = (work / "server.log").read_text()[-3000:]
                        raise SystemExit(f"the server did not start:\n{tail}") from None
                    time.sleep(0.5)
            for n in range(10):  # warm-up
                client.search(n)
            idle = []
            next_at = time.perf_counter()
            for n in range(args.queries):  # the same pacing as during the job
                time.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += 1 / args.rate if args.rate else 0.0
                idle.append(client.search(n))
            idle_stages, client.stages = client.stages[10:], []

            alone_s, _ = wait_job(client, client.upload(big_pdf, "alone.pdf"))

            job_id = client.upload(big_pdf, "beside.pdf")
            while client.job(job_id)["state"] == "queued":
                time.sleep(0.05)
            busy, n = [], 0
            interval = 1 / args.rate if args.rate else 0.0
            next_at = time.perf_counter()
            while client.job(job_id)["state"] == "running":
                # Paced like users (a search every 1/rate s, sent on time even if the last was slow),
                # or back to back with --rate 0.
                time.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
                busy.append(client.search(n))
                n += 1
            beside_s, _ = wait_job(client, job_id)
            busy_stages = client.stages[-len(busy) :] if busy else []
        finally:
            server.terminate()
            server.wait(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "date": dt.date.today().isoformat(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "pages": args.pages,
        "image_max_pixels": args.image_max_pixels,
        "server_threads": args.server_threads or None,
        "rate_per_s": args.rate or "back to back",
        "idle": {"queries": len(idle), "p50_ms": percentile(idle, 50), "p95_ms": percentile(idle, 95)},
        "during_job": {
            "queries": len(busy),
            "p50_ms": percentile(busy, 50) if busy else None,
            "p95_ms": percentile(busy, 95) if busy else None,
            "mean_ms": statistics.fmean(busy) if busy else None,
        },
        "job_alone": {"seconds": alone_s, "pages_per_s": args.pages / alone_s},
        "job_with_searches": {"seconds": beside_s, "pages_per_s": args.pages / beside_s},
    }
    for phase, stages in (("idle", idle_stages), ("during_job", busy_stages)):
        names = sorted({name for row in stages for name in row})
        result[phase]["stage_p95_ms"] = {
            name: round(percentile([row.get(name, 0.0) for row in stages], 95), 2) for name in names
        }
    result["p95_ratio"] = result["during_job"]["p95_ms"] / result["idle"]["p95_ms"] if busy else None
    result["progress_ratio"] = alone_s / beside_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"serve-under-ingest-{result['date']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        "\n| pages | idle p50 / p95 ms | during job p50 / p95 ms | p95 ratio | job pages/s alone | "
        "with searches | progress kept |\n|---|---|---|---|---|---|---|"
    )
    d = result["during_job"]
    print(
        f"| {args.pages} | {result['idle']['p50_ms']:.1f} / {result['idle']['p95_ms']:.1f} | "
        f"{d['p50_ms']:.1f} / {d['p95_ms']:.1f} | {result['p95_ratio']:.2f}x | "
        f"{result['job_alone']['pages_per_s']:.1f} | {result['job_with_searches']['pages_per_s']:.1f} | "
        f"{result['progress_ratio']:.0%} |"
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
