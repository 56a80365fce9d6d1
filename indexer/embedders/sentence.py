"""Any model sentence-transformers loads: text models (all-MiniLM-L6-v2, e5, bge) and CLIP-style models.

What a model reads comes from sentence-transformers itself (``SentenceTransformer.modalities``): a
text model embeds text; a model that embeds images (CLIP) also embeds videos, as the normalised mean
of their frames' vectors. Videos always take that route, even for a model that reads video natively:
frames are sampled and loaded by :mod:`core.media` under the media policy, like every other medium.

One vector per item, however many parts it has: every part (the item's text, each image, each
video) is embedded on its own, normalised, and the item's vector is the normalised mean of its
parts. A unit from a loader has one part, so its vector is simply that part's; a query with text
and an image lands between the two, which is what a CLIP-style shared space supports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from core.content import Content, parse_content
from core.device import resolve_device, resolve_dtype
from core.errors import InvalidInputError, ModelLoadError, located
from core.media import DEFAULT_POLICY, MediaPolicy, load_image, load_video
from core.settings import Settings
from core.threads import TOKENIZER_LOCK
from indexer.embedders.base import Embedder

logger = logging.getLogger(__name__)

KINDS = ("text", "image", "video")


def _native_modalities(model: Any) -> set[str]:
    """The single modalities the model reads, as sentence-transformers reports them."""
    reported = getattr(model, "modalities", None)
    if reported is not None:
        # Tuples such as ("image", "text") describe combined inputs; we only need the plain kinds.
        return {m for m in reported if isinstance(m, str)}
    # Older sentence-transformers without modality info: only CLIP-style models read images.
    inner = getattr(model[0], "auto_model", None) or getattr(model[0], "model", None)
    return {"text", "image"} if "clip" in type(inner).__name__.lower() else {"text"}


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


class SentenceTransformerEmbedder(Embedder):
    """Embeds content with a sentence-transformers model (local folder or hub id).

    Args:
        model_name_or_path: hub id or local folder ``SentenceTransformer`` can load.
        device: "cpu", "cuda", "cuda:N"; None picks cuda when available.
        dtype: torch dtype or its name; None picks bf16 on cuda (fp16 without bf16), fp32 on cpu.
        batch_size: inputs per forward pass.
        media_policy: size, pixel and source limits for loading images and videos.
        video_fps: frames per second sampled from a video file.
        video_max_frames: most frames a video contributes to its mean.
        trust_remote_code: allow a model's own code (needed by some hub models).

    Attributes:
        token_spans: a method giving each token's char span, or None when the model has no fast
            tokenizer (a chunker then falls back to its own approximation).
        max_tokens: the model's input limit in tokens, or None. A longer document is embedded in
            pieces that fit it, whose vectors are averaged (a query is truncated, as the model does).

    Raises:
        ModelLoadError: the model cannot be loaded, or reads none of text, images and video.
    """

    # Part of the ingest fingerprint: documents longer than the window are embedded in windows
    # (before this, the model truncated them); units embedded the old way are embedded again.
    document_revision = "windows-1"

    def __init__(
        self,
        model_name_or_path: str,
        device: str | Any | None = None,
        dtype: str | Any | None = None,
        *,
        batch_size: int = 32,
        media_policy: MediaPolicy = DEFAULT_POLICY,
        video_fps: float = 1.0,
        video_max_frames: int = 64,
        trust_remote_code: bool = False,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, dtype)
        try:
            self.model = SentenceTransformer(
                str(model_name_or_path),
                device=str(self.device),
                trust_remote_code=trust_remote_code,
                model_kwargs={"dtype": self.dtype},
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"cannot load embedder {model_name_or_path!r}: {exc}\n"
                "Give a sentence-transformers hub id you can reach or a local folder "
                "(MMSEARCH_EMBEDDER_MODEL, MMSEARCH_TEXT_EMBEDDER_MODEL)."
            ) from exc
        self.model.eval()
        native = _native_modalities(self.model)
        kinds = {"text"} & native
        if "image" in native:
            kinds |= {"image", "video"}  # a video is the mean of its frames
        if not kinds:
            raise ModelLoadError(
                f"embedder {model_name_or_path!r} reads {sorted(native)}, none of text, image or video"
            )
        self.name = str(model_name_or_path)
        self.modalities = frozenset(kinds)
        self.batch_size = batch_size
        self.media_policy = media_policy
        self.video_fps = video_fps
        self.video_max_frames = video_max_frames
        self.max_tokens: int | None = self.model.max_seq_length
        tokenizer = getattr(self.model, "tokenizer", None)
        self._tokenizer = tokenizer if getattr(tokenizer, "is_fast", False) else None
        if self._tokenizer is None:
            # Shadows the method: callers ask ``getattr(embedder, "token_spans", None)``.
            self.token_spans = None  # type: ignore[assignment]
        self.dim = self._dimension()
        logger.info(
            "loaded embedder %s on %s (%s, dim %d, reads %s)",
            self.name,
            self.device,
            self.dtype,
            self.dim,
            ", ".join(sorted(self.modalities)),
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SentenceTransformerEmbedder:
        """Build from a :class:`core.settings.Settings`; keyword overrides win over the settings."""
        kwargs: dict[str, Any] = {
            "model_name_or_path": settings.embedder_model,
            "device": settings.device,
            "dtype": settings.dtype,
            "media_policy": settings.media_policy(),
            "video_fps": settings.video_fps,
            "video_max_frames": settings.video_max_frames,
        }
        return cls(**{**kwargs, **overrides})

    def _dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:  # some models only know it after a forward pass
            probe = self._encode_document(["dimension probe"]) if "text" in self.modalities else None
            if probe is None:
                raise ModelLoadError(f"embedder {self.name!r} does not report its embedding size")
            dim = probe.shape[1]
        return int(dim)

    # -- public API ---------------------------------------------------------------------------------

    def embed_documents(self, items: Sequence[Any]) -> np.ndarray:
        """Embed documents (with the model's document prompt, if it has one); float32 (len(items), dim).

        Each item is a :class:`core.content.Content` or anything :func:`core.content.parse_content`
        accepts.

        Raises:
            InvalidInputError: an empty item, a kind the model does not read, a wrong type, or ``items``
                that is not a list.
            MediaError: an image or video that cannot be loaded; the message names the item.
        """
        return self._embed(items, "document", self._encode_document)

    def embed_queries(self, items: Sequence[Any], *, instruction: str | None = None) -> np.ndarray:
        """Embed queries with the model's query prompt, or ``instruction`` prepended to their text instead.

        Raises the same errors as :meth:`embed_documents`.
        """
        if instruction is not None and not isinstance(instruction, str):
            raise InvalidInputError("instruction must be a string")

        def encode(inputs: list[Any]) -> np.ndarray:
            return self._encode(self.model.encode_query, inputs, prompt=instruction or None)

        return self._embed(items, "query", encode)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) character span of every token of ``text`` (special tokens excluded)."""
        with TOKENIZER_LOCK:
            encoding = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(int(start), int(end)) for start, end in encoding["offset_mapping"]]

    # -- internals ----------------------------------------------------------------------------------

    def _encode(self, method: Callable[..., Any], inputs: list[Any], **kwargs: Any) -> np.ndarray:
        with TOKENIZER_LOCK:  # sentence-transformers tokenizes (with padding) inside encode
            vectors = method(
                inputs,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
                **kwargs,
            )
        return _normalise(vectors)

    def _encode_document(self, inputs: list[Any]) -> np.ndarray:
        return self._encode(self.model.encode_document, inputs)

    def _embed(
        self, items: Sequence[Any], role: str, encode: Callable[[list[Any]], np.ndarray]
    ) -> np.ndarray:
        if isinstance(items, (str, bytes, Mapping, Content)) or not isinstance(items, Sequence):
            raise InvalidInputError(f"{role}s must be given as a list")
        contents = [parse_content(item, where=f"{role} {i}") for i, item in enumerate(items)]
        if not contents:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts: list[str] = []
        pictures: list[Any] = []  # images and video frames, embedded together
        # Per item, its parts: ("text", index) or ("pictures", [indices]) whose mean is one part.
        parts: list[list[tuple[str, list[int]]]] = []
        for i, content in enumerate(contents):
            where = f"{role} {i}"
            self._check(content, where)
            own: list[tuple[str, list[int]]] = []
            with located(where):
                for j, source in enumerate(content.videos):
                    with located(f"video {j}"):
                        clip = load_video(
                            source,
                            fps=self.video_fps,
                            max_frames=self.video_max_frames,
                            policy=self.media_policy,
                        )
                    own.append(("pictures", list(range(len(pictures), len(pictures) + len(clip.frames)))))
                    pictures.extend(clip.frames)
                for j, source in enumerate(content.images):
                    with located(f"image {j}"):
                        picture = load_image(source, policy=self.media_policy)
                    own.append(("pictures", [len(pictures)]))
                    pictures.append(picture)
            if content.texts:
                text = "\n".join(content.texts)
                pieces = self._windows(text) if role == "document" else [text]
                own.append(("text", list(range(len(texts), len(texts) + len(pieces)))))
                texts.extend(pieces)
            parts.append(own)
        text_vectors = encode(texts) if texts else None
        picture_vectors = encode(pictures) if pictures else None
        out = np.empty((len(contents), self.dim), dtype=np.float32)
        for i, own in enumerate(parts):
            vectors = [
                _normalise((text_vectors if kind == "text" else picture_vectors)[rows].mean(axis=0))
                for kind, rows in own
            ]
            out[i] = _normalise(np.mean(vectors, axis=0))
        return out

    def _windows(self, text: str) -> list[str]:
        """A document's text in consecutive pieces that each fit the model's window; their vectors'
        mean is the document's. The model would otherwise read only its first ``max_tokens`` tokens:
        a PDF page of 500 tokens would be embedded by its first half."""
        window = (self.max_tokens or 0) - 2  # the model's own start and end markers
        if window < 16 or self._tokenizer is None or len(text) <= window:  # a token is at least a char
            return [text]
        spans = self.token_spans(text)
        if len(spans) <= window:
            return [text]
        starts = [spans[i][0] for i in range(0, len(spans), window)]
        ends = [*starts[1:], len(text)]
        return [text[a:b] for a, b in zip(starts, ends, strict=True) if text[a:b].strip()] or [text]

    def _check(self, content: Content, where: str) -> None:
        if content.is_empty:
            raise InvalidInputError(f"{where} is empty: give it text, an image or a video")
        missing = [kind for kind in content.modalities if kind not in self.modalities]
        if missing:
            raise InvalidInputError(
                f"{where}: the embedder {self.name} reads only {', '.join(sorted(self.modalities))}, "
                f"not {' or '.join(missing)}"
            )
