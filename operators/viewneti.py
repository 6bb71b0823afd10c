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

import dataclasses
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..engine.cameras import intrinsics
from ..engine.imagefiles import read_image
from ..engine.viewneti.posed import PosedSetRequest, PosedSetResult, posed_sets_in, training_poses
from ..engine.viewneti.render import RenderViewRequest, RenderViewResult, Views
from ..engine.viewneti.single_image import ImageViewsRequest, ImageViewsResult
from ..engine.viewneti.train import PRETRAIN, TrainRequest, TrainResult
from .machinery import declared, session
from .machinery.blender_data import load_image
from .machinery.isolated_scene import IsolatedScene
from .machinery.job import EngineJobOperator, Stage, UserError
from .machinery.selection import RENDERABLE, chosen_objects, world_bounds


def training_objects(context: bpy.types.Context, names: str) -> list[bpy.types.Object]:
    """The named objects or collections, else the selection, else every object in the scene that renders."""
    if names or context.selected_objects:
        return chosen_objects(context, names)
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
    job = "write_posed_set"
    job_label = "Writing training views"
    __annotations__ = declared.properties(PosedSetRequest)

    _render: TrainingRender | None = None
    _objects: list[bpy.types.Object] = []

    def read(self, context: bpy.types.Context, request: PosedSetRequest) -> PosedSetRequest:
        """The objects, the target they orbit, and the output folder."""
        if not hasattr(context.scene, "cycles"):
            raise UserError("Cycles is not available in this Blender")
        self._objects = training_objects(context, request.object_name)
        low, high = world_bounds(context, self._objects)
        if not float(np.linalg.norm(high - low)) > 0:
            raise UserError(f"{self._objects[0].name} has no extent to render")
        centre = (low + high) / 2
        out_dir = str(session.output_folder(request.out_dir, "training-views"))
        return dataclasses.replace(request, target=[float(c) for c in centre], out_dir=out_dir)

    def stage(self, context: bpy.types.Context, request: PosedSetRequest) -> TrainingRender:
        low, high = world_bounds(context, self._objects)
        radius = float(np.linalg.norm(high - low)) / 2
        distance = request.distance or radius / np.sin(np.radians(request.fov) / 2) * 1.05  # the bounding sphere just fits
        poses = training_poses(request.layout, request.views, request.elevation, distance, request.seed, tuple(request.target))  # type: ignore[arg-type]
        scratch = session.new_scratch("training-views")
        self._render = TrainingRender(self._objects, poses, request.fov, (request.width, request.height), request.samples, scratch)
        return self._render

    def prepare(self, context: bpy.types.Context, request: PosedSetRequest) -> PosedSetRequest:
        render = self._render
        assert render is not None
        focal = (request.height / 2) / np.tan(np.radians(request.fov) / 2)
        return dataclasses.replace(
            request,
            images=[str(render.image(i)) for i in range(len(render.poses))],
            cameras=[p.tolist() for p in render.poses],
            k=[[focal, 0.0, request.width / 2], [0.0, focal, request.height / 2], [0.0, 0.0, 1.0]],
            extra={"layout": request.layout, "seed": request.seed, "objects": [o.name for o in render.objects], "fov_deg": request.fov},
        )

    def finish(self, context: bpy.types.Context, result: PosedSetResult) -> dict[str, Any]:
        self.discard(context)
        self.report({"INFO"}, f"Wrote {result.views} training views ({result.width}×{result.height}) into {result.out_dir}")
        return {"paths": {"dataset": result.out_dir, "cameras": str(Path(result.out_dir) / "cameras.json")}, "views": result.views}

    def discard(self, context: bpy.types.Context) -> None:
        if self._render is not None:
            session.remove_scratch(self._render.scratch)


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


def camera_views(context: bpy.types.Context, views: Views, camera_name: str, animation: bool) -> Views:
    """``views`` from a Blender camera (named, or the active one) at this frame or every frame of the scene's range."""
    scene = context.scene
    assert scene is not None
    camera = scene_camera(camera_name, scene)
    frames = list(range(scene.frame_start, scene.frame_end + 1)) if animation else [scene.frame_current]
    now, matrices = scene.frame_current, []
    try:
        for frame in frames:
            scene.frame_set(frame)
            matrices.append([list(row) for row in camera.matrix_world])
    finally:
        scene.frame_set(now)
    return dataclasses.replace(
        views,
        cameras=matrices,
        orbits=[],
        fov_deg=vertical_fov(camera, views.width, views.height),
        names=[f"frame_{f:04d}.png" for f in frames] if animation else [f"{camera.name}.png"],
    )


