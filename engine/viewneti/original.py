"""Import of the original ViewNeTI's released mappers (``mapper-steps-N_view.pt`` / ``_object.pt``) into our checkpoint format.

Those files are pickles: besides the mappers' state dicts they hold pickled
modules of the original code (the Fourier encoder). They are read only when
pickles are allowed, and then with an unpickler that rebuilds tensors and
plain containers and turns every other class into an inert placeholder, so no
code from the file runs. The Fourier matrix is not taken from them: it is
rebuilt from seed 0, as the original builds it. The original does not store
its camera ranges either (it recomputes them from DTU's calibration files), so
the import reads the 3×4 ``pos_*.txt`` matrices of that calibration folder.

Each file also holds its run's config (``cfg``), which says how its mappers
read and write. The import takes from it α, the Fourier features' σ (the
``pe_t_exp_key``, ``pe_l_exp_key`` and ``pe_sigma_exp_key`` choices, or
``pe_sigmas``), the reference words' target norms, the base model and the
training size, and refuses, by name, any setting our mappers do not implement
(another mapper architecture, an unnormalised word, an unconstrained bypass,
spherical cameras, …). A key the saved config lacks has the original
``training/config.py``'s default.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..imagefiles import recorded_path
from ..params import INPUT_FILE, INPUT_FOLDER, model_field, output_folder_field, overwrite_field, param
from ..progress import Reporter
from . import checkpoint
from .cameras import DTU12, CameraRanges
from .dtu import DTU_IMAGE_SIZE, calibration_cameras

_SAFE_MODULES = ("torch", "collections", "builtins", "numpy", "_codecs", "copyreg")


class _Inert:
    """What any class from outside torch, numpy and the standard containers becomes: holds its state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in _SAFE_MODULES:
            return super().find_class(module, name)
        return _Inert


class _PickleModule:
    """What ``torch.load`` takes as ``pickle_module``: our unpickler, the standard rest."""

    Unpickler = _Unpickler
    load = pickle.load
    __name__ = "diffusion3d_inert_pickle"


VIEW, OBJECT = "view", "object"  # the two files


@dataclass(frozen=True)
class Setting:
    """A key of the original's saved config that our mappers fix: config.py's default for it, the value we implement."""

    section: str
    key: str
    default: Any
    ours: Any
    meaning: str
    files: tuple[str, ...] = (VIEW, OBJECT)  # the mapper files whose mappers it shapes


IMPLEMENTED = (
    Setting("model", "arch_view_net", 0, 15, "the paper's final mappers: Fourier features of timestep, layer and camera"),
    Setting("model", "arch_view_disable_tl", True, False, "the view mapper reads the timestep and layer", (VIEW,)),
    Setting("model", "arch_mlp_hidden_dims", 128, 64, "64-wide hidden layers in the object mapper", (OBJECT,)),
    Setting("model", "original_ti", False, False, "mappers, not one learnt word", (OBJECT,)),
    Setting("model", "output_bypass_view", True, True, "a bypass vector", (VIEW,)),
    Setting("model", "output_bypass_object", True, True, "a bypass vector", (OBJECT,)),
    Setting("model", "bypass_unconstrained_view", False, False, "the bypass scaled to α times the state's norm", (VIEW,)),
    Setting("model", "bypass_unconstrained_object", False, False, "the bypass scaled to α times the state's norm", (OBJECT,)),
    Setting("model", "normalize_view_mapper_output", False, True, "the view word rescaled to the reference word's norm", (VIEW,)),
    Setting("model", "normalize_object_mapper_output", True, True, "the object word rescaled to the reference word's norm", (OBJECT,)),
    Setting("data", "camera_representation", "spherical", "dtu-12d", "DTU's 3×4 cameras", (VIEW,)),
    Setting("data", "dtu_preprocess_key", 1, 1, "training images resized to 512×384"),
)
TRAINING_SIZE = (512, 384)  # dtu_preprocess_key 1
SIGMA_T = (0.03, 0.06, 0.2, 0.5)  # by pe_t_exp_key
SIGMA_LAYER = (2.0, 4.0)  # by pe_l_exp_key
SIGMA_CAMERA = {1: 1.0, 2: 0.5, 3: 0.25, 4: 0.75, 5: 0.1}  # by pe_sigma_exp_key; any other keeps pe_sigmas' sigma_dtu12


