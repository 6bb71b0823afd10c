"""The ``views_from_image`` job: single-image novel view synthesis in one command.

One object image and its camera → a posed set of that image → a new object
mapper fitted with a pre-trained view mapper kept frozen (``train_viewneti`` in
SINGLE_VIEW mode, the original's mode 5) → the requested cameras rendered
(``render_view``). Without the image's camera, a default is estimated from the
view mapper: azimuth 0 (seen from −Y) at the middle of its trained elevations and
distances about the target (SPHERICAL only; a DTU-12 view mapper needs the camera).

The fit (the one-image set and its checkpoint) stays in ``fit/`` beside the
views, so more views render from it later. A run that fails or is cancelled
before the fit is done leaves nothing behind; one that fails later keeps the
finished fit and says where it is.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import AUGMENTATIONS
from ..diffusion import sources
from ..errors import BadInput, EngineError
from ..imagefiles import check_writable, read_image
from ..params import (
    DEGREES,
    INPUT_FILE,
    INPUT_FOLDER,
    LENGTH,
    Inspect,
    Note,
    model_field,
    nested,
    output_folder_field,
    overwrite_field,
    param,
    seed_field,
)
from ..progress import Reporter
from ..samples import planned
from . import checkpoint
from .cameras import DTU12
from .posed import PosedSetRequest, write_posed_set
from .render import RenderViewRequest, Views, orbit_pose, render_view
from .train import SINGLE_VIEW, TrainRequest, train_viewneti

FIT, FIT_SET, FIT_CHECKPOINT = "fit", "image", "checkpoint"


@dataclass
class ImageViewsRequest:
    image: str = param("", "Image", "The object's image (a transparent background, or a plain one)", path=INPUT_FILE, cli_required=True)
    view_mapper: str = param(
        "",
        "Pre-trained",
        "A pre-trained checkpoint (viewneti-train --mode pretrain, or an imported original) whose view mapper stays frozen",
        path=INPUT_FOLDER,
        cli_required=True,
    )
    model: str = model_field(checkpoint.BASE_MODEL, "Base Model", "The Stable Diffusion 2.x the view mapper was trained on")
    out_dir: str = output_folder_field("Folder for the views, their render.json and the fit; empty: a new folder")
    image_camera: str = param("", "Image Camera", "The camera the image was seen from; empty: estimated", blender=True, cli=None)
    image_orbit: list[float] = param(
        [], "Image Orbit", "The image's camera as azimuth° elevation° distance (default: estimated)", cli_nargs=3, ui=False
    )
    image_fov: float = param(
        49.1, "Image Field of View", "The image camera's vertical field of view", unit=DEGREES, min=1.0, max=170.0, ui=False
    )
    target: tuple[float, float, float] = param(
        (0.0, 0.0, 0.0), "Target", "What the cameras look at (the object's centre)", unit=LENGTH, cli=None
    )
    fit_steps: int = param(3000, "Fit Steps", "Steps to fit the object mapper to the image", min=1, max=10**6, soft=(1, 10000))
    augmentation: str = param("AUTO", "Augmentation", "The image's random changes while fitting", choices=AUGMENTATIONS)
    camera_name: str = param("", "Camera", "The camera to render from; empty: the scene's active camera", blender=True, cli=None)
    animation: bool = param(False, "Every Frame", "One image per frame of the scene's range (an animated camera)", blender=True, cli=None)
    views: Views = nested(Views)
    seed: int = seed_field("Same seed and settings give the same fit and views")
    access: sources.ModelAccess = nested(sources.ModelAccess)
    overwrite: bool = overwrite_field()
    # Filled by the operator (a Blender camera), or from the image orbit:
    camera: list[list[float]] = field(default_factory=list)  # the image's camera-to-world (OpenGL axes); empty: estimated

    def image_pose(self) -> list[list[float]]:
        """The image's camera: as given, or at its orbit position about the target; empty: estimated from the view mapper."""
        if self.camera or not self.image_orbit:
            return self.camera
        return orbit_pose(list(self.target), *self.image_orbit).tolist()

    def check(self) -> list[Note]:
        checkpoint.check_field("view_mapper", self.view_mapper)
        return []

    def models(self) -> list[tuple[str, str, Inspect]]:
        return [("model", self.model, sources.sampled(sources.inspect_stable_diffusion, self.views.steps))]


