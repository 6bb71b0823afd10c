"""Import of the original ViewNeTI's released mappers (``mapper-steps-N_view.pt`` / ``_object.pt``) into our checkpoint format.

Those files are pickles: besides the mappers' state dicts they hold pickled
modules of the original code (the Fourier encoder). They are read only when
pickles are allowed, and then with an unpickler that rebuilds tensors and
plain containers and turns every other class into an inert placeholder, so no
code from the file runs. The Fourier matrix is not taken from them: it is
rebuilt from seed 0, as the original builds it. The original does not store
its camera ranges either (it recomputes them from DTU's calibration files), so
the import reads the 3×4 ``pos_*.txt`` matrices of that calibration folder.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput
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


@dataclass
class ImportRequest:
    view_file: str  # mapper-steps-N_view.pt
    object_file: str  # mapper-steps-N_object.pt (mode 5: one object mapper)
    calibration_dir: str  # DTU's Calibration/cal18 (pos_001.txt …): the camera ranges the original used
    out_dir: str
    base_model: str = "stabilityai/stable-diffusion-2-1"
    view_norm: float = 0.0  # the reference words' norms in the base; 0: filled in when the checkpoint is first loaded
    object_norm: float = 0.0
    allow_pickle: bool = False
    overwrite: bool = False


@dataclass
class ImportResult:
    checkpoint: str = ""
    cameras: int = 0
    objects: int = 0


def read_original(path: Path) -> dict[str, Any]:
    """The mappers' state dicts by their object token (or key), read without running the file's code."""
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PickleModule)  # type: ignore[arg-type]
    except Exception as exc:  # a damaged or unrelated file
        raise BadInput(f"Cannot read {path} as an original ViewNeTI mapper file: {type(exc).__name__}: {exc}") from None
    mappers = content.get("mappers") if isinstance(content, dict) else None
    if not isinstance(mappers, dict) or not mappers:
        raise BadInput(f"{path} holds no mappers (not a ViewNeTI mapper-steps-*.pt file)")
    return {
        str(entry.get("placeholder_object_token") or key): entry["state_dict"]
        for key, entry in mappers.items()
        if isinstance(entry, dict) and "state_dict" in entry
    }


def import_original(r: ImportRequest, report: Reporter) -> ImportResult:
    if not r.allow_pickle:
        raise BadInput(
            "The original ViewNeTI files are pickles (they can run code when loaded); allow pickled weights to import them "
            "(they are read with an unpickler that runs none of their code)"
        )
    calibration = calibration_cameras(Path(r.calibration_dir))
    ranges, count = CameraRanges.fit(DTU12, calibration), len(calibration)
    views, objects = read_original(Path(r.view_file)), read_original(Path(r.object_file))
    view = next(iter(views.values()))  # the view file's one mapper; the object file has one per scene (88 after pre-training)
    width = int(view["output_layer.0.weight"].shape[0]) // 2
    info = checkpoint.CheckpointInfo(
        cameras=ranges,
        word_dim=width,
        width=512,
        height=384,
        camera_size=list(DTU_IMAGE_SIZE),  # cal18's matrices project onto DTU's 1600×1200 images
        view_norm=r.view_norm,
        object_norm=r.object_norm,
        base_model=r.base_model,
        mode="IMPORTED",
        objects=[checkpoint.TrainedObject(name, source=r.object_file) for name in objects],
    )
    from .mapper import Mapper, MapperSpec

    Mapper(MapperSpec(12, width)).load_state_dict(view)  # the original's names and shapes, strictly
    for state in objects.values():
        Mapper(MapperSpec(0, width)).load_state_dict(state)
    checkpoint.save(Path(r.out_dir), info, view, list(objects.values()), None, r.overwrite)
    report.step(f"Imported the view mapper and {len(objects)} object mapper(s) with {count} calibration cameras")
    return ImportResult(r.out_dir, count, len(objects))
