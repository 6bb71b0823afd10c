"""ViewNeTI checkpoints: the mappers as safetensors plus one JSON that says how to read them.

``view_mapper.safetensors`` holds the view mapper's state dict (the original's
parameter names); ``object_mappers.safetensors`` holds one object mapper per
trained object, its names prefixed by the object's index (``0.net.0.weight``):
one for a scene or a single view, one per posed set after pre-training.
``viewneti.json`` holds the camera parameterisation with its ranges, α, the
Fourier features' σ, the reference words and their norms, the text width, the
base model and its revision, the objects (name, target, source) and the
training steps done.
``training_state.safetensors`` (optimizer moments, RNG state) lets a run resume
exactly. Written all-or-nothing; nothing pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .cameras import CameraRanges

FORMAT = "diffusion3d-viewneti/1"
#: The frozen base every published ViewNeTI result uses: Stable Diffusion 2.1 (v-prediction, 768 px).
BASE_MODEL = "stabilityai/stable-diffusion-2-1"
#: σ of the mappers' Fourier features for the timestep, the layer and each camera number: the paper's final model
#: (the original's arch_view_net 15 with pe_sigma_exp_key 2); a checkpoint may say otherwise (an imported one).
FOURIER_SIGMAS = (0.03, 2.0, 0.5)
INFO, VIEW_FILE, OBJECT_FILE, STATE_FILE = (
    "viewneti.json",
    "view_mapper.safetensors",
    "object_mappers.safetensors",
    "training_state.safetensors",
)


@dataclass
class TrainedObject:
    """One object an object mapper was fitted to."""

    name: str
    target: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # what its SPHERICAL cameras circle
    source: str = ""  # the posed set it was trained on, relative to the checkpoint folder


@dataclass
class CheckpointInfo:
    cameras: CameraRanges
    word_dim: int
    objects: list[TrainedObject] = field(default_factory=lambda: [TrainedObject("object")])
    width: int = 512  # the training images' size
    height: int = 384
    camera_size: list[int] = field(default_factory=lambda: [512, 384])  # the image size whose intrinsics DTU12 numbers hold
    view_word: str = "view"
    object_word: str = "object"
    view_norm: float = 0.0
    object_norm: float = 0.0
    alpha: float = 5.0
    sigmas: list[float] = field(default_factory=lambda: list(FOURIER_SIGMAS))  # timestep, layer, camera
    base_model: str = ""
    base_revision: str = ""
    mode: str = "SCENE"  # choices.TRAINING_MODES, or IMPORTED
    view_mapper_from: str = ""  # SINGLE_VIEW: the pre-trained checkpoint whose view mapper this holds, frozen (relative to this one)
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
            objects = [TrainedObject(**o) for o in value["objects"]]
            return cls(**{**value, "cameras": CameraRanges(**value["cameras"]), "objects": objects})
        except (TypeError, KeyError) as exc:
            raise BadInput(f"{where} is damaged: {exc}") from None

    def object_index(self, name: str) -> int:
        """Which object mapper renders ``name`` ("" is the first)."""
        names = [o.name for o in self.objects]
        if not name:
            return 0
        if name not in names:
            raise BadInput(f"This checkpoint has no object {name!r} (it has {', '.join(names)})")
        return names.index(name)

    def check_base(self, word_dim: int, revision: str, name: str) -> None:
        """Refuse a base model other than the one trained on: another text width, or another revision of it."""
        if word_dim != self.word_dim:
            raise BadInput(f"This checkpoint was trained on a base with {self.word_dim}-wide text embeddings; {name} has {word_dim}")
        if self.base_revision and revision and revision != self.base_revision:
            raise BadInput(f"This checkpoint was trained on {self.base_model} at revision {self.base_revision}; {name} is {revision}")


def save(
    folder: Path, info: CheckpointInfo, view: dict[str, Any], objects: list[dict[str, Any]], state: dict[str, Any] | None, overwrite: bool
) -> None:
    """The checkpoint's files, all-or-nothing (a resumed run replaces its own checkpoint: ``overwrite``)."""
    from safetensors.torch import save_file

    from ..imagefiles import NewFiles

    def tensors(values: dict[str, Any]) -> Any:
        return lambda p: save_file({k: v.detach().cpu().contiguous() for k, v in values.items()}, str(p))

    assert len(objects) == len(info.objects), "one object mapper per trained object"
    folder.mkdir(parents=True, exist_ok=True)
    names = [INFO, VIEW_FILE, OBJECT_FILE, *([STATE_FILE] if state is not None else [])]
    with NewFiles([folder / n for n in names], overwrite) as files:
        files.write(folder / VIEW_FILE, tensors(view))
        files.write(folder / OBJECT_FILE, tensors({f"{i}.{k}": v for i, obj in enumerate(objects) for k, v in obj.items()}))
        if state is not None:
            files.write(folder / STATE_FILE, tensors(state))
        files.write(folder / INFO, lambda p: p.write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8"))


def load(folder: Path) -> tuple[CheckpointInfo, dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """(info, view state dict, one state dict per object, training state or None)."""
    from safetensors.torch import load_file

    if not (folder / INFO).is_file():
        raise BadInput(f"No ViewNeTI checkpoint in {folder} ({INFO} missing)")
    info = CheckpointInfo.from_json(json.loads((folder / INFO).read_text(encoding="utf-8")), str(folder))
    missing = [n for n in (VIEW_FILE, OBJECT_FILE) if not (folder / n).is_file()]
    if missing:
        raise BadInput(f"The checkpoint in {folder} lacks {', '.join(missing)}")
    state = load_file(folder / STATE_FILE) if (folder / STATE_FILE).is_file() else None
    objects: list[dict[str, Any]] = [{} for _ in info.objects]
    for key, value in load_file(folder / OBJECT_FILE).items():
        index, name = key.split(".", 1)
        if not index.isdigit() or int(index) >= len(objects):
            raise BadInput(f"The checkpoint in {folder} is damaged: object mapper tensor {key!r} belongs to no object")
        objects[int(index)][name] = value
    return info, load_file(folder / VIEW_FILE), objects, state
