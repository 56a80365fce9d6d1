"""Image loader: a photo, chart or screenshot is one unit, sized like the reranker sizes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from core.errors import DocumentError, InvalidInputError
from core.media import describe_source, load_image, resize_to_budget
from indexer import ocr
from indexer.loaders.base import LoadOptions
from indexer.units import IMAGE, Unit

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")


def load_image_file(path: Path, options: LoadOptions) -> Iterator[Unit]:
    """Yield the one unit of an image file.

    Decoding goes through :func:`core.media.load_image`: EXIF orientation is applied, transparency
    becomes white, animated GIFs and multi-page TIFFs give their first frame, and the byte and pixel
    limits of ``options.policy`` are checked before any pixel is decoded. The image is then resized
    to the page pixel budget with sides multiples of 32.

    Args:
        path: the image file.
        options: pixel budget and media policy.

    Yields:
        One unit of modality ``"image"``, index 0, titled with the file name without extension; its
        ``text`` and ``words`` are what OCR read in it (unless ``options.ocr`` is ``off``).

    Raises:
        MediaDecodeError: corrupt, truncated or not an image.
        MediaTooLargeError: over the byte or pixel limit.
        MediaNotFoundError: the file does not exist.
        DocumentError: the image is too thin to index (aspect ratio over 200).
    """
    path = Path(path)
    # The byte and pixel limits are checked here, before decoding and so before any OCR.
    decoded = load_image(path, policy=options.policy)
    try:
        image = resize_to_budget(
            decoded, min_pixels=options.image_min_pixels, max_pixels=options.image_max_pixels, factor=32
        )
    except InvalidInputError as exc:
        raise DocumentError(f"{describe_source(path)}: cannot be indexed: {exc}") from exc
    text, words = "", ()
    if options.ocr != "off":
        # The decoded image (sharper than the resized one); ocr.recognize downscales a big one.
        read = ocr.recognize(decoded)
        text, words = read.text, read.words
    del decoded
    yield Unit(index=0, modality=IMAGE, title=path.stem, text=text, image=image, words=words)