@dataclass
class ImageViewsResult:
    paths: list[str] = field(default_factory=list)
    checkpoint: str = ""  # the fitted object mapper, with the frozen view mapper
    image_camera: list[list[float]] = field(default_factory=list)  # as given, or as estimated
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        paths = {"views": self.paths, "checkpoint": self.checkpoint}
        return {"paths": paths, "image_camera": self.image_camera, "warnings": self.warnings}


def estimated_camera(info: checkpoint.CheckpointInfo, target: list[float]) -> np.ndarray:
    """The image's camera when none is given: azimuth 0 at the middle of the view mapper's elevations and distances."""
    if info.cameras.kind == DTU12:
        raise BadInput("This view mapper reads DTU-12 cameras: give the image's camera (no default can be estimated for it)")
    low, high = info.cameras.low, info.cameras.high
    return orbit_pose(target, 0.0, (low[2] + high[2]) / 2, (low[3] + high[3]) / 2)


def views_from_image(r: ImageViewsRequest, report: Reporter) -> ImageViewsResult:
    started = time.perf_counter()
    names = r.views.file_names()
    out = Path(r.out_dir)
    check_writable(out)
    fit = out / FIT
    planned(out, 1, (*names, r.views.meta_name), r.overwrite)
    if fit.exists() and not r.overwrite:
        raise BadInput(f"{fit} already exists (enable overwrite to fit again)")
    if r.fit_steps < 1:
        raise BadInput(f"The fit needs at least 1 step, got {r.fit_steps}")
    pixels = read_image(Path(r.image)).pixels
    info = checkpoint.load(Path(r.view_mapper))[0]
    pose = r.image_pose()
    camera = np.asarray(pose, np.float64) if pose else estimated_camera(info, list(r.target))
    if camera.shape != (4, 4):
        raise BadInput(f"The image's camera must be a 4×4 camera-to-world matrix, got shape {camera.shape}")
    height, width = pixels.shape[:2]
    warnings = []
    if abs(width / height - info.width / info.height) > 0.01:
        warnings.append(
            f"The image is {width}×{height}; the view mapper was trained at {info.width}×{info.height}, so it is resized to that"
        )
    focal = (height / 2) / math.tan(math.radians(r.image_fov) / 2)
    k = [[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]
    fit_total, render_total = r.fit_steps + 2, 2 + len(names) * (r.views.steps + 3)
    report.total = 1 + fit_total + render_total
    for warning in warnings:
        report.note(warning)

    created = not fit.exists()
    try:
        posed = PosedSetRequest(
            out_dir=str(fit / FIT_SET),
            images=[r.image],
            cameras=[camera.tolist()],
            k=k,
            target=list(r.target),
            transparent=False,
            extra={"source": r.image},
            overwrite=r.overwrite,
        )
        write_posed_set(posed, report.part(0, 1))
        train = TrainRequest(
            [str(fit / FIT_SET)],
            r.model,
            str(fit / FIT_CHECKPOINT),
            mode=SINGLE_VIEW,
            view_mapper=r.view_mapper,
            steps=r.fit_steps,
            save_every=max(1, r.fit_steps // 2),  # as the original: halfway and at the end
            augmentation=r.augmentation,
            seed=r.seed,
            access=r.access,
            overwrite=r.overwrite,
        )
        fitted = train_viewneti(train, report.part(1, fit_total, "Fit: "))
    except BaseException:
        if created:
            shutil.rmtree(fit, ignore_errors=True)
        raise
    try:
        render = RenderViewRequest(
            checkpoint=fitted.checkpoint, model=r.model, out_dir=r.out_dir, views=r.views, access=r.access, overwrite=r.overwrite
        )
        rendered = render_view(render, report.part(1 + fit_total, render_total, "Views: "))
    except EngineError as exc:
        raise type(exc)(f"{exc} (the fitted object mapper is kept in {fitted.checkpoint}: more views render from it)") from exc
    return ImageViewsResult(
        rendered.paths, fitted.checkpoint, camera.tolist(), [*warnings, *fitted.warnings, *rendered.warnings], time.perf_counter() - started
    )
