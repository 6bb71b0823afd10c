"""``diffusion3d.capture_panorama``: an RGBD 360° panorama of the current scene.

Blender's part is the render: a temporary equirectangular Cycles camera at the
chosen point, the scene's settings changed only for the render and restored
afterwards. The engine turns the render into ``rgb.png``, ``depth.exr``,
``depth16.png`` and ``meta.json``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatVectorProperty, IntProperty, StringProperty

from ..engine.errors import BadInput
from ..engine.world.capture import CaptureRequest, CaptureResult, check_outputs
from .machinery import compat, session
from .machinery.blender_data import load_image
from .machinery.job import EngineJobOperator, Stage, UserError
from .machinery.render_setup import PanoramaSetup, render_result, save_render_png
from .machinery.selection import RENDERABLE

CAPTURE_OPTIONS: dict[str, Any] = {
    "output_dir": StringProperty(
        name="Output Folder",
        description="Folder for rgb.png, depth.exr, depth16.png and meta.json; empty: a new folder under the default output folder",
        subtype="DIR_PATH",
        default="",
    ),
    "width": IntProperty(
        name="Width", description="Panorama width in pixels; the height is half of it", default=1024, soft_min=64, soft_max=8192
    ),
    "samples": IntProperty(name="Samples", description="Cycles samples per pixel", default=32, soft_min=1, soft_max=4096),
    "denoise": BoolProperty(name="Denoise", description="Denoise the colour render", default=True),
    "origin": EnumProperty(
        name="From",
        items=[
            ("AUTO", "Auto", "The active camera's location, or the 3D cursor when there is no camera"),
            ("CAMERA", "Camera", "The active camera's location"),
            ("CURSOR", "3D Cursor", "The 3D cursor"),
            ("LOCATION", "Location", "The location given below"),
        ],
        default="AUTO",
    ),
    "location": FloatVectorProperty(name="Location", subtype="TRANSLATION", size=3, default=(0.0, 0.0, 0.0)),
    "overwrite": BoolProperty(name="Overwrite", description="Replace files already in the output folder", default=False),
}


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
    job_label = "Capturing panorama"
    __annotations__ = dict(CAPTURE_OPTIONS)

    _scratch: Path | None = None
    _out_dir: Path | None = None
    _render: PanoramaRender | None = None

    def stage(self, context: bpy.types.Context) -> PanoramaRender:
        """Check the options and the scene; make the output and scratch folders."""
        if self.width < 16 or self.width > 16384 or self.width % 2:
            raise UserError(f"Panorama width must be an even number from 16 to 16384, got {self.width}")
        if self.samples < 1:
            raise UserError(f"Samples must be at least 1, got {self.samples}")
        if not has_visible_geometry(context):
            raise UserError("Nothing to capture: the scene has no visible objects")
        if not hasattr(context.scene, "cycles"):
            raise UserError("Cycles is not available in this Blender")
        origin = capture_origin(context, self.origin, self.location)
        out_dir = session.output_folder(self.output_dir, "capture")
        try:
            check_outputs(out_dir, self.overwrite)
            out_dir.mkdir(parents=True, exist_ok=True)
        except BadInput as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"Cannot write to {out_dir}: {exc.strerror or exc}") from None
        self._out_dir = out_dir
        self._scratch = Path(tempfile.mkdtemp(prefix="diffusion3d-capture-"))
        self._render = PanoramaRender(origin, self.width, self.samples, self.denoise, self._scratch)
        return self._render

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        render = self._render
        assert render is not None
        request = CaptureRequest(
            render_exr=str(render.exr),
            rgb_png=str(render.png),
            out_dir=str(self._out_dir),
            origin=tuple(round(c, 6) for c in render.origin),
            scene_name=context.scene.name,
            samples=self.samples,
            overwrite=self.overwrite,
        )
        return "encode_capture", request

    def finish(self, context: bpy.types.Context, result: CaptureResult) -> None:
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

    def discard(self, context: bpy.types.Context) -> None:
        session.remove_scratch(self._scratch)
        session.remove_if_empty(self._out_dir)  # we made it; leave no empty folder behind
