"""Helpers for the API hardening tests: an indexed copy of examples/, a real uvicorn server in a
thread, raw HTTP over a socket, and the process's resident memory read from /proc."""

from __future__ import annotations

import http.client
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def index_examples(root: Path, embedder: Any) -> Path:
    """A data folder under ``root`` with a copy of examples/ indexed by ``embedder`` (small renders)."""
    from indexer.ingest import Ingestor
    from indexer.loaders.base import LoadOptions
    from indexer.media_store import MediaStore
    from indexer.store import VectorStore

    options = LoadOptions(image_max_pixels=48 * 32 * 32, frame_max_pixels=8 * 32 * 32, segment_seconds=2.0)
    corpus = Path(shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("*.py")))
    data = root / "data"
    with VectorStore.open(path=data / "qdrant") as store:
        report = Ingestor(store, MediaStore(data / "media"), embedder, options=options).ingest([corpus])
    assert not report.failed, report
    return data


def build_services(settings: Any, embedder: Any, reranker: Any) -> Any:
    """Loaded ``Services`` over the embedded store of ``settings`` (the caller closes them)."""
    from app.api.services import Services
    from indexer.media_store import MediaStore
    from indexer.store import VectorStore

    settings.store_path.mkdir(parents=True, exist_ok=True)
    store = VectorStore.open(path=settings.store_path, collection=settings.collection)
    media = MediaStore(settings.media_dir)
    return Services(settings=settings, store=store, media=media, embedder=embedder, reranker=reranker)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn_server(app: Any) -> Iterator[int]:
    """Serve ``app`` with a real uvicorn on a free loopback port, in a thread; yields the port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def open_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> socket.socket:
    """Send a request head (and ``body``, possibly only the start of what it announces) on a new
    connection, and return the socket to go on with."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    sock.sendall(head.encode("latin-1") + body)
    return sock


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of the response on ``sock``."""
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closes the connection within ``timeout`` (after its response)."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/status (no psutil)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakRss:
    """Samples this process's RSS every few milliseconds while in use; ``growth`` is the peak minus the
    RSS at entry (a body read whole and freed again shows in the peak, not at the end)."""

    def __init__(self, every_s: float = 0.005) -> None:
        self.every_s = every_s
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value in a Prometheus exposition (0 when absent)."""
    import re

    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name:
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(match[3])
    return 0.0