@dataclass
class OriginalFile:
    """One of the original's mapper files: its run's config and its mappers' state dicts by object token (or key)."""

    path: Path
    what: str  # VIEW or OBJECT
    cfg: dict[str, Any]
    mappers: dict[str, Any]

    def value(self, section: str, key: str, default: Any) -> Any:
        """The saved config's value, or config.py's default where the file lacks it."""
        return self.cfg.get(section, {}).get(key, default)

    def refused(self) -> list[str]:
        """Each setting of this file our mappers do not implement, by name."""
        return [
            f"{s.section}.{s.key} {value!r} (we implement {s.ours!r}: {s.meaning})"
            for s in IMPLEMENTED
            if self.what in s.files and (value := self.value(s.section, s.key, s.default)) != s.ours
        ]

    def sigmas(self) -> tuple[float, float, float]:
        """σ of the timestep, the layer and each camera number, as the original's config resolves them."""
        t, layer, camera = (int(self.value("model", k, 0)) for k in ("pe_t_exp_key", "pe_l_exp_key", "pe_sigma_exp_key"))
        if not (0 <= t < len(SIGMA_T) and 0 <= layer < len(SIGMA_LAYER)):
            raise BadInput(f"{self.path}: model.pe_t_exp_key {t} or pe_l_exp_key {layer} is none the original defines")
        given = self.value("model", "pe_sigmas", None) or {}
        return SIGMA_T[t], SIGMA_LAYER[layer], SIGMA_CAMERA.get(camera, float(given.get("sigma_dtu12", 2.0)))

    def alphas(self) -> dict[str, float]:
        """Every α this file's mappers are rendered with by the original (its loader gives the view mapper the object's)."""
        keys = ("output_bypass_alpha_view", "output_bypass_alpha_object") if self.what == VIEW else ("output_bypass_alpha_object",)
        return {f"{self.path.name} model.{k}": float(self.value("model", k, 0.2)) for k in keys}


@dataclass
class ImportRequest:
    view_file: str = param(
        "", "View Mapper File", "The original's mapper-steps-N_view.pt", path=INPUT_FILE, cli="--view", cli_required=True
    )
    object_file: str = param(
        "", "Object Mapper File", "The original's mapper-steps-N_object.pt", path=INPUT_FILE, cli="--object", cli_required=True
    )
    calibration_dir: str = param(
        "",
        "Calibration",
        "DTU's Calibration/cal18 folder (pos_*.txt): the camera ranges the original used",
        path=INPUT_FOLDER,
        cli="--calibration",
        cli_required=True,
    )
    out_dir: str = output_folder_field("The checkpoint folder", label="Checkpoint")
    base_model: str = model_field(checkpoint.BASE_MODEL, "Base Model", "The base the original was trained on, where its files do not say")
    allow_pickle: bool = param(False, "Allow Pickled Files", "Read the pickled files (an unpickler that runs none of their code)")
    overwrite: bool = overwrite_field("Replace a checkpoint already in the folder")
    view_norm: float = 0.0  # the reference words' norms in the base; 0: filled in when the checkpoint is first loaded
    object_norm: float = 0.0


@dataclass
class ImportResult:
    checkpoint: str = ""
    cameras: int = 0
    objects: int = 0

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        return {"paths": {"checkpoint": self.checkpoint}, "calibration_cameras": self.cameras, "objects": self.objects}


