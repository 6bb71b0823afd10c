"""ViewNeTI checkpoints: the mappers as safetensors plus one JSON that says how to read them.

``view_mapper.safetensors`` holds the view mapper's state dict (the original's
parameter names); ``object_mappers.safetensors`` holds one object mapper per
trained object, its names prefixed by the object's index (``0.net.0.weight``):
one for a scene or a single view, one per posed set after pre-training.
``viewneti.json`` holds the camera parameterisation with its ranges, α, the
Fourier features' σ, the reference words and their norms, the text width, the
base model and its revision, the objects (name, target, source), the training
settings a resumed run must keep and the training steps done.
``training_state.safetensors`` (optimizer moments, RNG state) lets a run resume
exactly. Written all-or-nothing; nothing pickled.

A checkpoint cannot be mixed up: every tensor file's header records what the
JSON said when it was written (:func:`binding`: the cameras and their ranges,
the text width, σ, α, the words, the objects, the mode and the steps done), and
:func:`read` checks, from the JSON and the files' headers alone (no tensor is
read, no torch needed: the request checks run it in Blender's Python), that
they agree, that the JSON has every field with a sound value (finite ranges,
one loss per step done) and that every tensor has the shape the JSON's
architecture gives it. Anything else is refused in one line naming the file and
what disagrees, before any model is loaded.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .cameras import SIZES, CameraRanges

FORMAT = "diffusion3d-viewneti/2"
#: The frozen base every published ViewNeTI result uses: Stable Diffusion 2.1 (v-prediction, 768 px).
BASE_MODEL = "stabilityai/stable-diffusion-2-1"
#: σ of the mappers' Fourier features for the timestep, the layer and each camera number: the paper's final model
#: (the original's arch_view_net 15 with pe_sigma_exp_key 2); a checkpoint may say otherwise (an imported one).
FOURIER_SIGMAS = (0.03, 2.0, 0.5)
#: The mappers' architecture (:mod:`engine.viewneti.mapper`): rows of the Fourier matrix W (64 features), the MLP's width.
FREQUENCIES, HIDDEN = 32, 64
INFO, VIEW_FILE, OBJECT_FILE, STATE_FILE = (
    "viewneti.json",
    "view_mapper.safetensors",
    "object_mappers.safetensors",
    "training_state.safetensors",
)
BINDING = "diffusion3d-viewneti"  # the tensor files' header entry: what the JSON said when they were written
MAPPER_DTYPES = ("F32", "F16", "BF16", "F64")


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
    # The training settings a resumed run keeps (0 and empty: an imported checkpoint, trained elsewhere)
    batch: int = 0
    accumulation: int = 0
    learning_rate: float = 0.0
    augmentation: str = ""  # as asked (AUTO stays AUTO)
    steps_done: int = 0
    seed: int = 0
    losses: list[float] = field(default_factory=list)  # per optimizer step
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> CheckpointInfo:
        """The JSON's fields, each present and sound, or :class:`Unusable` naming the first that is not."""
        if not isinstance(value, dict):
            raise Unusable(f"{INFO} holds no object of fields")
        if value.get("format") != FORMAT:
            earlier = value.get("format") == "diffusion3d-viewneti/1"
            raise Unusable(
                f"{INFO} is of an earlier format (diffusion3d-viewneti/1) whose tensor files do not record what they were made for: "
                "train it again (or import the original again)"
                if earlier
                else f"{INFO} is not a Diffusion 3D ViewNeTI checkpoint (format {value.get('format')!r}, not {FORMAT})"
            )
        names = [f.name for f in fields(cls)]
        missing, unknown = [n for n in names if n not in value], [n for n in value if n not in names]
        if missing or unknown:
            raise Unusable(f"{INFO} lacks the field {missing[0]!r}" if missing else f"{INFO} has an unknown field {unknown[0]!r}")
        _check_fields(value)
        objects = [TrainedObject(o["name"], [float(t) for t in o["target"]], o["source"]) for o in value["objects"]]
        cameras = value["cameras"]
        ranges = CameraRanges(cameras["kind"], [float(v) for v in cameras["low"]], [float(v) for v in cameras["high"]])
        return cls(**{**value, "cameras": ranges, "objects": objects})

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


