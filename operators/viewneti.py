"""ViewNeTI in Blender: ``render_training_views`` makes a posed image set of the chosen objects, ``train_viewneti`` fits the
mappers to it, ``generate_view`` renders a trained checkpoint from a Blender camera, and ``views_from_image`` fits an
object mapper to one image (with a pre-trained view mapper) and renders Blender cameras from it.

Blender's part is the renders: the objects (the selection, a named object or
collection, or the whole scene) in a scene of their own, from cameras on an
orbit or over the hemisphere around their centre. The engine writes the set
(``images/`` and ``cameras.json`` with K, R, t, the camera matrix and both
camera parameterisations), all-or-nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, StringProperty

from ..engine.cameras import intrinsics
from ..engine.choices import AUGMENTATIONS, CAMERA_PARAMETERISATIONS, SCHEDULERS, TRAINING_LAYOUTS, TRAINING_MODES
from ..engine.imagefiles import read_image
from ..engine.viewneti.posed import PosedSetRequest, PosedSetResult, posed_sets_in, training_poses
from ..engine.viewneti.render import RenderViewRequest, RenderViewResult, Views
from ..engine.viewneti.single_image import ImageViewsRequest, ImageViewsResult
from ..engine.viewneti.train import PRETRAIN, TrainRequest, TrainResult
from .machinery import session
from .machinery.blender_data import load_image
from .machinery.isolated_scene import IsolatedScene
from .machinery.job import EngineJobOperator, Stage, UserError
from .machinery.selection import RENDERABLE, chosen_objects, world_bounds

TRAINING_VIEWS_OPTIONS: dict[str, Any] = {
    "output_dir": StringProperty(
        name="Output Folder", description="Empty: a new folder under the default output folder", subtype="DIR_PATH"
    ),
    "object_name": StringProperty(
        name="Objects", description="An object or collection; empty: the selected objects, or the whole scene if none"
    ),
    "views": IntProperty(name="Views", description="How many cameras", default=24, min=2, soft_max=200),
    "layout": EnumProperty(name="Layout", items=TRAINING_LAYOUTS.items(), default=TRAINING_LAYOUTS.default),
    "elevation": FloatProperty(name="Elevation", description="The orbit's elevation in degrees", default=15.0, min=-89.0, max=89.0),
    "distance": FloatProperty(
        name="Distance", description="Camera distance from the target; 0: the objects fill the frame", default=0.0, min=0.0
    ),
    "fov": FloatProperty(name="Field of View", description="Vertical field of view in degrees", default=40.0, min=5.0, max=120.0),
    "width": IntProperty(name="Width", default=512, min=16, soft_max=2048),
    "height": IntProperty(name="Height", default=384, min=16, soft_max=2048),
    "samples": IntProperty(name="Samples", description="Cycles samples per pixel", default=32, min=1, soft_max=1024),
    "transparent": BoolProperty(name="Transparent", description="Keep the background transparent (else the colour below)", default=True),
    "background": FloatVectorProperty(name="Background", subtype="COLOR", size=3, min=0.0, max=1.0, default=(1.0, 1.0, 1.0)),
    "seed": IntProperty(name="Seed", description="The hemisphere's sampling", default=0, min=0),
    "overwrite": BoolProperty(name="Overwrite", description="Replace a set already in the output folder", default=False),
}


def training_objects(context: bpy.types.Context, name: str) -> list[bpy.types.Object]:
    """The named object or collection, else the selection, else every object in the scene that renders."""
    if name or context.selected_objects:
        return chosen_objects(context, name)
    everything = [o for o in context.scene.objects if o.type in RENDERABLE and not o.hide_render]
    if not everything:
        raise UserError("Nothing to render: the scene has no visible objects")
    return everything


class TrainingRender(Stage):
    """One render per camera, in a scene of its own, saved as an RGBA PNG in the scratch folder."""

    label = "Rendering training views"
    render_name = "A training view's render"

    def __init__(
        self, objects: list[bpy.types.Object], poses: list[np.ndarray], fov: float, size: tuple[int, int], samples: int, scratch: Path
    ):
        self.objects, self.poses, self.fov, self.size, self.samples, self.scratch = objects, poses, fov, size, samples, scratch
        self._isolated = IsolatedScene("Diffusion3D Training Views")

    def image(self, index: int) -> Path:
        return self.scratch / f"{index:03d}.png"

    def start(self, context: bpy.types.Context) -> int:
        scene = context.scene
        assert scene is not None
        self._isolated.open(scene, self.objects, *self.size, self.samples)
        return len(self.poses)

    def step(self, context: bpy.types.Context, index: int) -> dict[str, Any]:
        self._isolated.place_camera(self.poses[index], fov_deg=self.fov)
        assert self._isolated.scene is not None
        return {"scene": self._isolated.scene.name}

    def rendered(self, context: bpy.types.Context, index: int) -> None:
        self._isolated.save_render(self.image(index))

    def undo(self) -> None:
        self._isolated.close()


class DIFFUSION3D_OT_render_training_views(EngineJobOperator, bpy.types.Operator):
    """Render the chosen objects from cameras around them into a posed image set for ViewNeTI (images and cameras.json)"""

    bl_idname = "diffusion3d.render_training_views"
    bl_label = "Render Training Views"
    bl_options = {"REGISTER"}
    job_label = "Writing training views"
    __annotations__ = dict(TRAINING_VIEWS_OPTIONS)

    _render: TrainingRender | None = None
    _target: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def stage(self, context: bpy.types.Context) -> TrainingRender:
        if not hasattr(context.scene, "cycles"):
            raise UserError("Cycles is not available in this Blender")
        objects = training_objects(context, self.object_name)
        low, high = world_bounds(context, objects)
        centre = (low + high) / 2
        radius = float(np.linalg.norm(high - low)) / 2
        if not radius > 0:
            raise UserError(f"{objects[0].name} has no extent to render")
        distance = self.distance or radius / np.sin(np.radians(self.fov) / 2) * 1.05  # the bounding sphere just fits
        self._target = (float(centre[0]), float(centre[1]), float(centre[2]))
        poses = training_poses(self.layout, self.views, self.elevation, distance, self.seed, self._target)
        scratch = Path(tempfile.mkdtemp(prefix="diffusion3d-training-views-"))
        self._render = TrainingRender(objects, poses, self.fov, (self.width, self.height), self.samples, scratch)
        return self._render

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        render = self._render
        assert render is not None
        focal = (self.height / 2) / np.tan(np.radians(self.fov) / 2)
        request = PosedSetRequest(
            out_dir=str(session.output_folder(self.output_dir, "training-views")),
            images=[str(render.image(i)) for i in range(len(render.poses))],
            cameras=[p.tolist() for p in render.poses],
            k=[[focal, 0.0, self.width / 2], [0.0, focal, self.height / 2], [0.0, 0.0, 1.0]],
            target=list(self._target),
            background=None if self.transparent else list(self.background),
            extra={"layout": self.layout, "seed": self.seed, "objects": [o.name for o in render.objects], "fov_deg": self.fov},
            overwrite=self.overwrite,
        )
        return "write_posed_set", request

    def finish(self, context: bpy.types.Context, result: PosedSetResult) -> None:
        self.discard(context)
        self.report({"INFO"}, f"Wrote {result.views} training views ({result.width}×{result.height}) into {result.out_dir}")

    def discard(self, context: bpy.types.Context) -> None:
        if self._render is not None:
            session.remove_scratch(self._render.scratch)


GENERATE_VIEW_OPTIONS: dict[str, Any] = {
    "checkpoint": StringProperty(name="Checkpoint", description="A trained ViewNeTI checkpoint folder", subtype="DIR_PATH"),
    "model": StringProperty(
        name="Base Model", description="The Stable Diffusion 2.x the checkpoint was trained on", default="stabilityai/stable-diffusion-2-1"
    ),
    "camera_name": StringProperty(name="Camera", description="Empty: the scene's active camera"),
    "object_name": StringProperty(
        name="Object", description="Which trained object of a pre-trained checkpoint (one per posed set); empty: the first"
    ),
    "animation": BoolProperty(
        name="Every Frame", description="One image per frame of the scene's range (an animated camera)", default=False
    ),
    "width": IntProperty(name="Width", default=768, min=64, soft_max=2048, step=8),
    "height": IntProperty(name="Height", default=576, min=64, soft_max=2048, step=8),
    "steps": IntProperty(name="Steps", default=30, min=1, soft_max=200),
    "guidance": FloatProperty(name="Guidance", default=7.5, min=0.0, soft_max=20.0),
    "seed": IntProperty(name="Seed", default=0, min=0),
    "scheduler": EnumProperty(name="Sampler", items=SCHEDULERS.items(), default="DPMPP_2M"),
    "output_dir": StringProperty(
        name="Output Folder", description="Empty: a new folder under the default output folder", subtype="DIR_PATH"
    ),
    "overwrite": BoolProperty(name="Overwrite", default=False),
}


def vertical_fov(camera: bpy.types.Object, width: int, height: int) -> float:
    """The camera's vertical field of view in degrees for a width × height image (its lens, sensor and fit)."""
    data = camera.data
    k = intrinsics(data.lens, data.sensor_width, width, height, data.sensor_fit, data.sensor_height)
    return float(np.degrees(2 * np.arctan(height / 2 / k[1, 1])))


