"""All configuration in one pydantic-settings object (environment prefix ``MMSEARCH_``).

Only entry points (CLI, server) build :class:`Settings`; library code receives plain arguments.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.media import MediaPolicy

DEFAULT_RERANKER = "Qwen/Qwen3-VL-Reranker-2B"
DEFAULT_EMBEDDER = "Qwen/Qwen3-VL-Embedding-2B"
# Recall legs by the name of the vector each searches (indexer.store.types names them the same).
LEGS = ("content", "text", "bm25")
# The fusion that measured best on real manuals, as text and as PDF pages (bench/RESULTS.md,
# "First-stage legs"): bm25 weighted 1.5, and k 2 (Qdrant's own default), with which a weak dense
# leg no longer outvotes bm25's first hit as it did at 60. The Retriever's defaults too.
LEG_WEIGHTS = {"content": 1.0, "text": 1.0, "bm25": 1.5}
RRF_K = 2
# KB of vectors below which a search scores a filter's matches directly instead of walking the HNSW
# graph: scanning beat ACORN's walk up to ~12,000 units of 2048 dims at 100k on 2 cores
# (bench/RESULTS.md, "Scan the matches or walk the graph"). Qdrant's default is 10,000. The stores'
# default too.
HNSW_FULL_SCAN_KB = 100_000


class Settings(BaseSettings):
    """mmsearch settings. Every field can be set as ``MMSEARCH_<FIELD>`` in the environment or `.env`."""

    # env_ignore_empty: `MMSEARCH_API_KEY=` (as compose passes an unset variable) means "not set".
    model_config = SettingsConfigDict(
        env_prefix="MMSEARCH_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    data_dir: Path = Field(Path("data"), description="Where the local store, media and caches live.")

    # Reranker
    reranker_model: str = Field(DEFAULT_RERANKER, description="Hub id or local folder of the reranker.")
    reranker_backend: str = Field(
        "auto", description="qwen3-vl, jina-m0, or auto (from the checkpoint's config or name)."
    )
    reranker_profile: str = Field(
        "qwen3-vl-reranker",
        description="How the reranker reads a pair and answers: a built-in profile's name or a JSON file.",
    )
    rerankers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More rerankers to load beside the default, comma-separated "
        "[NAME=]MODEL[;backend=B][;profile=P]; requests pick one by name.",
    )
    device: str | None = Field(None, description="cpu, cuda or cuda:N; empty picks cuda when present.")
    dtype: str | None = Field(None, description="float32, bfloat16 or float16; empty picks by device.")
    attn_implementation: str | None = Field(None, description="sdpa, flash_attention_2, eager; empty: best.")
    rerank_max_length: int = Field(10240, gt=64, description="Token limit of one (query, document) pair.")
    rerank_batch_tokens: int = Field(
        16384, gt=0, description="Padded tokens per forward pass (batch size x longest pair)."
    )
    rerank_vision_cache_mb: float = Field(
        1024,
        ge=0,
        description="MiB on the reranker's device for vision features of pages already seen; 0: off.",
    )
    torch_compile: bool = Field(
        False, description="torch.compile the Qwen3-VL decoder layers (faster on a GPU; slow first calls)."
    )
    vision_varlen: bool = Field(
        False, description="One packed flash-attention call per vision layer (CUDA; pays with torch_compile)."
    )
    image_min_pixels: int = Field(4 * 32 * 32, gt=0)
    image_max_pixels: int = Field(1800 * 32 * 32, gt=0)
    video_fps: float = Field(1.0, gt=0)
    video_max_frames: int = Field(64, ge=2)
    video_min_pixels: int = Field(128 * 32 * 32, gt=0)
    video_max_pixels: int = Field(768 * 32 * 32, gt=0, description="Pixel budget of one video frame.")
    video_total_pixels: int = Field(10 * 768 * 32 * 32, gt=0, description="Pixel budget of all frames.")

    # Embedding (stage one)
    embedder_model: str = Field(DEFAULT_EMBEDDER, description="Hub id or local folder of the embedder.")
    embedder_backend: str = Field(
        "auto", description="qwen3-vl, sentence-transformers, or auto (from the checkpoint's files)."
    )
    embedding_dim: int | None = Field(
        None, gt=0, description="Matryoshka size for Qwen3-VL embeddings; empty keeps the full size."
    )
    embed_batch_tokens: int = Field(16384, gt=0, description="Padded tokens per embedding forward pass.")
    text_embedder_model: str | None = Field(
        None, description="Optional sentence-transformers model for a second, text-only vector per unit."
    )

    # Vector store
    qdrant_url: str | None = Field(None, description="Qdrant server URL; empty uses the embedded store.")
    qdrant_api_key: str | None = Field(None, description="API key of the Qdrant server.")
    qdrant_path: Path | None = Field(None, description="Embedded store folder; empty: <data_dir>/qdrant.")
    collection: str = Field("mmsearch", description="Qdrant collection of the units.")
    qdrant_quantization: str = Field(
        "none",
        pattern=r"^(none|int8|binary)$",
        description="Quantization of a new collection's dense vectors: none, int8 or binary (rescored).",
    )
    hnsw_ef: int = Field(
        256, ge=0, description="Candidates an HNSW search keeps (0: the engine's default, ~100)."
    )
    hnsw_ef_filtered: int = Field(
        # ACORN walks neighbours of neighbours: 128 under it finds what 192 finds without it.
        128,
        ge=0,
        description="Candidates a filtered HNSW search keeps when ACORN is on (0: the engine's default).",
    )
    hnsw_acorn: bool = Field(
        True,
        description="Search selective filters (a modality and a tag, say) with ACORN: recall nearer exact.",
    )
    hnsw_full_scan_kb: int = Field(
        HNSW_FULL_SCAN_KB,
        gt=0,
        description="A new collection scores a filter's matches directly, without the HNSW graph, "
        "while they hold fewer vectors than this many KB (a collection that small: every search).",
    )
    store_vectors_on_disk: bool = Field(
        True,
        description="Embedded store: a new collection keeps its full vectors memory-mapped, not read "
        "into RAM at open (100k units: open 0.52 s instead of 1.38 s, same query times; searches "
        "read them through the page cache). false: in RAM.",
    )
    store_min_free_mb: int = Field(
        256, ge=0, description="Embedded store: free disk space (MiB) below which writes are refused."
    )
    store_optimize_every: int = Field(
        20_000, gt=0, description="Embedded store: points written after which its HNSW index is rebuilt."
    )

    # Recall: the legs fused by reciprocal rank fusion, and their weights
    search_legs: Annotated[list[str], NoDecode] = Field(
        ["content", "text", "bm25"], description="Legs recall fuses, where the collection has them."
    )
    leg_weights: Annotated[dict[str, float], NoDecode] = Field(
        dict(LEG_WEIGHTS), description="RRF weight of each leg (name=weight,...)."
    )
    rrf_k: int = Field(
        RRF_K,
        gt=0,
        description="The constant k of reciprocal rank fusion: a leg's hit at rank r (1 = best) adds "
        "1 / (r / weight + k - 1).",
    )
    # A cluster (server only; used when the collection is created, except the read consistency).
    qdrant_shard_number: int | None = Field(None, gt=0, description="Shards of a new collection.")
    qdrant_replication_factor: int | None = Field(
        None, gt=0, description="Copies of every shard; 2 keeps all data readable with one node down."
    )
    qdrant_write_consistency_factor: int | None = Field(
        None, gt=0, description="Replicas that must confirm a write."
    )
    qdrant_read_consistency: str | None = Field(
        None,
        pattern=r"^(all|majority|quorum|[1-9][0-9]*)$",
        description="Replicas a search reads from: all, majority, quorum, or a number.",
    )

    # Loading documents
    chunk_tokens: int = Field(256, gt=8, description="Longest text chunk, in tokens.")
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by consecutive text chunks.")
    video_segment_seconds: float = Field(10.0, gt=0, description="Length of one indexed video segment.")
    video_keyframe_fps: float = Field(1.0, gt=0, description="Keyframes kept per second of video.")
    video_max_frames_per_segment: int = Field(8, ge=1, description="Hard cap on keyframes per segment.")
    ocr: str = Field(
        "auto",
        pattern=r"^(auto|always|off)$",
        description="OCR (rapidocr): auto reads PDF pages without a usable text layer, images and video "
        "keyframes; always reads every page too; off reads none.",
    )
    office_converter: str = Field(
        "soffice",
        description="LibreOffice's soffice (a name on PATH or a path) that turns office files into PDF "
        "pages; when it is missing they are indexed as text only.",
    )
    office_timeout_s: float = Field(
        120.0, gt=0, description="Seconds one office-to-PDF conversion may take before it is killed."
    )
    render_workers: int | None = Field(
        None,
        ge=0,
        description="Worker processes that render and encode PDF pages ahead of the embedder; 0 renders "
        "them in the ingesting thread; empty: min(4, CPU cores - 1).",
    )
    follow_external_links: bool = Field(
        False,
        description="Ingest files that resolve (through symbolic links) outside the folders given; "
        "off: they are skipped and reported.",
    )

    # Safe media loading
    max_image_bytes: int = Field(64 * 2**20, gt=0)
    max_video_bytes: int = Field(1024 * 2**20, gt=0)
    max_image_pixels: int = Field(64_000_000, gt=0, description="Decoded pixels; guards decompression bombs.")
    max_video_seconds: float = Field(4 * 3600.0, gt=0)
    allow_remote_media: bool = Field(True, description="Fetch http(s) media URLs.")
    remote_media_hosts: list[str] | None = Field(None, description="If set, the only hosts URLs may name.")

    @field_validator("qdrant_quantization", mode="before")
    @classmethod
    def _quantization(cls, value: Any) -> Any:
        # Earlier releases took a boolean (int8 or nothing).
        text = str(value).strip().lower()
        return {"true": "int8", "1": "int8", "yes": "int8", "false": "none", "0": "none", "no": "none"}.get(
            text, text
        )

    @field_validator("search_legs", mode="before")
    @classmethod
    def _split_legs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [part.strip() for part in value.replace("+", ",").split(",") if part.strip()]
        return value

    @field_validator("search_legs")
    @classmethod
    def _known_legs(cls, value: list[str]) -> list[str]:
        _check_legs(value)
        return value

    @field_validator("leg_weights", mode="before")
    @classmethod
    def _parse_weights(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("{"):
                import json

                return json.loads(value)
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError(f"leg weights are written name=weight,...; got {value!r}")
            return {name.strip(): float(weight) for name, weight in pairs}
        return value

    @field_validator("leg_weights")
    @classmethod
    def _known_weights(cls, value: dict[str, float]) -> dict[str, float]:
        _check_legs(value)
        if any(weight < 0 for weight in value.values()):
            raise ValueError("leg weights must not be negative")
        return {**cls.model_fields["leg_weights"].default, **value}

    @field_validator("source_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        # The environment gives one string: a JSON list, or folders separated by commas.
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("rerankers", mode="before")
    @classmethod
    def _split_specs(cls, value: Any) -> Any:
        # The environment gives one string (a JSON list, or specs separated by commas); a command
        # line gives a list whose items may hold several specs each.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                import json

                value = json.loads(value)
            else:
                value = [value]
        if isinstance(value, list | tuple):
            return [part.strip() for item in value for part in str(item).split(",") if part.strip()]
        return value

    @classmethod
    def with_options(cls, **options: Any) -> Settings:
        """Settings from the environment, where every option that is not None wins (command-line flags)."""
        return cls(**{name: value for name, value in options.items() if value is not None})

    @property
    def store_path(self) -> Path:
        """The embedded Qdrant folder."""
        return self.qdrant_path or self.data_dir / "qdrant"

    @property
    def media_dir(self) -> Path:
        """Where page renders, keyframes and thumbnails are kept."""
        return self.data_dir / "media"

    # REST API
    api_key: SecretStr | None = Field(
        None, description="If set, every route but /health needs it (Authorization: Bearer or X-API-Key)."
    )
    host: str = Field("127.0.0.1", description="Address `mmsearch serve` listens on.")
    port: int = Field(8000, gt=0, lt=65536, description="Port `mmsearch serve` listens on.")
    max_upload_bytes: int = Field(256 * 2**20, gt=0, description="Largest upload body (multipart routes).")
    max_json_body_bytes: int = Field(
        8 * 2**20, gt=0, description="Largest body of every other route (JSON): base64 media included."
    )
    body_read_timeout_s: float = Field(
        30.0, gt=0, description="Seconds to wait for the next piece of a request body before a 408."
    )
    api_docs: bool = Field(True, description="Serve /openapi.json, /docs and /redoc (with the API key).")
    source_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders whose files GET /v1/documents/{id}/source may serve, beside the uploads "
        "folder; empty: any indexed file that is still at its recorded (resolved) path.",
    )
    max_query_chars: int = Field(4096, gt=0, description="Longest query or document text in a request.")
    max_rerank_documents: int = Field(1000, gt=0, description="Most documents in one rerank request.")
    max_search_k: int = Field(500, gt=0, description="Most first-stage candidates one search may ask for.")

    # Search UI (Streamlit), a client of the REST API
    ui_api_url: str | None = Field(
        None, description="The REST API the UI talks to; empty: this machine at `host`:`port`."
    )
    ui_host: str = Field("127.0.0.1", description="Address `mmsearch ui` listens on.")
    ui_port: int = Field(8501, gt=0, lt=65536, description="Port `mmsearch ui` listens on.")
    ui_timeout_s: float = Field(120.0, gt=0, description="How long the UI waits for one API answer.")

    def model_options(self) -> dict[str, Any]:
        """Device, dtype and attention kernel, as every Qwen-VL model class takes them."""
        return {"device": self.device, "dtype": self.dtype, "attn_implementation": self.attn_implementation}

    def api_base_url(self) -> str:
        """Where the UI reaches the API: ``ui_api_url``, else this machine's ``host``:``port``."""
        if self.ui_api_url:
            return self.ui_api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def client_media_policy(self) -> MediaPolicy:
        """Limits for media that API clients send: never a local file, URLs only to allowlisted hosts.

        Remote URLs stay off unless ``remote_media_hosts`` names the hosts they may reach, so the
        server cannot be made to fetch internal addresses.
        """
        hosts = tuple(self.remote_media_hosts or ())
        return replace(
            self.media_policy(allow_local_files=False), allow_remote=bool(hosts), allowed_hosts=hosts or None
        )

    def media_policy(self, *, allow_local_files: bool = True) -> MediaPolicy:
        """The media loading limits these settings describe."""
        return MediaPolicy(
            max_bytes=self.max_image_bytes,
            max_video_bytes=self.max_video_bytes,
            max_image_pixels=self.max_image_pixels,
            max_video_seconds=self.max_video_seconds,
            allow_local_files=allow_local_files,
            allow_remote=self.allow_remote_media,
            allowed_hosts=tuple(self.remote_media_hosts) if self.remote_media_hosts else None,
        )


def _check_legs(names: Any) -> None:
    unknown = sorted(set(names) - set(LEGS))
    if unknown:
        raise ValueError(f"unknown leg {', '.join(unknown)}; legs are {', '.join(LEGS)}")
