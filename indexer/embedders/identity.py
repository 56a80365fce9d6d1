"""Which checkpoint a model name means, so a collection recognises its embedder however it is named.

A collection records the name of the model that built it. The same checkpoint can be named in many
ways: ``models/tiny``, ``./models/tiny/``, its absolute path, a symbolic link to it, or a hub id whose
files are in the local Hugging Face cache. Two names are the same model when

- they are the same string, or
- both are local folders that resolve to the same folder, or
- both can be read locally (a folder, or a hub id in the cache) and their fingerprints agree.

A fingerprint hashes ``config.json`` and, for every weight file, its name, its size and a few
sampled blocks of its bytes: cheap (a handful of small reads per file, whatever its size), yet two
fine-tunes of one base (same config, same sizes) still differ. Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".onnx")
_SAMPLES = 8  # blocks read from each weight file, spread from its start to its end
_BLOCK = 1 << 16


def local_folder(name: str | os.PathLike[str]) -> Path | None:
    """The folder holding a model's files: a local folder (resolved), the snapshot of a hub id in the
    local Hugging Face cache, or None when neither exists."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    text = str(name)
    if text.count("/") > 1 or text.startswith((".", "/", "~")) or os.sep in text.replace("/", ""):
        return None  # a path that does not exist, not a hub id
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(text, "config.json")
    except Exception:  # not a valid repo id, or no hub client: not resolvable
        return None
    return Path(found).parent if isinstance(found, str) else None


def canonical_name(name: str) -> str:
    """The name to record for a model: a local folder's absolute resolved path (so it is recognised
    from any working directory), anything else unchanged."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def fingerprint(name: str | os.PathLike[str]) -> str | None:
    """A short hash of a checkpoint's ``config.json`` and weight files, or None when its files are not
    here (a hub id not in the cache, a folder that is gone or has no config.json)."""
    folder = local_folder(name)
    return None if folder is None else _folder_fingerprint(folder, _signature(folder))


def same_model(recorded: str, name: str) -> bool:
    """Whether ``name`` is the checkpoint a collection recorded as ``recorded`` (see the module doc)."""
    if recorded == name:
        return True
    first, second = Path(recorded).expanduser(), Path(name).expanduser()
    if first.is_dir() and second.is_dir() and first.resolve() == second.resolve():
        return True
    mine, theirs = fingerprint(recorded), fingerprint(name)
    matched = mine is not None and mine == theirs
    if matched:
        logger.info("%s is the checkpoint recorded as %s (same config and weights)", name, recorded)
    return matched


def _signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What the cached fingerprint depends on: each relevant file's name, size and modification time."""
    files = []
    for path in sorted(folder.iterdir()):
        if path.name == "config.json" or path.suffix in WEIGHT_SUFFIXES:
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(files)


@lru_cache(maxsize=64)
def _folder_fingerprint(folder: Path, signature: tuple[tuple[str, int, int], ...]) -> str | None:
    config = folder / "config.json"
    if not config.is_file():
        return None
    digest = hashlib.sha256(config.read_bytes())
    for file_name, size, _ in signature:
        if file_name == "config.json":
            continue
        digest.update(f"\0{file_name}\0{size}\0".encode())
        try:
            with (folder / file_name).open("rb") as weights:
                for i in range(_SAMPLES):
                    weights.seek(max(0, (size - _BLOCK) * i // max(_SAMPLES - 1, 1)))
                    digest.update(weights.read(_BLOCK))
        except OSError:
            return None
    return digest.hexdigest()[:32]
