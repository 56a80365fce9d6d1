"""Reranker profiles: what makes one yes/no Qwen3-VL reranker differ from another, as data.

A profile holds the system text, the layout of the user turn, the two answer words whose logits
decide the score, the default instruction, and the image budget the model was trained with. The
released Qwen3-VL-Reranker-2B and -8B share one profile; a fine-tune (a LoRA on Qwen3-VL-Instruct
with its own prompt and capitalised ``Yes``/``No``, say) is a JSON file a user writes, not a new class.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from core.errors import InvalidInputError
from core.qwen_vl.markers import render_chat
from reranker.prompt import DEFAULT_INSTRUCTION, EMPTY_SIDE, SYSTEM_PROMPT

PLACEHOLDERS = ("{instruction}", "{query}", "{document}")


@dataclass(frozen=True)
class RerankerProfile:
    """How one reranker checkpoint reads a pair and answers.

    Attributes:
        name: how settings and files refer to it.
        system: the system turn.
        layout: the user turn, with ``{instruction}``, ``{query}`` and ``{document}`` each exactly once.
        yes: the answer word that means relevant; the score is sigmoid(logit_yes - logit_no).
        no: the answer word that means not relevant.
        instruction: the default task instruction.
        empty_side: what a side without content becomes.
        image_max_pixels: the image budget the model expects, when it differs from the default.
    """

    name: str
    system: str
    layout: str
    yes: str = "yes"
    no: str = "no"
    instruction: str = DEFAULT_INSTRUCTION
    empty_side: str = EMPTY_SIDE
    image_max_pixels: int | None = None

    def __post_init__(self) -> None:
        for placeholder in PLACEHOLDERS:
            if self.layout.count(placeholder) != 1:
                raise InvalidInputError(f"profile {self.name!r}: the layout needs {placeholder} exactly once")
        if not self.yes.strip() or not self.no.strip() or self.yes == self.no:
            raise InvalidInputError(f"profile {self.name!r}: yes and no must be two different words")

    def render(self, query: str, document: str, instruction: str | None = None) -> str:
        """The full chat prompt of one pair (each side already rendered, vision placeholders included)."""
        user = (
            self.layout.replace("{instruction}", instruction or self.instruction)
            .replace("{query}", query or self.empty_side)
            .replace("{document}", document or self.empty_side)
        )
        return render_chat(self.system, user)

    def to_file(self, path: str | Path) -> Path:
        """Write the profile as JSON."""
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_file(cls, path: str | Path) -> RerankerProfile:
        """Read a profile written by :meth:`to_file` (or by hand); unknown keys are refused."""
        path = Path(path)
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"cannot read the reranker profile {path}: {exc}") from exc
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known) if isinstance(data, dict) else ["(not an object)"]
        if unknown:
            raise InvalidInputError(
                f"reranker profile {path}: unknown keys {unknown}; known: {sorted(known)}"
            )
        return cls(**data)


# The released Qwen3-VL rerankers (2B and 8B): the published prompt, lowercase yes/no.
QWEN3_VL_RERANKER = RerankerProfile(
    name="qwen3-vl-reranker",
    system=SYSTEM_PROMPT,
    layout="<Instruct>: {instruction}<Query>:{query}\n<Document>:{document}",
)
PROFILES = {QWEN3_VL_RERANKER.name: QWEN3_VL_RERANKER}


def resolve_profile(value: str | Path | RerankerProfile | None) -> RerankerProfile:
    """A profile object, a built-in profile's name, or the path of a JSON profile; None: the default."""
    if value is None:
        return QWEN3_VL_RERANKER
    if isinstance(value, RerankerProfile):
        return value
    if str(value) in PROFILES:
        return PROFILES[str(value)]
    path = Path(value)
    if path.is_file():
        return RerankerProfile.from_file(path)
    raise InvalidInputError(
        f"unknown reranker profile {str(value)!r}: give one of {sorted(PROFILES)} or a JSON profile file"
    )