class Unusable(BadInput):
    """A checkpoint folder that cannot be read as it is: ``reason`` names the file and what is wrong or disagrees."""

    def __init__(self, reason: str, folder: Path | None = None) -> None:
        super().__init__(f"The checkpoint in {folder} cannot be used: {reason}" if folder is not None else reason)
        self.reason = reason


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_fields(value: dict[str, Any]) -> None:
    """Each field of the JSON of the type and in the range it is written with; the first that is not, refused by name."""

    def bad(name: str, why: str) -> Unusable:
        return Unusable(f"{INFO}: {name} {json.dumps(_short(_at(value, name)))}: {why}")

    def numbers(name: str, count: int | None, finite: bool = True, whole: bool = False, positive: bool = False) -> None:
        items = _at(value, name)
        if not isinstance(items, list) or (count is not None and len(items) != count) or not all(map(_is_number, items)):
            raise bad(name, f"must be a list of {count if count is not None else 'any number of'} numbers")
        if finite and not all(math.isfinite(v) for v in items):
            raise bad(name, "every number must be finite")
        if whole and not all(float(v).is_integer() for v in items) or positive and not all(v > 0 for v in items):
            raise bad(name, f"every number must be {'a whole number ' if whole else ''}{'above 0' if positive else ''}".strip())

    for name, least in (("word_dim", 1), ("width", 1), ("height", 1), ("steps_done", 0), ("seed", 0), ("batch", 0), ("accumulation", 0)):
        if not isinstance(value[name], int) or isinstance(value[name], bool) or value[name] < least:
            raise bad(name, f"must be a whole number ≥ {least}")
    floors: tuple[tuple[str, float | None], ...] = (("view_norm", 0.0), ("object_norm", 0.0), ("alpha", None), ("learning_rate", 0.0))
    for name, floor in floors:
        if not _is_number(value[name]) or not math.isfinite(value[name]) or floor is not None and value[name] < floor:
            raise bad(name, "must be a finite number" + (f" ≥ {floor:g}" if floor is not None else ""))
    for name in ("view_word", "object_word", "base_model", "base_revision", "mode", "view_mapper_from", "augmentation"):
        if not isinstance(value[name], str):
            raise bad(name, "must be text")
    numbers("camera_size", 2, whole=True, positive=True)
    numbers("sigmas", 3, positive=True)
    numbers("losses", None, finite=False)
    if len(value["losses"]) != value["steps_done"]:
        raise bad("losses", f"holds {len(value['losses'])} losses for steps_done {value['steps_done']} (one per step)")
    cameras = value["cameras"]
    if not isinstance(cameras, dict) or sorted(cameras) != ["high", "kind", "low"]:
        raise bad("cameras", "must hold kind, low and high")
    if cameras["kind"] not in SIZES:
        raise bad("cameras.kind", f"choose from {', '.join(SIZES)}")
    for end in ("cameras.low", "cameras.high"):
        numbers(end, SIZES[cameras["kind"]])
    if any(lo > hi for lo, hi in zip(cameras["low"], cameras["high"])):
        raise bad("cameras.low", f"must not exceed cameras.high {json.dumps(cameras['high'])}")
    objects = value["objects"]
    if not isinstance(objects, list) or not objects:
        raise bad("objects", "must list one object or more")
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict) or sorted(obj) != ["name", "source", "target"]:
            raise bad(f"objects.{i}", "must hold name, target and source")
        if not isinstance(obj["name"], str) or not obj["name"] or not isinstance(obj["source"], str):
            raise bad(f"objects.{i}", "its name must be text (not empty), its source text")
        numbers(f"objects.{i}.target", 3)
    names = [o["name"] for o in objects]
    if len(set(names)) != len(names):
        raise bad("objects", "names an object twice")


def _at(value: Any, name: str) -> Any:
    """``cameras.low`` or ``objects.0.target`` in the JSON."""
    for part in name.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _short(value: Any) -> Any:
    """A value as a refusal quotes it: a long list by its first entries."""
    return [*value[:4], "…"] if isinstance(value, list) and len(value) > 5 else value


