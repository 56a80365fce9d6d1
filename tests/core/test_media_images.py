"""Tests of core.media.images against real files: decoding, normalisation and resizing."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InvalidInputError, MediaDecodeError, MediaTooLargeError
from core.media import MediaPolicy, load_image, resize_to_budget, smart_resize
from tests.core.conftest import _assert_two_tone, _noise, _png, _two_tone

pytestmark = pytest.mark.usefixtures("_no_proxy")


# --------------------------------------------------------------------------------------------------
# Helpers that build real images
# --------------------------------------------------------------------------------------------------


def _jpeg(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of any size that is only a few KiB on disk."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------------
# Loading images
# --------------------------------------------------------------------------------------------------


def test_load_image_from_pil_copies_and_never_mutates() -> None:
    src = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    out = load_image(src)
    assert out is not src
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)
    assert src.mode == "RGBA" and src.getpixel((0, 0)) == (255, 0, 0, 0)
    rgb = Image.new("RGB", (4, 4), (1, 2, 3))
    out = load_image(rgb)
    assert out is not rgb
    out.putpixel((0, 0), (9, 9, 9))
    assert rgb.getpixel((0, 0)) == (1, 2, 3)


def test_returned_image_is_detached_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_png(_two_tone()))
    img = load_image(path)
    path.unlink()
    _assert_two_tone(img)


# --------------------------------------------------------------------------------------------------
# Decoding failures and limits
# --------------------------------------------------------------------------------------------------


def test_corrupt_bytes_name_the_source() -> None:
    with pytest.raises(MediaDecodeError, match=r"<bytes 12>"):
        load_image(b"not an image")


@pytest.mark.parametrize("encode", [_png, _jpeg], ids=["png", "jpeg"])
def test_truncated_image_is_a_decode_error(tmp_path: Path, encode) -> None:
    data = encode(_noise(200, 200))
    path = tmp_path / "cut.img"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaDecodeError, match=r"cut\.img"):
        load_image(path)


def test_pixel_limit_is_checked_from_the_header() -> None:
    # 81 Mpx: under PIL's own warning threshold, over the default policy; a few KiB on disk.
    data = _bomb_png(9000, 9000)
    assert len(data) < 200_000
    max_before = Image.MAX_IMAGE_PIXELS
    t0 = time.monotonic()
    with pytest.raises(MediaTooLargeError, match="9000x9000"):
        load_image(data)
    assert time.monotonic() - t0 < 1.0  # refused from the header, not after decoding 81 Mpx
    assert max_before == Image.MAX_IMAGE_PIXELS  # no global state was changed


def test_pil_decompression_bomb_error_becomes_too_large() -> None:
    # 400 Mpx: PIL itself refuses this in Image.open, before our own check can run.
    with pytest.raises(MediaTooLargeError):
        load_image(_bomb_png(20000, 20000), policy=MediaPolicy(max_image_pixels=10**9))


def test_low_pixel_limit_in_policy() -> None:
    data = _png(_noise(100, 100))
    with pytest.raises(MediaTooLargeError, match="100x100"):
        load_image(data, policy=MediaPolicy(max_image_pixels=5000))
    with pytest.raises(MediaTooLargeError):
        load_image(_noise(100, 100), policy=MediaPolicy(max_image_pixels=5000))
    assert load_image(data, policy=MediaPolicy(max_image_pixels=10_000)).size == (100, 100)


# --------------------------------------------------------------------------------------------------
# Image normalisation
# --------------------------------------------------------------------------------------------------


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img = load_image(_jpeg(_two_tone(40, 20), exif=exif, quality=95))
    assert img.size == (20, 40)
    top, bottom = np.asarray(img)[5, 10], np.asarray(img)[35, 10]
    assert top[0] > 200 and top[2] < 50  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 50


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (4, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    out = load_image(_png(rgba))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (255, 0, 0)
    assert all(120 <= c <= 135 for c in out.getpixel((2, 0)))

    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (0, 255))
    out = load_image(_png(la))
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (0, 0, 0)

    pal = Image.new("P", (2, 1), 0)
    pal.putpalette([0, 0, 0, 0, 255, 0])
    pal.putpixel((1, 0), 1)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)  # palette index 0 (black) is transparent
    out = load_image(buf.getvalue())
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (0, 255, 0)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(buf.getvalue())) as check:
        assert check.n_frames == 3
    out = load_image(buf.getvalue())
    assert out.mode == "RGB" and out.getpixel((4, 4)) == (255, 0, 0)


def test_16bit_greyscale_is_scaled_not_clipped() -> None:
    arr = np.array([[0, 32896, 65535]], dtype=np.uint16)
    data = _png(Image.fromarray(arr))
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode.startswith("I")  # really a 16-bit file
    out = load_image(data)
    assert [out.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_float_image_is_scaled() -> None:
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert img.mode == "F"
    out = load_image(img)
    assert [out.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


# --------------------------------------------------------------------------------------------------
# smart_resize / resize_to_budget: parity with qwen-vl-utils
# --------------------------------------------------------------------------------------------------


def test_smart_resize_matches_qwen_vl_utils() -> None:
    from qwen_vl_utils import vision_process as vp

    rng = random.Random(1234)
    budgets = [(4 * 32 * 32, 16384 * 32 * 32), (256 * 28 * 28, 1280 * 28 * 28), (3136, 12845056), (1, 1024)]
    compared = raised = clamped = 0
    for case in range(800):
        factor = rng.choice([14, 16, 28, 32])
        min_px, max_px = rng.choice(budgets)
        if case % 4 == 0:  # tiny sizes
            h, w = rng.randint(1, 64), rng.randint(1, 64)
        else:  # log-uniform up to huge
            h, w = (int(10 ** rng.uniform(0, 4.7)) for _ in range(2))
        try:
            expected = vp.smart_resize(h, w, factor, min_pixels=min_px, max_pixels=max_px)
        except ValueError:
            with pytest.raises(InvalidInputError, match="aspect ratio"):
                smart_resize(h, w, factor=factor, min_pixels=min_px, max_pixels=max_px)
            raised += 1
            continue
        got = smart_resize(h, w, factor=factor, min_pixels=min_px, max_pixels=max_px)
        if 0 in expected:  # the reference's degenerate answer; we never go below one factor
            assert got == tuple(v if v else factor for v in expected), (h, w, factor, min_px, max_px)
            clamped += 1
        else:
            assert got == expected, (h, w, factor, min_px, max_px)
            compared += 1
    # The sample really covers exact matches, the aspect-ratio error and the degenerate case.
    assert compared > 500 and raised > 50 and clamped > 0


def test_smart_resize_examples_and_errors() -> None:
    budget = {"min_pixels": 4 * 32 * 32, "max_pixels": 1024 * 32 * 32}
    assert smart_resize(480, 640, **budget) == (480, 640)
    assert smart_resize(1000, 1000, **budget) == (992, 992)  # round to nearest multiple
    assert smart_resize(4000, 3000, **budget) == (1152, 864)  # over budget: floor
    assert smart_resize(10, 10, **budget) == (64, 64)  # under budget: ceil
    with pytest.raises(InvalidInputError, match="aspect ratio"):
        smart_resize(10, 2010, **budget)
    with pytest.raises(InvalidInputError, match="min_pixels"):
        smart_resize(100, 100, min_pixels=10, max_pixels=5)
    with pytest.raises(InvalidInputError):
        smart_resize(0, 100, **budget)
    # Thin image with a tiny budget: the reference returns a 0 side; we keep one factor.
    assert smart_resize(100, 1000, factor=32, min_pixels=1, max_pixels=4096)[0] == 32


def test_resize_to_budget_matches_qwen_fetch_image() -> None:
    from qwen_vl_utils import vision_process as vp

    cases = [
        ((37, 501), 4 * 32 * 32, 16 * 32 * 32),  # over budget: shrink
        ((650, 470), 4 * 32 * 32, 1024 * 32 * 32),  # round to multiples
        ((20, 30), 64 * 32 * 32, 1024 * 32 * 32),  # under budget: grow
        ((1000, 7), 1 * 32 * 32, 64 * 32 * 32),  # thin
    ]
    for i, ((w, h), min_px, max_px) in enumerate(cases):
        img = _noise(w, h, seed=i)
        ours = resize_to_budget(img, min_pixels=min_px, max_pixels=max_px)
        ref = vp.fetch_image({"image": img, "min_pixels": min_px, "max_pixels": max_px}, image_patch_size=16)
        assert ours.size == ref.size and ours.size != img.size
        assert np.array_equal(np.asarray(ours), np.asarray(ref)), (w, h)


def test_resize_to_budget_keeps_an_image_already_at_size() -> None:
    img = _noise(64, 96)
    assert resize_to_budget(img, min_pixels=32 * 32, max_pixels=10**6) is img
