"""Fixtures and file builders shared by the core.media tests: real images, videos and a real HTTP server."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import encode_video

# --------------------------------------------------------------------------------------------------
# Helpers that build real media
# --------------------------------------------------------------------------------------------------


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _two_tone(width: int = 30, height: int = 20) -> Image.Image:
    """Left half red, right half blue: shows orientation and that pixels are really decoded."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = (255, 0, 0)
    arr[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _frame_color(i: int) -> tuple[int, int, int]:
    """Colors 50 apart per channel, so lossy coding cannot make one frame look like another."""
    return ((i % 6) * 50, (i // 6) * 50, 0)


def _write_video(
    path: Path, n_frames: int, rate: int = 10, fmt: str | None = None, audio_seconds: int = 0
) -> Path:
    import av  # lazy: the video_dir fixture skips when PyAV is missing

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    frames = [np.full((48, 64, 3), _frame_color(i), np.uint8) for i in range(n_frames)]
    return encode_video(path, frames, fps=rate, codec=codec, fmt=fmt, audio_seconds=audio_seconds)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    _write_video(d / "clip.mp4", 30)  # 3 s at 10 fps, frame i has _frame_color(i)
    _write_video(d / "clip.mkv", 30)  # no frame count in the headers, only a duration
    _write_video(d / "clip.h264", 30, fmt="h264")  # raw stream: neither count nor duration
    _write_video(d / "audio5s.mkv", 30, audio_seconds=5)  # container says 5 s, the video lasts 3 s
    _write_video(d / "one.mp4", 1)
    _write_video(d / "three.mp4", 3)
    return d


# --------------------------------------------------------------------------------------------------
# A real HTTP server
# --------------------------------------------------------------------------------------------------

STREAM_TOTAL = 64 * 2**20


class _Server:
    def __init__(self) -> None:
        self.image = _png(_two_tone())
        self.video = b""
        self.hits: list[str] = []
        self.stream_sent = 0
        self.stream_done = threading.Event()
        self.port = 0

    def url(self, route: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{route}"


def _make_handler(state: _Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _send(self, body: bytes, ctype: str = "application/octet-stream") -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client may have given up (timeout test)
                self.wfile.write(body)

        def do_GET(self) -> None:
            state.hits.append(self.path)
            if self.path == "/img.png":
                self._send(state.image, "image/png")
            elif self.path == "/clip.mp4":
                self._send(state.video, "video/mp4")
            elif self.path == "/stream-big":
                # No Content-Length: the client only learns the size by reading.
                self.send_response(200)
                self.end_headers()
                chunk = b"\x00" * 65536
                try:
                    while state.stream_sent < STREAM_TOTAL:
                        self.wfile.write(chunk)
                        state.stream_sent += len(chunk)
                except OSError:
                    pass
                finally:
                    state.stream_done.set()
            elif self.path == "/declared-big":
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                self.wfile.write(b"\x00" * 1000)
            elif self.path == "/redirect-localhost":
                self.send_response(302)
                self.send_header("Location", state.url("/img.png", host="localhost"))
                self.end_headers()
            elif self.path == "/slow":
                time.sleep(1.5)
                self._send(state.image)
            else:
                self.send_error(404, "Not Found")

    return Handler


@pytest.fixture(scope="module")
def server(video_dir: Path):
    state = _Server()
    state.video = (video_dir / "clip.mp4").read_bytes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not autouse: the media test modules opt in through ``pytestmark``, other tests here are unaffected.
    # A proxy from the environment would intercept requests meant for the local test server.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _assert_two_tone(img: Image.Image, size: tuple[int, int] = (30, 20)) -> None:
    assert img.mode == "RGB"
    assert img.size == size
    assert img.getpixel((2, 10)) == (255, 0, 0)
    assert img.getpixel((27, 10)) == (0, 0, 255)
