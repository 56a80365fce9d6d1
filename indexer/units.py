"""What a loader produces: units, the pieces of a document that are embedded and searched one by one.

A unit is a PDF page, an image, a video segment or a text chunk. Loaders fill in what they read from
the file (pixels, text, position); the ingest pipeline adds what it knows about the file (document
id, source, hash, tags, time) when it writes the unit's payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

# The kinds of unit. A document's modality is the kind of its units.
PAGE, IMAGE, VIDEO, TEXT = "page", "image", "video", "text"
MODALITIES = (PAGE, IMAGE, VIDEO, TEXT)

SNIPPET_CHARS = 300

# A word on a page or picture: its text and box ``(x0, y0, x1, y1)``, normalised to the page or image
# (0..1, origin top left).
Word = tuple[str, float, float, float, float]


@dataclass(frozen=True)
class Unit:
    """One searchable piece of a document.

    Attributes:
        index: 0-based position in the document; with the document's content hash it fixes the point id.
        modality: one of :data:`MODALITIES`.
        title: the document's title (from its metadata or first heading, else the file name).
        text: the page's text layer or the chunk's text; "" when there is none.
        image: the page render or the image, already resized to the reranker's pixel budget.
        frames: a video segment's keyframes, in time order, resized to the video frame budget.
        timestamps: seconds from the start of the video, one per keyframe.
        page: 1-based page number (PDF pages).
        start_s, end_s: the segment's time span in seconds (video).
        char_start, char_end: the chunk's span in the document's text (text chunks).
        words: the page's or image's words in reading order, each ``(text, x0, y0, x1, y1)`` with the
            box normalised to the page or image (0..1, origin top left): from a PDF text layer's
            character boxes, or read by OCR. The media store keeps them beside the picture
            (``words.json``), where search finds the boxes of the words a query matched.
        image_png, thumbnail_jpg: the stored files' bytes, when they were encoded already (a PDF
            page rendered in a worker process of :mod:`indexer.render_pool`); the media store then
            writes them as they are instead of encoding ``image`` again. None: encoded on writing.
    """

    index: int
    modality: str
    title: str
    text: str = ""
    image: Image.Image | None = field(default=None, compare=False, repr=False)
    frames: tuple[Image.Image, ...] = field(default=(), compare=False, repr=False)
    timestamps: tuple[float, ...] = ()
    page: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    char_start: int | None = None
    char_end: int | None = None
    words: tuple[Word, ...] = field(default=(), repr=False)
    image_png: bytes | None = field(default=None, compare=False, repr=False)
    thumbnail_jpg: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r}; expected one of {MODALITIES}")
        if len(self.frames) != len(self.timestamps):
            raise ValueError("a video unit needs one timestamp per frame")

    @property
    def snippet(self) -> str:
        """The first words of the unit's text, on one line, for result lists."""
        flat = " ".join(self.text.split())
        if len(flat) <= SNIPPET_CHARS:
            return flat
        return flat[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"
