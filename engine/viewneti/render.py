"""The ``render_view`` job: a trained ViewNeTI checkpoint and cameras → the object seen from each camera, as PNG files.

Cameras arrive as camera-to-world matrices (OpenGL axes, Blender's) with a
vertical field of view; they become the checkpoint's camera numbers here
(DTU-12: the projection at the training size; spherical: about the training
target), normalised by the checkpoint's ranges. A camera outside the trained
range still renders, with a warning that says how far outside it is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..cameras import camera_to_world
from ..diffusion import sources
from ..errors import BadInput
from ..imagefiles import check_writable, recorded_path
from ..params import (
    DEGREES,
    INPUT_FOLDER,
    LENGTH,
    PIXELS,
    Inspect,
    Note,
    guidance_field,
    model_field,
    nested,
    output_folder_field,
    overwrite_field,
    param,
    refuse,
    scheduler_field,
    seed_field,
    steps_field,
)
from ..progress import Reporter
from ..samples import json_file, planned, png, write_samples
from . import checkpoint
from .cameras import DTU12, at_size, projection_numbers, spherical_numbers
from .checkpoint import BASE_MODEL

MAX_VIEWS = 10_000


@dataclass
class Views:
    """Which cameras to render, and how."""

    cameras: list[list[list[float]]] = field(default_factory=list)  # 4×4 camera-to-world, OpenGL axes
    orbits: list[list[float]] = param(
        [],
        "Orbits",
        "A view to render: azimuth° elevation° distance about the object's target (repeat for more)",
        cli="--orbit",
        cli_nargs=3,
        ui=False,
    )
    numbers: list[list[float]] = field(default_factory=list)  # or the cameras' raw numbers in the checkpoint's parameterisation
    numbers_size: list[int] = field(default_factory=list)  # DTU12 numbers: the image size (w, h) they project onto
    fov_deg: float = param(
        40.0, "Field of View", "Orbit cameras' vertical field of view", unit=DEGREES, min=1.0, max=170.0, cli="--fov", ui=False
    )
    object: str = param(
        "", "Object", "Which trained object of a pre-trained checkpoint (one per posed set); empty: the first", prop="object_name"
    )
    names: list[str] = field(default_factory=list)  # file per camera; default view_0000.png, …
    meta_name: str = "render.json"  # what was rendered, and how
    width: int = param(
        768,
        "Width",
        "The views' size",
        unit=PIXELS,
        min=64,
        max=2048,
        multiple=8,
        soft=(256, 1024),
        why="the VAE works in 8-pixel blocks; SD 2.x was trained at 768, and 2048² needs about 40 GB",
        cli="--size",
        cli_fields=("width", "height"),
    )
    height: int = param(
        576,
        "Height",
        "The views' height",
        unit=PIXELS,
        min=64,
        max=2048,
        multiple=8,
        soft=(256, 1024),
        why="the VAE works in 8-pixel blocks; SD 2.x was trained at 768, and 2048² needs about 40 GB",
    )
    steps: int = steps_field(30)
    guidance: float = guidance_field(7.5)
    scheduler: str = scheduler_field("DPMPP_2M")
    seed: int = seed_field("Same seed and settings give the same views")

    def file_names(self) -> list[str]:
        """One file per camera, checked."""
        given = [len(self.cameras), len(self.orbits), len(self.numbers)]
        count = sum(given)
        if sorted(given)[1] or not 1 <= count <= MAX_VIEWS:
            raise BadInput(
                f"Give 1 to {MAX_VIEWS} cameras as matrices, orbit positions or camera numbers (one of them), "
                f"got {given[0]}, {given[1]} and {given[2]}"
            )
        names = self.names or [f"view_{i:04d}.png" for i in range(count)]
        if len(names) != count:
            raise BadInput(f"{len(names)} file names for {count} cameras")
        return names


def _output_file(text: str) -> dict[str, Any]:
    """``--out FILE``: the view's PNG, its render.json beside it as FILE's stem .json."""
    path = Path(text)
    return {"out_dir": str(path.parent), "file_name": path.name}


@dataclass
class RenderViewRequest:
    checkpoint: str = param("", "Checkpoint", "A trained ViewNeTI checkpoint folder", path=INPUT_FOLDER, cli_required=True)
    model: str = model_field(BASE_MODEL, "Base Model", "The Stable Diffusion 2.x the checkpoint was trained on")
    out_dir: str = output_folder_field(
        "Folder for the views and render.json; empty: a new folder (the command line: the PNG file to write)",
        cli_parse=_output_file,
        cli_fields=("out_dir", "file_name"),
    )
    file_name: str = param("", "File Name", "One view's file (its render.json named alike); empty: by camera or frame", cli=None, ui=False)
    camera_name: str = param("", "Camera", "The camera to render from; empty: the scene's active camera", blender=True, cli="--camera")
    animation: bool = param(False, "Every Frame", "One image per frame of the scene's range (an animated camera)", blender=True, cli=None)
    azimuth: float = param(
        0.0,
        "Azimuth",
        "Or an orbit position: degrees about the training target (0 from −Y, 90 from +X)",
        unit=DEGREES,
        min=-3600.0,
        max=3600.0,
        ui=False,
    )
    elevation: float = param(15.0, "Elevation", "The orbit position's elevation", unit=DEGREES, min=-90.0, max=90.0, ui=False)
    distance: float = param(
        0.0, "Distance", "The orbit position's distance from the target (0: render from a camera)", unit=LENGTH, min=0.0, max=1e6, ui=False
    )
    views: Views = nested(Views)
    access: sources.ModelAccess = nested(sources.ModelAccess)
    overwrite: bool = overwrite_field()

    def camera_views(self) -> Views:
        """The views to render: as given, or the one orbit position that azimuth, elevation and distance name."""
        v = self.views
        if self.distance and not (v.cameras or v.orbits or v.numbers):
            v = dataclasses.replace(v, orbits=[[self.azimuth, self.elevation, self.distance]])
        if self.file_name:
            v = dataclasses.replace(v, names=[self.file_name], meta_name=f"{Path(self.file_name).stem}.json")
        return v

    def check(self) -> list[Note]:
        checkpoint.check_field("checkpoint", self.checkpoint)
        if self.azimuth and not self.distance:
            refuse("azimuth", "an orbit position needs its distance (or render from a camera)")
        views = self.camera_views()
        if views.cameras or views.orbits or views.numbers:  # else Blender's camera fills them in
            try:
                views.file_names()
            except BadInput as exc:
                refuse("distance", str(exc))
        return []

    def models(self) -> list[tuple[str, str, Inspect]]:
        return [("model", self.model, sources.sampled(sources.inspect_stable_diffusion, self.views.steps))]


@dataclass
class RenderViewResult:
    paths: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def camera_numbers(info: checkpoint.CheckpointInfo, camera_to_world: np.ndarray, fov_deg: float, target: list[float]) -> np.ndarray:
    """A camera's raw numbers in the checkpoint's parameterisation (SPHERICAL: about the object's ``target``)."""
    if info.cameras.kind == DTU12:
        width, height = info.camera_size
        focal = (height / 2) / math.tan(math.radians(fov_deg) / 2)
        return projection_numbers(camera_to_world, focal, focal, width / 2, height / 2)
    return spherical_numbers(camera_to_world, tuple(target))  # type: ignore[arg-type]


def orbit_pose(target: list[float], azimuth: float, elevation: float, distance: float) -> np.ndarray:
    """The camera-to-world of an orbit position about an object's training target (azimuth 0 from −Y, 90 from +X)."""
    pose = camera_to_world(azimuth, elevation, distance)
    pose[:3, 3] += np.asarray(target, np.float64)
    return pose


def text_width(folder: sources.ModelFolder) -> int:
    """The base's text embedding width, from its text encoder's config (before anything is loaded)."""
    config = json.loads((folder.path / "text_encoder" / "config.json").read_text(encoding="utf-8"))
    return int(config.get("hidden_size", 0))


def render_view(r: RenderViewRequest, report: Reporter) -> RenderViewResult:
    started = time.perf_counter()
    v = r.camera_views()
    names = v.file_names()
    out = Path(r.out_dir)
    check_writable(out)
    planned(out, 1, (*names, v.meta_name), r.overwrite)  # refuses existing outputs before any model work
    info, view_state, object_states, _ = checkpoint.load(Path(r.checkpoint))
    which = info.object_index(v.object)
    target = info.objects[which].target
    if v.numbers:
        numbers = np.asarray(v.numbers, np.float64)
        if numbers.shape[1:] != (len(info.cameras.low),):
            raise BadInput(f"{info.cameras.kind} cameras have {len(info.cameras.low)} numbers, got shape {numbers.shape[1:]}")
        if v.numbers_size:
            numbers = at_size(numbers, info.cameras.kind, (v.numbers_size[0], v.numbers_size[1]), tuple(info.camera_size))  # type: ignore[arg-type]
        poses: list[np.ndarray | None] = [None] * len(numbers)  # the numbers name the cameras
    else:
        matrices = np.asarray(v.cameras, np.float64) if v.cameras else np.stack([orbit_pose(target, *orbit) for orbit in v.orbits])
        if matrices.shape[1:] != (4, 4):
            raise BadInput(f"Cameras must be 4×4 camera-to-world matrices, got shape {matrices.shape[1:]}")
        numbers = np.stack([camera_numbers(info, m, v.fov_deg, target) for m in matrices])
        poses = list(matrices)
    warnings = info.cameras.warnings(numbers)
    access = r.access
    folder = sources.inspect_stable_diffusion(access.locate(r.model, report), r.model, access.allow_pickle)
    info.check_base(text_width(folder), folder.revision, folder.name)
    report.total = 2 + len(names) * (v.steps + 3)
    for warning in warnings:
        report.note(warning)

    import torch

    from ..diffusion import loading
    from . import pipeline
    from .mapper import Mapper, MapperSpec

    device = loading.pick_device(access.device)
    dtype = loading.pick_dtype(access.precision, device)
    model = loading.load_stable_diffusion(folder, device, dtype)
    from . import text

    if not info.view_norm or not info.object_norm:  # an imported original checkpoint: the norms come from this base
        info.view_norm = float(text.word_row(model.tokenizer, model.text_encoder, info.view_word).norm())
        info.object_norm = float(text.word_row(model.tokenizer, model.text_encoder, info.object_word).norm())
    view, obj = (Mapper(MapperSpec(inputs, info.word_dim, info.sigmas)) for inputs in (len(info.cameras.low), 0))
    view.load_state_dict(view_state)
    obj.load_state_dict(object_states[which])
    mappers = pipeline.Mappers(view.to(device), obj.to(device), info.view_norm, info.object_norm, info.alpha)
    report.step(f"Loaded {folder.name} and the mappers")
    images = []
    for numbers_i in numbers:
        camera = torch.from_numpy(info.cameras.normalise(numbers_i)).float()
        settings = pipeline.NovelViewSettings(
            camera=camera, seeds=[v.seed], width=v.width, height=v.height, steps=v.steps, guidance=v.guidance, scheduler=v.scheduler
        )
        images.append(
            np.round(pipeline.generate(model, mappers, settings, report)[0] * 255).astype(np.uint8)
        )  # a sequence's frames stay small
    report.token.check()
    meta = {
        "checkpoint": recorded_path(r.checkpoint, out),
        "model": r.model,
        "revision": folder.revision,
        "object": info.objects[which].name,
        "views": [
            {"file": n, "camera_to_world": None if m is None else m.tolist(), "numbers": x.tolist()}
            for n, m, x in zip(names, poses, numbers)
        ],
        "fov_deg": v.fov_deg,
        "steps": v.steps,
        "guidance": v.guidance,
        "scheduler": v.scheduler,
        "seed": v.seed,
        "engine_version": __version__,
    }
    files = {name: png(image) for name, image in zip(names, images)}
    files[v.meta_name] = json_file(meta)
    paths = write_samples(out, [files], r.overwrite)[0]
    report.step("Files written")
    return RenderViewResult([paths[name] for name in names], warnings, time.perf_counter() - started)
