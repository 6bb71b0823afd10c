"""``diffusion3d.capture_panorama``: an RGBD 360° panorama of the current scene.

Blender's part is the render: a temporary equirectangular Cycles camera at the
chosen point, the scene's settings changed only for the render and restored
afterwards. The engine turns the render into ``rgb.png``, ``depth.exr``,
``depth16.png`` and ``meta.json``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy

from ..engine.world.capture import CaptureRequest, CaptureResult
from .machinery import compat, declared, session
from .machinery.blender_data import load_image
from .machinery.job import EngineJobOperator, Stage, UserError
from .machinery.render_setup import PanoramaSetup, render_result, save_render_png
from .machinery.selection import RENDERABLE


def has_visible_geometry(context: bpy.types.Context) -> bool:
    return any(
        obj.type in RENDERABLE and not obj.hide_render and obj.visible_get(view_layer=context.view_layer)
        for obj in context.view_layer.objects
    )


def capture_origin(context: bpy.types.Context, choice: str, location: Any) -> tuple[float, float, float]:
    scene = context.scene
    if choice == "LOCATION":
        return tuple(location)
    if choice == "CAMERA" or (choice == "AUTO" and scene.camera is not None):
        if scene.camera is None:
            raise UserError("The scene has no active camera to capture from (choose From: 3D Cursor)")
        return tuple(scene.camera.matrix_world.translation)  # type: ignore[arg-type]
    return tuple(scene.cursor.location)  # type: ignore[arg-type]


class PanoramaRender(Stage):
    """The capture's render: a panoramic Cycles camera with the Depth pass, saved as a multilayer EXR and a colour PNG."""

    label = "Rendering panorama"

    def __init__(self, origin: tuple[float, float, float], width: int, samples: int, denoise: bool, scratch: Path) -> None:
        self.origin, self.width, self.samples, self.denoise = origin, width, samples, denoise
        self.exr, self.png = scratch / "render.exr", scratch / "rgb.png"
        self._setup: PanoramaSetup | None = None

    def start(self, context: bpy.types.Context) -> int:
        scene, view_layer = context.scene, context.view_layer
        assert scene is not None and view_layer is not None
        self._setup = PanoramaSetup(scene, self.origin, self.width, self.samples, self.denoise)
        self._setup.apply().set(view_layer, "use_pass_z", True)
        return 1

    def step(self, context: bpy.types.Context, index: int) -> dict[str, Any]:
        return {"layer": context.view_layer.name}

    def done(self, context: bpy.types.Context) -> None:
        """Save the render: a multilayer EXR with Depth, and a colour-managed PNG."""
        setup, scene = self._setup, context.scene
        assert setup is not None and scene is not None
        settings = scene.render.image_settings
        compat.set_image_format(settings, "OPEN_EXR_MULTILAYER", setup.temp.set)
        for name, value in (("color_depth", "32"), ("exr_codec", "NONE")):
            setup.temp.set(settings, name, value)
        render_result().save_render(str(self.exr), scene=scene)
        save_render_png(scene, setup.temp, self.png)

    def undo(self) -> None:
        setup, self._setup = self._setup, None
        if setup is not None:
            setup.undo()


class DIFFUSION3D_OT_capture_panorama(EngineJobOperator, bpy.types.Operator):
    """Render an RGBD 360° panorama of the scene (colour, ray-distance depth, inverse depth, metadata)"""

    bl_idname = "diffusion3d.capture_panorama"
    bl_label = "Capture RGBD Panorama"
    bl_options = {"REGISTER"}
    job = "encode_capture"
    job_label = "Capturing panorama"
    __annotations__ = declared.properties(CaptureRequest)

    _scratch: Path | None = None
    _out_dir: Path | None = None
    _render: PanoramaRender | None = None

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        """Nothing to render, or nothing to render it with (whatever the options)."""
        if not has_visible_geometry(context):
            return "Nothing to capture: the scene has no visible objects"
        if not hasattr(context.scene, "cycles"):
            return "Cycles is not available in this Blender"
        return ""

    def read(self, context: bpy.types.Context, request: CaptureRequest) -> CaptureRequest:
        position = capture_origin(context, request.origin, request.location)
        out_dir = str(session.output_folder(request.out_dir, "capture"))
        return dataclasses.replace(request, out_dir=out_dir, position=tuple(round(c, 6) for c in position), scene_name=context.scene.name)

    def stage(self, context: bpy.types.Context, request: CaptureRequest) -> PanoramaRender:
        """Make the output and scratch folders; the render."""
        self._out_dir = session.make_output_folder(Path(request.out_dir))
        self._scratch = session.new_scratch("capture")
        self._render = PanoramaRender(request.position, request.width, request.samples, request.denoise, self._scratch)
        return self._render

    def prepare(self, context: bpy.types.Context, request: CaptureRequest) -> CaptureRequest:
        render = self._render
        assert render is not None
        return dataclasses.replace(request, render_exr=str(render.exr), rgb_png=str(render.png))

    def finish(self, context: bpy.types.Context, result: CaptureResult) -> dict[str, Any]:
        session.remove_scratch(self._scratch)
        for key, non_color in (("rgb.png", False), ("depth.exr", True)):
            image, _ = load_image(result.paths[key], non_color=non_color)
            image.name = f"{Path(result.paths[key]).parent.name} {Path(key).stem}"
        settings = getattr(context.scene, "diffusion3d", None)
        if settings is not None:
            settings.last_capture = str(Path(result.paths["meta.json"]).parent)
        self.report(
            {"INFO"},
            f"Captured {result.width}×{result.height} panorama into {Path(result.paths['meta.json']).parent} "
            f"(depth {result.near:.3g}–{result.far:.3g})",
        )
        return {"paths": result.paths}

    def discard(self, context: bpy.types.Context) -> None:
        session.remove_scratch(self._scratch)
        session.remove_if_empty(self._out_dir)  # we made it; leave no empty folder behind