def binding(info: CheckpointInfo) -> dict[str, Any]:
    """What the tensors were made for, as the JSON says it: recorded in every tensor file's header, checked on reading."""
    return {
        "cameras.kind": info.cameras.kind,
        "cameras.low": info.cameras.low,
        "cameras.high": info.cameras.high,
        "word_dim": info.word_dim,
        "sigmas": list(info.sigmas),
        "alpha": info.alpha,
        "view_word": info.view_word,
        "object_word": info.object_word,
        "objects": [o.name for o in info.objects],
        "mode": info.mode,
        "steps_done": info.steps_done,
    }


def mapper_shapes(word_dim: int) -> dict[str, list[int]]:
    """A mapper's tensors (view or object: W is rebuilt, not stored) and their shapes, in parameter order."""
    shapes: dict[str, list[int]] = {}
    for layer, inputs in (("net.0", 2 * FREQUENCIES), ("net.3", HIDDEN)):
        norm = f"net.{int(layer[-1]) + 1}"
        shapes |= {f"{layer}.weight": [HIDDEN, inputs], f"{layer}.bias": [HIDDEN], f"{norm}.weight": [HIDDEN], f"{norm}.bias": [HIDDEN]}
    return shapes | {"output_layer.0.weight": [2 * word_dim, HIDDEN], "output_layer.0.bias": [2 * word_dim]}


