"""ViewNeTI checkpoints: the mappers as safetensors plus one JSON that says how to read them.

``view_mapper.safetensors`` and ``object_mapper.safetensors`` hold the mappers'
state dicts (the original's parameter names); ``viewneti.json`` holds the
camera parameterisation with its ranges, α, the reference words and their
norms, the text width, the base model and its revision, and the training steps
done. ``training_state.safetensors`` (optimizer moments, RNG state) lets a run
resume exactly. Written all-or-nothing; nothing pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .cameras import CameraRanges

FORMAT = "diffusion3d-viewneti/1"
INFO, VIEW_FILE, OBJECT_FILE, STATE_FILE = (
    "viewneti.json",
    "view_mapper.safetensors",
    "object_mapper.safetensors",
    "training_state.safetensors",
)


@dataclass
class CheckpointInfo:
    cameras: CameraRanges
    word_dim: int
    target: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # what SPHERICAL cameras circle
    width: int = 512  # the training images' size: DTU12 numbers use intrinsics at this size
    height: int = 384
    view_word: str = "view"
    object_word: str = "object"
    view_norm: float = 0.0
    object_norm: float = 0.0
    alpha: float = 5.0
    base_model: str = ""
    base_revision: str = ""
    mode: str = "SCENE"
    steps_done: int = 0
    seed: int = 0
    losses: list[float] = field(default_factory=list)  # per optimizer step
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any], where: str) -> CheckpointInfo:
        if value.get("format") != FORMAT:
            raise BadInput(f"{where} is not a Diffusion 3D ViewNeTI checkpoint (format {value.get('format')!r})")
        try:
            return cls(**{**value, "cameras": CameraRanges(**value["cameras"])})
        except (TypeError, KeyError) as exc:
            raise BadInput(f"{where} is damaged: {exc}") from None

    def check_base(self, word_dim: int, revision: str, name: str) -> None:
        """Refuse a base model other than the one trained on: another text width, or another revision of it."""
        if word_dim != self.word_dim:
            raise BadInput(f"This checkpoint was trained on a base with {self.word_dim}-wide text embeddings; {name} has {word_dim}")
        if self.base_revision and revision and revision != self.base_revision:
            raise BadInput(f"This checkpoint was trained on {self.base_model} at revision {self.base_revision}; {name} is {revision}")


def save(
    folder: Path, info: CheckpointInfo, view: dict[str, Any], obj: dict[str, Any], state: dict[str, Any] | None, overwrite: bool
) -> None:
    """The checkpoint's files, all-or-nothing (a resumed run replaces its own checkpoint: ``overwrite``)."""
    from safetensors.torch import save_file

    from ..imagefiles import NewFiles

    folder.mkdir(parents=True, exist_ok=True)
    names = [INFO, VIEW_FILE, OBJECT_FILE, *([STATE_FILE] if state is not None else [])]
    with NewFiles([folder / n for n in names], overwrite) as files:
        files.write(folder / VIEW_FILE, lambda p: save_file({k: v.contiguous() for k, v in view.items()}, str(p)))
        files.write(folder / OBJECT_FILE, lambda p: save_file({k: v.contiguous() for k, v in obj.items()}, str(p)))
        if state is not None:
            files.write(folder / STATE_FILE, lambda p: save_file({k: v.contiguous() for k, v in state.items()}, str(p)))
        files.write(folder / INFO, lambda p: p.write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8"))


def load(folder: Path) -> tuple[CheckpointInfo, dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(info, view state dict, object state dict, training state or None)."""
    from safetensors.torch import load_file

    if not (folder / INFO).is_file():
        raise BadInput(f"No ViewNeTI checkpoint in {folder} ({INFO} missing)")
    info = CheckpointInfo.from_json(json.loads((folder / INFO).read_text(encoding="utf-8")), str(folder))
    missing = [n for n in (VIEW_FILE, OBJECT_FILE) if not (folder / n).is_file()]
    if missing:
        raise BadInput(f"The checkpoint in {folder} lacks {', '.join(missing)}")
    state = load_file(folder / STATE_FILE) if (folder / STATE_FILE).is_file() else None
    return info, load_file(folder / VIEW_FILE), load_file(folder / OBJECT_FILE), state