def scene_camera(name: str, scene: bpy.types.Scene) -> bpy.types.Object:
    """The named camera, or the scene's active one; a perspective camera."""
    camera = bpy.data.objects.get(name) if name else scene.camera
    if camera is None or camera.type != "CAMERA":
        raise UserError(f"No camera named {name!r}" if name else "The scene has no active camera")
    if camera.data.type != "PERSP":
        raise UserError(f"{camera.name} is not a perspective camera")
    return camera


def requested_views(op: Any, context: bpy.types.Context) -> Views:
    """What a view operator renders: its camera (named, or the active one) at this frame or every frame, and how."""
    scene = context.scene
    assert scene is not None
    camera = scene_camera(op.camera_name, scene)
    frames = list(range(scene.frame_start, scene.frame_end + 1)) if op.animation else [scene.frame_current]
    now, matrices = scene.frame_current, []
    try:
        for frame in frames:
            scene.frame_set(frame)
            matrices.append([list(row) for row in camera.matrix_world])
    finally:
        scene.frame_set(now)
    return Views(
        cameras=matrices,
        fov_deg=vertical_fov(camera, op.width, op.height),
        names=[f"frame_{f:04d}.png" for f in frames] if op.animation else [f"{camera.name}.png"],
        width=op.width,
        height=op.height,
        steps=op.steps,
        guidance=op.guidance,
        scheduler=op.scheduler,
        seed=op.seed,
    )


