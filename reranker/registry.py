"""Several rerankers at once: a short spec names each one, and a request picks one by name.

A spec is ``[NAME=]MODEL[;backend=B][;profile=P]``, e.g. ``jina=jinaai/jina-reranker-m0`` or
``mm2b=/models/mm2b;profile=/models/mm2b/profile.json``. Without a name, the model's last path part
is its name (``Qwen/Qwen3-VL-Reranker-8B`` is ``Qwen3-VL-Reranker-8B``). The same syntax serves the
``rerankers`` setting, ``mmsearch eval --reranker`` and the API's ``model`` field names what it gives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from core.errors import InvalidInputError, UnknownModelError

SPEC_SYNTAX = "[NAME=]MODEL[;backend=B][;profile=P]"
BACKENDS = ("qwen3-vl", "jina-m0")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def default_name(model: str) -> str:
    """The name a model goes by when its spec gives none: the last part of its hub id or path."""
    return PurePath(model.rstrip("/")).name or model


@dataclass(frozen=True)
class RerankerSpec:
    """One reranker to load: its name, its checkpoint, and optionally its backend and profile.

    Attributes:
        name: what requests and reports call it.
        model: hub id or local folder.
        backend: ``auto`` (from the checkpoint), ``qwen3-vl`` or ``jina-m0``.
        profile: a Qwen3-VL profile's name or JSON file; None: the built-in one.
    """

    name: str
    model: str
    backend: str = "auto"
    profile: str | None = None

    @classmethod
    def parse(cls, text: str) -> RerankerSpec:
        """Read ``[NAME=]MODEL[;backend=B][;profile=P]``.

        Raises:
            InvalidInputError: no model, an unknown option or backend, or a name that is not a word.
        """
        head, *options = (part.strip() for part in text.strip().split(";"))
        name, sep, model = head.partition("=")
        if not sep or not _NAME.match(name.strip()):
            name, model = "", head  # a path with "=" in it, not a name
        name, model = name.strip(), model.strip()
        if not model:
            raise InvalidInputError(f"reranker {text!r} names no model; write {SPEC_SYNTAX}")
        values: dict[str, str] = {}
        for option in filter(None, options):
            key, sep, value = (s.strip() for s in option.partition("="))
            if not sep or key not in ("backend", "profile") or not value:
                raise InvalidInputError(
                    f"reranker {text!r}: {option!r} is not backend=B or profile=P; write {SPEC_SYNTAX}"
                )
            values[key] = value
        backend = values.get("backend", "auto")
        if backend not in ("auto", *BACKENDS):
            raise InvalidInputError(
                f"reranker {text!r}: unknown backend {backend!r}; use auto or one of {', '.join(BACKENDS)}"
            )
        name = name or default_name(model)
        if not _NAME.match(name):
            raise InvalidInputError(f"reranker {text!r}: give it a short name, as NAME={model}")
        return cls(name, model, backend, values.get("profile"))

    def settings_for(self, settings: Any) -> Any:
        """``settings`` with this spec's model, backend and profile as the reranker's."""
        update = {"reranker_model": self.model, "reranker_backend": self.backend}
        update["reranker_profile"] = self.profile or "qwen3-vl-reranker"
        return settings.model_copy(update=update)


def specs_from_settings(settings: Any) -> list[RerankerSpec]:
    """The default reranker (``reranker_model``, ``reranker_backend``, ``reranker_profile``) first,
    then every spec in ``rerankers``.

    Raises:
        InvalidInputError: a malformed spec, or two rerankers with one name.
    """
    first = RerankerSpec(
        default_name(settings.reranker_model),
        settings.reranker_model,
        settings.reranker_backend,
        settings.reranker_profile,
    )
    return unique([first, *(RerankerSpec.parse(text) for text in settings.rerankers)])


def parse_specs(texts: list[str]) -> list[RerankerSpec]:
    """Several specs, each text holding one or more separated by commas (``--reranker A,B``).

    Raises:
        InvalidInputError: a malformed spec, or two with one name.
    """
    parts = [part for text in texts for part in text.split(",") if part.strip()]
    return unique([RerankerSpec.parse(part) for part in parts])


def unique(specs: list[RerankerSpec]) -> list[RerankerSpec]:
    """``specs``, once no two share a name (names compare without case, as requests match them)."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name.lower() in seen:
            raise InvalidInputError(
                f"two rerankers are called {spec.name!r}: name them apart, as NAME={spec.model}"
            )
        seen.add(spec.name.lower())
    return specs


def pick(rerankers: Mapping[str, Any], wanted: str | None) -> tuple[str, Any]:
    """The reranker a request asks for: by name (any case) or by its full model id; None: the first.

    Raises:
        UnknownModelError: no loaded reranker answers to ``wanted`` (the message lists the names).
    """
    if not rerankers:
        raise UnknownModelError("this server has no reranker loaded")
    if not wanted:
        return next(iter(rerankers.items()))
    for name, reranker in rerankers.items():
        if wanted.lower() == name.lower() or wanted == getattr(reranker, "model_name", None):
            return name, reranker
    raise UnknownModelError(f"no reranker called {wanted!r} is loaded; loaded: {', '.join(rerankers)}")
