"""Tests of core.media.sources against real files and real HTTP: policy, labels and reading bytes."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from PIL import Image

from core.errors import (
    InvalidInputError,
    MediaDecodeError,
    MediaNotFoundError,
    MediaTooLargeError,
    RemoteMediaError,
)
from core.media import (
    DEFAULT_POLICY,
    MediaPolicy,
    describe_source,
    load_image,
    load_video,
    read_source_bytes,
)
from tests.core.conftest import STREAM_TOTAL, _assert_two_tone, _noise, _png, _Server, _two_tone

pytestmark = pytest.mark.usefixtures("_no_proxy")


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


def test_load_image_from_str_path_and_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_png(_two_tone()))
    _assert_two_tone(load_image(str(path)))
    _assert_two_tone(load_image(path))


def test_load_image_from_percent_encoded_file_uri(tmp_path: Path) -> None:
    path = tmp_path / "my image #1.png"
    path.write_bytes(_png(_two_tone()))
    uri = path.as_uri()
    assert "%20" in uri and "%23" in uri
    _assert_two_tone(load_image(uri))


def test_load_image_from_data_uri_and_bytes() -> None:
    data = _png(_two_tone())
    _assert_two_tone(load_image(data))
    _assert_two_tone(load_image("data:image/png;base64," + base64.b64encode(data).decode()))
    # Line-wrapped, unpadded base64 is common in the wild.
    b64 = base64.b64encode(data).decode().rstrip("=")
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    _assert_two_tone(load_image("data:image/png;base64," + wrapped))


def test_load_image_from_http_url(server: _Server) -> None:
    _assert_two_tone(load_image(server.url("/img.png")))


def test_read_source_bytes_gives_the_exact_bytes_for_every_kind(tmp_path: Path, server: _Server) -> None:
    data = server.image
    path = tmp_path / "x.png"
    path.write_bytes(data)
    data_uri = "data:image/png;base64," + base64.b64encode(data).decode()
    for source in (data, str(path), path, path.as_uri(), data_uri, server.url("/img.png")):
        assert read_source_bytes(source) == data, describe_source(source)


# --------------------------------------------------------------------------------------------------
# HTTP failures and policy
# --------------------------------------------------------------------------------------------------


def test_http_404_is_a_remote_error(server: _Server) -> None:
    with pytest.raises(RemoteMediaError, match="404"):
        load_image(server.url("/missing"))


def test_streamed_body_over_the_limit_is_aborted_early(server: _Server) -> None:
    policy = MediaPolicy(max_bytes=100_000)
    with pytest.raises(MediaTooLargeError, match="100000"):
        read_source_bytes(server.url("/stream-big"), policy=policy)
    assert server.stream_done.wait(10), "server never noticed the client hang up"
    # The client hung up long before the server could send everything.
    assert server.stream_sent < STREAM_TOTAL // 2


def test_declared_content_length_over_the_limit_is_refused_up_front(server: _Server) -> None:
    with pytest.raises(MediaTooLargeError, match="1000000000 bytes"):
        read_source_bytes(server.url("/declared-big"), policy=MediaPolicy(max_bytes=10_000))


def test_connection_refused_is_a_remote_error() -> None:
    import socket

    with socket.socket() as s:  # find a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RemoteMediaError, match="cannot fetch"):
        read_source_bytes(f"http://127.0.0.1:{port}/x.png", policy=MediaPolicy(timeout_s=2))


def test_timeout_is_a_remote_error(server: _Server) -> None:
    t0 = time.monotonic()
    with pytest.raises(RemoteMediaError, match="timed out"):
        read_source_bytes(server.url("/slow"), policy=MediaPolicy(timeout_s=0.3))
    assert time.monotonic() - t0 < 1.4


def test_remote_disabled_refuses_without_contacting_the_server(server: _Server) -> None:
    before = len(server.hits)
    with pytest.raises(RemoteMediaError, match="not allowed"):
        load_image(server.url("/img.png"), policy=MediaPolicy(allow_remote=False))
    assert len(server.hits) == before


def test_allowed_hosts_are_exact_and_case_insensitive(server: _Server) -> None:
    before = len(server.hits)
    with pytest.raises(RemoteMediaError, match=r"127\.0\.0\.1"):
        load_image(server.url("/img.png"), policy=MediaPolicy(allowed_hosts=("example.com",)))
    with pytest.raises(RemoteMediaError):
        load_image(server.url("/img.png"), policy=MediaPolicy(allowed_hosts=("127.0.0.10",)))
    assert len(server.hits) == before
    _assert_two_tone(load_image(server.url("/img.png"), policy=MediaPolicy(allowed_hosts=("127.0.0.1",))))
    policy = MediaPolicy(allowed_hosts=("LocalHost",))
    _assert_two_tone(load_image(server.url("/img.png", host="localhost"), policy=policy))


def test_redirects_are_checked_against_allowed_hosts(server: _Server) -> None:
    strict = MediaPolicy(allowed_hosts=("127.0.0.1",))
    with pytest.raises(RemoteMediaError, match="redirected"):
        load_image(server.url("/redirect-localhost"), policy=strict)
    assert "/img.png" not in server.hits[-1:]  # the redirect was never followed
    _assert_two_tone(load_image(server.url("/redirect-localhost")))  # any host allowed: followed


def test_only_http_and_https_schemes() -> None:
    with pytest.raises(RemoteMediaError, match="ftp"):
        load_image("ftp://example.com/a.png")
    for bad in ("http://[::1/a.png", "http:///a.png"):
        with pytest.raises(RemoteMediaError):
            load_image(bad)


def test_allowed_hosts_must_not_be_a_bare_string() -> None:
    with pytest.raises(InvalidInputError):
        MediaPolicy(allowed_hosts="example.com")  # type: ignore[arg-type]


def test_local_files_disabled(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_png(_two_tone()))
    policy = MediaPolicy(allow_local_files=False)
    for source in (str(path), path, path.as_uri(), str(tmp_path / "missing.png")):
        with pytest.raises(InvalidInputError, match="local file paths are not allowed"):
            load_image(source, policy=policy)
    _assert_two_tone(load_image(path.read_bytes(), policy=policy))  # bytes are still fine


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(MediaNotFoundError, match=r"nope\.png") as info:
        load_image(str(missing))
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(MediaNotFoundError, match="not a real source"):
        load_image("not a real source")
    with pytest.raises(MediaNotFoundError, match="not a regular file"):
        load_image(tmp_path)
    with pytest.raises(MediaNotFoundError):
        load_video(str(missing))


def test_wrong_source_type_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        read_source_bytes(Image.new("RGB", (2, 2)))


def test_byte_limits_name_limit_and_size(tmp_path: Path) -> None:
    data = _png(_noise(40, 40))
    path = tmp_path / "big.png"
    path.write_bytes(data)
    policy = MediaPolicy(max_bytes=1000)
    data_uri = "data:image/png;base64," + base64.b64encode(data).decode()
    for source in (path, data):
        with pytest.raises(MediaTooLargeError) as info:
            load_image(source, policy=policy)
        assert str(len(data)) in str(info.value) and "1000 bytes" in str(info.value)
    with pytest.raises(MediaTooLargeError, match="1000 bytes"):
        load_image(data_uri, policy=policy)
    # The override and the per-kind defaults.
    assert read_source_bytes(path, policy=policy, max_bytes=len(data)) == data
    with pytest.raises(MediaTooLargeError):
        read_source_bytes(path, max_bytes=len(data) - 1)
    assert read_source_bytes(path, policy=MediaPolicy(max_bytes=10, max_video_bytes=10**6), what="video")
    with pytest.raises(MediaTooLargeError, match="video"):
        read_source_bytes(path, policy=MediaPolicy(max_bytes=10**6, max_video_bytes=10), what="video")


# --------------------------------------------------------------------------------------------------
# Malformed data URIs
# --------------------------------------------------------------------------------------------------


def test_bad_data_uris_are_decode_errors() -> None:
    with pytest.raises(MediaDecodeError, match="base64"):
        load_image("data:image/png;base64,@@@not*base64@@@")
    with pytest.raises(MediaDecodeError, match="malformed"):
        load_image("data:image/png;base64")


# --------------------------------------------------------------------------------------------------
# Labels and the default policy
# --------------------------------------------------------------------------------------------------


def test_describe_source_labels(tmp_path: Path) -> None:
    assert describe_source(b"12345") == "<bytes 5>"
    assert describe_source("data:image/png;base64,AAAA") == "<data URI>"
    assert describe_source(Image.new("RGB", (640, 480))) == "<PIL image 640x480>"
    assert describe_source(tmp_path / "cat.jpg").endswith("cat.jpg")
    assert describe_source("https://user:secret@example.com/a.png") == "https://example.com/a.png"
    long_url = "https://example.com/" + "x" * 500
    assert len(describe_source(long_url)) <= 120 and describe_source(long_url).startswith("https://example")
    assert describe_source([1, 2, 3]) == "<3 frames>"


def test_default_policy() -> None:
    assert DEFAULT_POLICY.max_bytes == 64 * 2**20 and DEFAULT_POLICY.max_video_bytes == 2**30
    assert DEFAULT_POLICY.max_image_pixels == 64_000_000 and DEFAULT_POLICY.allowed_hosts is None
    assert DEFAULT_POLICY.allow_local_files and DEFAULT_POLICY.allow_remote
    assert MediaPolicy(allowed_hosts=["a.com"]).allowed_hosts == ("a.com",)  # type: ignore[arg-type]