class DIFFUSION3D_OT_generate_view(EngineJobOperator, bpy.types.Operator):
    """Render the trained object from the active camera (or every frame of an animated one) with a ViewNeTI checkpoint"""

    bl_idname = "diffusion3d.generate_view"
    bl_label = "Generate View"
    bl_options = {"REGISTER"}
    job_label = "Generating view"
    __annotations__ = dict(GENERATE_VIEW_OPTIONS)

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        views = requested_views(self, context)
        views.object = self.object_name
        if not self.checkpoint:
            raise UserError("Choose a ViewNeTI checkpoint folder")
        request = RenderViewRequest(
            checkpoint=bpy.path.abspath(self.checkpoint),
            model=self.model,
            out_dir=str(session.output_folder(self.output_dir, "view")),
            views=views,
            access=session.model_access(session.preferences(context)),
            overwrite=self.overwrite,
        )
        return "render_view", request

    def finish(self, context: bpy.types.Context, result: RenderViewResult) -> None:
        show_views(self, context, result.paths, result.warnings, result.seconds)


def show_views(op: Any, context: bpy.types.Context, paths: list[str], warnings: list[str], seconds: float) -> None:
    """The rendered views in the Image Editor (a sequence plays), with the job's warnings and one line of what was made."""
    image, _ = load_image(paths[0])
    if len(paths) > 1:
        image.source = "SEQUENCE"  # the frames play in the Image Editor
    for area in context.screen.areas if context.screen is not None else ():
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = image
            break
    for warning in warnings:
        op.report({"WARNING"}, warning)
    op.report({"INFO"}, f"Rendered {len(paths)} view{'s' if len(paths) != 1 else ''} in {seconds:.1f} s: {paths[0]}")


TRAIN_OPTIONS: dict[str, Any] = {
    "data_dir": StringProperty(
        name="Training Views",
        description="A posed image set (Render Training Views), or a folder of them (pre-training reads every one)",
        subtype="DIR_PATH",
    ),
    "model": GENERATE_VIEW_OPTIONS["model"],
    "output_dir": StringProperty(name="Checkpoint", description="The checkpoint folder; empty: a new one", subtype="DIR_PATH"),
    "mode": EnumProperty(name="Mode", items=TRAINING_MODES.items(), default=TRAINING_MODES.default),
    "view_mapper": StringProperty(
        name="Pre-trained", description="Single view: the pre-trained checkpoint whose view mapper stays frozen", subtype="DIR_PATH"
    ),
    "parameterisation": EnumProperty(name="Cameras", items=CAMERA_PARAMETERISATIONS.items(), default=CAMERA_PARAMETERISATIONS.default),
    "augmentation": EnumProperty(name="Augmentation", items=AUGMENTATIONS.items(), default=AUGMENTATIONS.default),
    "steps": IntProperty(name="Steps", description="Optimizer steps", default=3000, min=1, soft_max=50000),
    "width": IntProperty(name="Width", default=512, min=64, soft_max=1024, step=64),
    "height": IntProperty(name="Height", default=384, min=64, soft_max=1024, step=64),
    "save_every": IntProperty(name="Save Every", default=500, min=1),
    "seed": IntProperty(name="Seed", default=0, min=0),
    "resume": BoolProperty(name="Resume", description="Continue the run whose checkpoint is in the folder", default=False),
    "overwrite": BoolProperty(name="Overwrite", default=False),
}


