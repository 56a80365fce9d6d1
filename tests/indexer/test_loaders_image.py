"""The image loader on real files of every supported format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import DocumentError, MediaDecodeError, MediaNotFoundError, MediaTooLargeError
from core.media import MediaPolicy, smart_resize
from indexer.loaders.base import LoadOptions
from indexer.loaders.image import load_image_file
from tests.corpus import PHOTO_STORED_SIZE, Corpus

OPTIONS = LoadOptions(image_min_pixels=4 * 32 * 32, image_max_pixels=64 * 32 * 32)


def _mean(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(image.crop(box), np.float64).reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize(
    "name", ["photo_jpg", "screenshot_png", "chart_webp", "scan_tiff", "diagram_bmp", "anim_gif"]
)
def test_every_format_decodes_to_one_sized_rgb_unit(corpus: Corpus, name: str) -> None:
    path: Path = getattr(corpus, name)
    (unit,) = list(load_image_file(path, OPTIONS))
    assert (unit.index, unit.modality, unit.title, unit.text) == (0, "image", path.stem, "")
    image = unit.image
    assert image.mode == "RGB"
    assert image.width % 32 == 0 and image.height % 32 == 0
    assert OPTIONS.image_min_pixels <= image.width * image.height <= OPTIONS.image_max_pixels
    assert np.asarray(image).std() > 5  # real pixels, not a blank canvas
    with Image.open(path) as original:  # the aspect ratio survives (up to the 32 px snapping)
        width, height = original.size
    if name == "photo_jpg":
        width, height = height, width  # shown upright, see the EXIF test
    assert abs(image.width / image.height - width / height) <= 0.35 * width / height


def test_exif_orientation_is_applied(corpus: Corpus) -> None:
    (unit,) = list(load_image_file(corpus.photo_jpg, OPTIONS))
    image = unit.image
    stored_width, stored_height = PHOTO_STORED_SIZE
    assert stored_width > stored_height and image.height > image.width  # landscape on disk, upright portrait
    w, h = image.size
    top_right, top_left = (
        _mean(image, (w // 2 + 4, 4, w - 4, h // 2 - 4)),
        _mean(image, (4, 4, w // 2 - 4, 20)),
    )
    assert top_right[0] > 200 and top_right[1] < 60 and top_right[2] < 60  # the red quarter moved here
    assert not (top_left[0] > 200 and top_left[1] < 60)


def test_gif_gives_its_first_frame(corpus: Corpus) -> None:
    (unit,) = list(load_image_file(corpus.anim_gif, OPTIONS))
    red, green, blue = np.asarray(unit.image, np.float64).reshape(-1, 3).mean(axis=0)
    assert red > 240 and green < 15 and blue < 15  # frame 0 is red, frame 1 blue


def test_transparency_becomes_white(corpus: Corpus) -> None:
    with Image.open(corpus.screenshot_png) as original:
        assert original.mode == "RGBA"
        scale = original.width
    (unit,) = list(load_image_file(corpus.screenshot_png, OPTIONS))
    corner = 16 * unit.image.width // scale  # the transparent 16 px corner, resized
    assert _mean(unit.image, (0, 0, max(1, corner - 2), max(1, corner - 2))).min() > 200


def test_large_image_is_brought_down_to_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "poster.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (900, 1200, 3), np.uint8)).save(path)
    (unit,) = list(load_image_file(path, OPTIONS))
    assert unit.image.width * unit.image.height <= OPTIONS.image_max_pixels
    # Exactly the size the reranker's preprocessing picks for this image.
    height, width = smart_resize(900, 1200, factor=32, min_pixels=4 * 32 * 32, max_pixels=64 * 32 * 32)
    assert unit.image.size == (width, height)


def test_tiny_image_is_brought_up_to_the_minimum(tmp_path: Path) -> None:
    path = tmp_path / "icon.png"
    Image.new("RGB", (16, 16), (10, 120, 200)).save(path)
    (unit,) = list(load_image_file(path, OPTIONS))
    assert unit.image.width * unit.image.height >= OPTIONS.image_min_pixels


def test_pixel_limit_is_enforced_before_decoding(corpus: Corpus) -> None:
    options = LoadOptions(policy=MediaPolicy(max_image_pixels=5_000))
    with pytest.raises(MediaTooLargeError, match=r"chart\.webp.*200x150 = 30,000 pixels"):
        list(load_image_file(corpus.chart_webp, options))


def test_byte_limit_is_enforced(corpus: Corpus) -> None:
    options = LoadOptions(policy=MediaPolicy(max_bytes=100))
    with pytest.raises(MediaTooLargeError, match=r"diagram\.bmp"):
        list(load_image_file(corpus.diagram_bmp, options))


def test_corrupt_image(corpus: Corpus) -> None:
    with pytest.raises(MediaDecodeError, match=r"corrupt\.png"):
        list(load_image_file(corpus.corrupt_png, OPTIONS))


def test_missing_image(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match=r"gone\.png"):
        list(load_image_file(tmp_path / "gone.png", OPTIONS))


def test_image_too_thin_to_index(tmp_path: Path) -> None:
    path = tmp_path / "ruler.png"
    Image.new("RGB", (2000, 4), "white").save(path)
    with pytest.raises(DocumentError, match=r"ruler\.png: cannot be indexed.*aspect ratio"):
        list(load_image_file(path, OPTIONS))