def save(
    folder: Path, info: CheckpointInfo, view: dict[str, Any], objects: list[dict[str, Any]], state: dict[str, Any] | None, overwrite: bool
) -> None:
    """The checkpoint's files, all-or-nothing (a resumed run replaces its own checkpoint: ``overwrite``)."""
    from safetensors.torch import save_file

    from ..imagefiles import NewFiles

    header = {BINDING: json.dumps(binding(info))}

    def tensors(values: dict[str, Any]) -> Any:
        return lambda p: save_file({k: v.detach().cpu().contiguous() for k, v in values.items()}, str(p), metadata=header)

    assert len(objects) == len(info.objects), "one object mapper per trained object"
    folder.mkdir(parents=True, exist_ok=True)
    names = [INFO, VIEW_FILE, OBJECT_FILE, *([STATE_FILE] if state is not None else [])]
    with NewFiles([folder / n for n in names], overwrite) as files:
        files.write(folder / VIEW_FILE, tensors(view))
        files.write(folder / OBJECT_FILE, tensors({f"{i}.{k}": v for i, obj in enumerate(objects) for k, v in obj.items()}))
        if state is not None:
            files.write(folder / STATE_FILE, tensors(state))
        files.write(folder / INFO, lambda p: p.write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8"))


def tensor_header(path: Path) -> tuple[dict[str, tuple[str, list[int]]], dict[str, str]]:
    """A safetensors file's tensors (name → dtype, shape) and metadata, from its header alone; a damaged or cut file refused."""
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            length = struct.unpack("<Q", f.read(8))[0] if size >= 8 else -1
            if not 0 < length <= size - 8:
                raise Unusable(f"{path.name} is cut short or not a safetensors file ({size} bytes)")
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise Unusable(f"{path.name} has no readable safetensors header ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise Unusable(f"{path.name} has no readable safetensors header")
    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, tuple[str, list[int]]] = {}
    end = 0
    for name, entry in header.items():
        try:
            tensors[name] = (str(entry["dtype"]), [int(n) for n in entry["shape"]])
            end = max(end, int(entry["data_offsets"][1]))
        except (TypeError, KeyError, ValueError, IndexError):
            raise Unusable(f"{path.name}: the header entry of {name!r} is damaged") from None
    if 8 + length + end != size:
        raise Unusable(f"{path.name} is cut short: {size} bytes, its header describes {8 + length + end}")
    return tensors, metadata


def read(folder: Path) -> CheckpointInfo:
    """The checkpoint's JSON, checked against its tensor files' headers (see the module's docstring): :class:`Unusable` if not."""
    try:
        return _read(folder)
    except Unusable as exc:
        raise Unusable(exc.reason, folder) from None


def check_field(field: str, folder: str) -> None:
    """A request's rule: the checkpoint folder ``field`` names, refused by that name if unusable (if absent: the path check's)."""
    from ..params import refuse

    if folder and Path(folder).is_dir():
        try:
            read(Path(folder))
        except Unusable as exc:
            refuse(field, exc.reason)


def _read(folder: Path) -> CheckpointInfo:
    if not (folder / INFO).is_file():
        raise Unusable(f"there is no {INFO} in it")
    try:
        info = CheckpointInfo.from_json(json.loads((folder / INFO).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise Unusable(f"{INFO} is not readable JSON ({exc})") from None
    said = binding(info)
    files = [VIEW_FILE, OBJECT_FILE, *([STATE_FILE] if (folder / STATE_FILE).exists() else [])]
    headers = {}
    for name in files:
        if not (folder / name).is_file():
            raise Unusable(f"{name} is missing")
        tensors, metadata = headers[name] = tensor_header(folder / name)
        try:
            recorded = json.loads(metadata[BINDING])
        except (KeyError, ValueError):
            raise Unusable(f"{name} does not record what it was made for (written by hand, or by an earlier version)") from None
        for key, value in said.items():
            if recorded.get(key) != value:
                theirs = json.dumps(_short(recorded.get(key)))
                raise Unusable(f"{INFO} says {key} {json.dumps(_short(value))}; {name} was written for {theirs}")
    shapes = mapper_shapes(info.word_dim)
    _check_tensors(VIEW_FILE, headers[VIEW_FILE][0], shapes, info)
    _check_tensors(OBJECT_FILE, headers[OBJECT_FILE][0], {f"{i}.{k}": v for i in range(len(info.objects)) for k, v in shapes.items()}, info)
    if STATE_FILE in headers:
        trained = ([] if info.mode == "SINGLE_VIEW" else [shapes]) + [shapes] * len(info.objects)  # the optimizer's parameters
        moments = [s for mapper in trained for s in mapper.values()]
        expected = {f"optimizer.{i}.{m}": s for i, s in enumerate(moments) for m in ("exp_avg", "exp_avg_sq")}
        state = headers[STATE_FILE][0]
        if "generator" not in state:
            raise Unusable(f"{STATE_FILE} lacks the random state ('generator')")
        present = {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] != "step" and k != "generator"}
        # a parameter no step has reached yet (an object mapper whose set was never drawn) has no moments
        _check_tensors(STATE_FILE, present, {k: v for k, v in expected.items() if k in present}, info, dtypes=("F32",))
    return info


def _check_tensors(
    name: str,
    tensors: dict[str, tuple[str, list[int]]],
    shapes: dict[str, list[int]],
    info: CheckpointInfo,
    dtypes: tuple[str, ...] = MAPPER_DTYPES,
) -> None:
    """The tensors are those ``shapes`` names, of those shapes (by the JSON's word_dim and objects)."""
    missing, extra = [k for k in shapes if k not in tensors], [k for k in tensors if k not in shapes]
    if name == OBJECT_FILE and extra and not missing:
        held = len({k.split(".", 1)[0] for k in tensors})
        raise Unusable(f"{INFO} names {len(info.objects)} object(s); {name} holds tensors of {held} ({extra[0]!r} belongs to none)")
    if missing:
        raise Unusable(f"{name} lacks the tensor {missing[0]!r} ({len(missing)} missing)")
    if extra:
        raise Unusable(f"{name} holds a tensor {extra[0]!r} the checkpoint has no place for")
    for key, shape in shapes.items():
        dtype, held_shape = tensors[key]
        if held_shape != shape:
            size = "×".join(map(str, held_shape)) or "a scalar"
            raise Unusable(f"{name}: {key} is {size}, not {'×'.join(map(str, shape))} (by {INFO}'s word_dim {info.word_dim})")
        if dtype not in dtypes:
            raise Unusable(f"{name}: {key} holds {dtype}, not floating-point numbers")


def load(folder: Path) -> tuple[CheckpointInfo, dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """(info, view state dict, one state dict per object, training state or None), checked by :func:`read` first."""
    from safetensors.torch import load_file

    info = read(folder)
    state = load_file(folder / STATE_FILE) if (folder / STATE_FILE).is_file() else None
    objects: list[dict[str, Any]] = [{} for _ in info.objects]
    for key, value in load_file(folder / OBJECT_FILE).items():
        index, name = key.split(".", 1)
        objects[int(index)][name] = value
    view = load_file(folder / VIEW_FILE)
    for file, tensors in ((VIEW_FILE, view), *((OBJECT_FILE, o) for o in objects)):
        for key, value in tensors.items():
            if not value.isfinite().all():
                raise Unusable(f"{file}: {key} holds NaN or infinite numbers", folder)
    return info, view, objects, state