class DIFFUSION3D_OT_train_viewneti(EngineJobOperator, bpy.types.Operator):
    """Fit ViewNeTI's mappers to posed image sets: one scene, pre-training over several, or one view with a pre-trained view mapper (resumable)"""

    bl_idname = "diffusion3d.train_viewneti"
    bl_label = "Train ViewNeTI"
    bl_options = {"REGISTER"}
    job_label = "Training ViewNeTI"
    __annotations__ = dict(TRAIN_OPTIONS)

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        if not self.data_dir:
            raise UserError("Choose a folder of training views")
        data = Path(bpy.path.abspath(self.data_dir))
        request = TrainRequest(
            data_dirs=[str(p) for p in (posed_sets_in(data) if self.mode == PRETRAIN else [data])],
            model=self.model,
            out_dir=str(session.output_folder(self.output_dir, "viewneti")),
            mode=self.mode,
            view_mapper=bpy.path.abspath(self.view_mapper) if self.view_mapper else "",
            parameterisation=self.parameterisation,
            augmentation=self.augmentation,
            steps=self.steps,
            width=self.width,
            height=self.height,
            save_every=self.save_every,
            seed=self.seed,
            resume=self.resume,
            access=session.model_access(session.preferences(context)),
            overwrite=self.overwrite,
        )
        return "train_viewneti", request

    def finish(self, context: bpy.types.Context, result: TrainResult) -> None:
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
        self.report({"INFO"}, f"Trained {result.steps_done} steps in {result.seconds / 60:.1f} min{last}: {result.checkpoint}")


IMAGE_VIEWS_OPTIONS: dict[str, Any] = {
    "image": StringProperty(name="Image", description="The object's image (a transparent background, or a plain one)", subtype="FILE_PATH"),
    "view_mapper": TRAIN_OPTIONS["view_mapper"],
    "image_camera": StringProperty(name="Image Camera", description="The camera the image was seen from; empty: estimated"),
    "target": FloatVectorProperty(name="Target", description="What the cameras look at (the object's centre)", subtype="TRANSLATION"),
    "fit_steps": IntProperty(name="Fit Steps", description="Steps to fit the object mapper to the image", default=3000, min=1),
    **{k: v for k, v in GENERATE_VIEW_OPTIONS.items() if k not in ("checkpoint", "object_name")},
}


class DIFFUSION3D_OT_views_from_image(EngineJobOperator, bpy.types.Operator):
    """One object image → new views from Blender cameras: an object mapper fitted to it, a pre-trained view mapper kept frozen"""

    bl_idname = "diffusion3d.views_from_image"
    bl_label = "Views From Image"
    bl_options = {"REGISTER"}
    job_label = "Views from one image"
    __annotations__ = dict(IMAGE_VIEWS_OPTIONS)

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        if not self.image:
            raise UserError("Choose the object's image")
        if not self.view_mapper:
            raise UserError("Choose a pre-trained view mapper (a checkpoint folder from pre-training)")
        views = requested_views(self, context)
        image = bpy.path.abspath(self.image)
        camera, fov = [], 49.1
        if self.image_camera:
            assert context.scene is not None
            seen_from = scene_camera(self.image_camera, context.scene)
            height, width = read_image(image).pixels.shape[:2]
            camera, fov = [list(row) for row in seen_from.matrix_world], vertical_fov(seen_from, width, height)
        request = ImageViewsRequest(
            image=image,
            view_mapper=bpy.path.abspath(self.view_mapper),
            model=self.model,
            out_dir=str(session.output_folder(self.output_dir, "views-from-image")),
            views=views,
            camera=camera,
            fov_deg=fov,
            target=list(self.target),
            fit_steps=self.fit_steps,
            seed=self.seed,
            access=session.model_access(session.preferences(context)),
            overwrite=self.overwrite,
        )
        return "views_from_image", request

    def finish(self, context: bpy.types.Context, result: ImageViewsResult) -> None:
        show_views(self, context, result.paths, result.warnings, result.seconds)