class DIFFUSION3D_OT_generate_view(EngineJobOperator, bpy.types.Operator):
    """Render the trained object from the active camera (or every frame of an animated one) with a ViewNeTI checkpoint"""

    bl_idname = "diffusion3d.generate_view"
    bl_label = "Generate View"
    bl_options = {"REGISTER"}
    job = "render_view"
    job_label = "Generating view"
    __annotations__ = declared.properties(RenderViewRequest)

    def read(self, context: bpy.types.Context, request: RenderViewRequest) -> RenderViewRequest:
        """The camera's views (an orbit position given instead: those), and the output folder."""
        views = request.views if request.distance else camera_views(context, request.views, request.camera_name, request.animation)
        if not request.checkpoint:
            raise UserError("Choose a ViewNeTI checkpoint folder")
        return dataclasses.replace(request, views=views, out_dir=str(session.output_folder(request.out_dir, "view")))

    def finish(self, context: bpy.types.Context, result: RenderViewResult) -> dict[str, Any]:
        show_views(self, context, result.paths, result.warnings, result.seconds)
        return {"paths": {"image": result.paths[0]} if len(result.paths) == 1 else {"images": result.paths}, "warnings": result.warnings}


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


class DIFFUSION3D_OT_train_viewneti(EngineJobOperator, bpy.types.Operator):
    """Fit ViewNeTI's mappers to posed image sets: one scene, pre-training over several, or one view with a pre-trained view mapper (resumable)"""

    bl_idname = "diffusion3d.train_viewneti"
    bl_label = "Train ViewNeTI"
    bl_options = {"REGISTER"}
    job = "train_viewneti"
    job_label = "Training ViewNeTI"
    __annotations__ = declared.properties(TrainRequest)

    def read(self, context: bpy.types.Context, request: TrainRequest) -> TrainRequest:
        """Pre-training reads every posed set in the chosen folder; the checkpoint folder."""
        if not request.data_dirs:
            raise UserError("Choose a folder of training views")
        data = [str(p) for p in posed_sets_in(Path(request.data_dirs[0]))] if request.mode == PRETRAIN else request.data_dirs
        return dataclasses.replace(request, data_dirs=data, out_dir=str(session.output_folder(request.out_dir, "viewneti")))

    def finish(self, context: bpy.types.Context, result: TrainResult) -> dict[str, Any]:
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
        self.report({"INFO"}, f"Trained {result.steps_done} steps in {result.seconds / 60:.1f} min{last}: {result.checkpoint}")
        return result.summary()


class DIFFUSION3D_OT_views_from_image(EngineJobOperator, bpy.types.Operator):
    """One object image → new views from Blender cameras: an object mapper fitted to it, a pre-trained view mapper kept frozen"""

    bl_idname = "diffusion3d.views_from_image"
    bl_label = "Views From Image"
    bl_options = {"REGISTER"}
    job = "views_from_image"
    job_label = "Views from one image"
    __annotations__ = declared.properties(ImageViewsRequest)

    def read(self, context: bpy.types.Context, request: ImageViewsRequest) -> ImageViewsRequest:
        """The views from the Blender camera, the image's camera if one is named, and the output folder."""
        if not request.image:
            raise UserError("Choose the object's image")
        if not request.view_mapper:
            raise UserError("Choose a pre-trained view mapper (a checkpoint folder from pre-training)")
        views = camera_views(context, request.views, request.camera_name, request.animation)
        camera, fov = request.camera, request.image_fov
        if request.image_camera:
            assert context.scene is not None
            seen_from = scene_camera(request.image_camera, context.scene)
            height, width = read_image(request.image).pixels.shape[:2]
            camera, fov = [list(row) for row in seen_from.matrix_world], vertical_fov(seen_from, width, height)
        out_dir = str(session.output_folder(request.out_dir, "views-from-image"))
        return dataclasses.replace(request, views=views, camera=camera, image_fov=fov, out_dir=out_dir)

    def finish(self, context: bpy.types.Context, result: ImageViewsResult) -> dict[str, Any]:
        show_views(self, context, result.paths, result.warnings, result.seconds)
        return result.summary()