def read_original(path: Path, what: str) -> OriginalFile:
    """A view or object mapper file, read without running its code."""
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PickleModule)  # type: ignore[arg-type]
    except Exception as exc:  # a damaged or unrelated file
        raise BadInput(f"Cannot read {path} as an original ViewNeTI mapper file: {type(exc).__name__}: {exc}") from None
    mappers = content.get("mappers") if isinstance(content, dict) else None
    if not isinstance(mappers, dict) or not mappers:
        raise BadInput(f"{path} holds no mappers (not a ViewNeTI mapper-steps-*.pt file)")
    cfg = content.get("cfg")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise BadInput(f"{path} holds no training config (cfg.model): it cannot say how its mappers read and write")
    states = {
        str(entry.get("placeholder_object_token") or key): entry["state_dict"]
        for key, entry in mappers.items()
        if isinstance(entry, dict) and "state_dict" in entry
    }
    return OriginalFile(path, what, cfg, states)


def settings(view: OriginalFile, obj: OriginalFile, width: int) -> tuple[float, tuple[float, float, float]]:
    """α and the Fourier σ both files agree on; any setting we do not implement, or one value they disagree on, refused by name."""
    refused = [f"{f.path.name}: {r}" for f in (view, obj) for r in f.refused()]
    refused += [
        f"{f.path.name}: model.word_embedding_dim {dim} (its mappers write {width})"
        for f in (view, obj)
        if (dim := int(f.value("model", "word_embedding_dim", 768))) != width
    ]
    alphas = {**view.alphas(), **obj.alphas()}
    if len(set(alphas.values())) > 1:
        refused.append("one α for every token (" + ", ".join(f"{k} {v:g}" for k, v in alphas.items()) + ")")
    sigmas = view.sigmas()
    if obj.sigmas()[:2] != sigmas[:2]:
        refused.append(f"one σ of the timestep and layer for both mappers ({sigmas[:2]} and {obj.sigmas()[:2]})")
    if refused:
        raise BadInput("The original's mappers were trained with settings we do not implement: " + "; ".join(refused))
    return next(iter(alphas.values())), sigmas


def import_original(r: ImportRequest, report: Reporter) -> ImportResult:
    if not r.allow_pickle:
        raise BadInput(
            "The original ViewNeTI files are pickles (they can run code when loaded); allow pickled weights to import them "
            "(they are read with an unpickler that runs none of their code)"
        )
    calibration = calibration_cameras(Path(r.calibration_dir))
    ranges, count = CameraRanges.fit(DTU12, calibration), len(calibration)
    views, objects = read_original(Path(r.view_file), VIEW), read_original(Path(r.object_file), OBJECT)
    view = next(iter(views.mappers.values()))  # the view file's one mapper; the object file has one per scene (88 after pre-training)
    width = int(view["output_layer.0.weight"].shape[0]) // 2
    alpha, sigmas = settings(views, objects, width)
    info = checkpoint.CheckpointInfo(
        cameras=ranges,
        word_dim=width,
        width=TRAINING_SIZE[0],
        height=TRAINING_SIZE[1],
        camera_size=list(DTU_IMAGE_SIZE),  # cal18's matrices project onto DTU's 1600×1200 images
        view_norm=r.view_norm or float(views.value("model", "target_norm_view", None) or 0.0),  # 0: from the base when loaded
        object_norm=r.object_norm or float(objects.value("model", "target_norm_object", None) or 0.0),
        alpha=alpha,
        sigmas=list(sigmas),
        base_model=str(objects.value("model", "pretrained_model_name_or_path", "") or r.base_model),
        mode="IMPORTED",
        objects=[checkpoint.TrainedObject(name, source=recorded_path(r.object_file, r.out_dir)) for name in objects.mappers],
    )
    from .mapper import Mapper, MapperSpec

    for inputs, states in ((12, [view]), (0, list(objects.mappers.values()))):
        for state in states:
            try:
                Mapper(MapperSpec(inputs, width, sigmas)).load_state_dict(state)  # the original's names and shapes, strictly
            except RuntimeError as exc:
                raise BadInput(f"The original's {'view' if inputs else 'object'} mapper does not fit ours: {exc}") from None
    checkpoint.save(Path(r.out_dir), info, view, list(objects.mappers.values()), None, r.overwrite)
    report.step(f"Imported the view mapper and {len(objects.mappers)} object mapper(s) with {count} calibration cameras")
    return ImportResult(r.out_dir, count, len(objects.mappers))
