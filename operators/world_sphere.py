"""``diffusion3d.build_world_sphere``: RGB + depth panorama → displaced sphere mesh.

The engine computes the geometry; this operator reads the two images, sends
the depth, and turns the returned arrays into a mesh object with an emission
material, all in bulk on the main thread.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..engine.errors import BadInput
from ..engine.world import depth as depthlib
from ..engine.world.splats import READING
from ..engine.world.world_sphere import LayeredWorldRequest, WorldSphereRequest, WorldSphereResult
from .machinery import declared
from .machinery.blender_data import emission_material, image_pixels, load_image, mesh_from_sphere, packed_image
from .machinery.job import EngineJobOperator, UserError
from .stereo_rig import LAYER_KEY

#: Blender image formats that hold real numbers (metric distances): Auto for an image with no file on disk.
FLOAT_FORMATS = {"OPEN_EXR", "OPEN_EXR_MULTILAYER", "HDR"}


class WorldSphereOperator(EngineJobOperator):
    """What both world operators do: a single sphere, or a layered world (Blender does not register a subclass of a
    registered operator class, so each is its own class on this one)."""

    bl_options = {"REGISTER", "UNDO"}
    job = "world_sphere"

    _loaded: list[bpy.types.Image] = []
    _rgb: bpy.types.Image | None = None
    _sources: dict[str, str] = {}
    _placement: tuple[float, ...] = (0.0, 0.0, 0.0)

    def _image(self, name: str, path: str, what: str, non_color: bool) -> bpy.types.Image:
        if name:
            image = bpy.data.images.get(name)
            if image is None:
                raise UserError(f"No image named {name!r} for the {what}")
            return image
        if not path:
            raise UserError(f"Choose the {what} (a file or a loaded image), or capture a panorama first")
        try:
            image, new = load_image(path, non_color=non_color)
        except ValueError as exc:
            raise UserError(f"{what}: {exc}") from None
        if new:
            self._loaded.append(image)
        return image

    def _depth(self, request: WorldSphereRequest) -> tuple[np.ndarray | None, str, str]:
        """(pixels, file, mode): a file the engine reads itself, or the pixels of a loaded image with no file."""
        if not request.depth_image:
            if not request.depth_path:
                raise UserError("Choose the depth panorama (a file or a loaded image), or capture a panorama first")
            return None, request.depth_path, request.depth_mode
        image = self._image(request.depth_image, "", "depth panorama", non_color=True)
        path = bpy.path.abspath(image.filepath) if image.filepath else ""
        if path and Path(path).is_file() and not image.is_dirty and image.packed_file is None:
            return None, path, request.depth_mode
        stored = depthlib.METRIC if image.file_format in FLOAT_FORMATS else depthlib.RELATIVE
        try:
            mode = depthlib.resolve_mode(request.depth_mode, stored)
            return image_pixels(image)[..., 0].copy(), "", mode
        except (BadInput, ValueError) as exc:
            raise UserError(f"Depth {image.name!r}: {exc}") from None

    @staticmethod
    def _last_capture(context: bpy.types.Context, request: WorldSphereRequest) -> WorldSphereRequest:
        """Nothing chosen: the last capture's colour and depth."""
        if request.rgb_path or request.rgb_image or request.depth_path or request.depth_image:
            return request
        settings = getattr(context.scene, "diffusion3d", None)
        folder = Path(settings.last_capture) if settings is not None and settings.last_capture else None
        if folder is not None and (folder / "meta.json").is_file():
            return dataclasses.replace(request, rgb_path=str(folder / "rgb.png"), depth_path=str(folder / "depth.exr"))
        return request

    def read(self, context: bpy.types.Context, request: WorldSphereRequest) -> WorldSphereRequest:
        self._loaded = []
        request = self._last_capture(context, request)
        self._rgb = self._image(request.rgb_image, request.rgb_path, "RGB panorama", non_color=False)
        depth, depth_path, depth_mode = self._depth(request)
        width, height = self._rgb.size
        if width == 0 or height == 0:
            raise UserError(f"Could not read the RGB image {self._rgb.name!r}")
        self._sources = {"rgb": request.rgb_image or request.rgb_path, "depth": request.depth_image or request.depth_path}
        self._placement = context.scene.cursor.location.to_tuple() if request.place == "CURSOR" else (0.0, 0.0, 0.0)
        rgb = image_pixels(self._rgb)[..., :3].copy() if request.layers > 1 else None  # the layers' colours, the background's filled
        return dataclasses.replace(request, depth=depth, depth_path=depth_path, depth_mode=depth_mode, rgb_size=(width, height), rgb=rgb)

    def finish(self, context: bpy.types.Context, result: WorldSphereResult) -> dict[str, Any]:
        obj = self._sphere_object(result)
        collection = context.collection
        if result.layers:  # a layered world: the background and its layers in a collection of their own
            collection = bpy.data.collections.new(obj.name)
            context.collection.children.link(collection)
        collection.objects.link(obj)
        for child in obj.children:
            collection.objects.link(child)
        for other in context.view_layer.objects:
            other.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        self._loaded = []
        dropped = f", {result.dropped_faces:,} faces cut at depth jumps" if result.dropped_faces else ""
        if result.layers:
            clamped = f", {result.clamped:.1%} of the fill pushed behind its occluder" if result.clamped else ""
            painted = f", the background painted by {result.painted_by}" if result.painted_by else ""
            dropped = f", {len(result.layers)} foreground layer{'s' * (len(result.layers) > 1)} in front{painted}{clamped}"
        chosen = " (Auto)" if self.depth_mode == depthlib.AUTO else ""
        where = "at the capture point" if result.capture_origin else ("at the 3D cursor" if self.place == "CURSOR" else "at the origin")
        self.report(
            {"INFO"},
            f"{obj.name}: {len(result.vertices):,} vertices, {result.cols}×{result.rows} grid, "
            f"depth {result.depth_kind} read as {result.depth_mode.title()}{chosen}, "
            f"distances {result.min_distance:.3g}–{result.max_distance:.3g}{dropped}, {where} {tuple(round(c, 3) for c in obj.location)}",
        )
        return {
            "paths": {},
            "object": obj.name,
            "vertices": len(result.vertices),
            "faces": len(result.face_starts),
            "layers": [child.name for child in obj.children if child.get(LAYER_KEY)],
            "depth_mode": result.depth_mode,
            "location": list(obj.location.to_tuple()),
        }

    def _sphere_object(self, result: WorldSphereResult) -> bpy.types.Object:
        """The sphere's mesh, material and object (a layered world's background, its layers parented to it), all made or none."""
        assert self._rgb is not None
        made: list[tuple[Any, Any]] = []
        try:
            texture = self._rgb
            if result.background is not None:
                texture = packed_image(f"{self.name} Background", result.background, self._rgb.colorspace_settings.name)
                made.append((bpy.data.images, texture))
            obj = self._object(self.name, result, texture, made)
            obj.location = result.capture_origin or self._placement
            obj["diffusion3d_world"] = {
                "rgb": self._sources["rgb"],
                "depth": self._sources["depth"],
                "depth_mode": result.depth_mode,
                "grid": [result.rows, result.cols],
                "min_distance": result.min_distance,
                "median_distance": result.median_distance,
                "max_distance": result.max_distance,
                "safe_radius": result.safe_radius,
                "discontinuity": self.discontinuity,  # an export making the grid coarser cuts it again alike
                "reading": {name: getattr(self._request, name) for name in READING if name != "depth_mode"},  # splats read alike
                "layers": len(result.layers),
                "painted_by": result.painted_by,
            }
            for number, layer in enumerate(result.layers, start=1):
                name = f"{self.name} Layer {number}"
                image = packed_image(name, layer.rgba, self._rgb.colorspace_settings.name)
                made.append((bpy.data.images, image))
                child = self._object(name, layer.mesh, image, made, alpha=True)
                child.parent = obj
                child[LAYER_KEY] = number
        except BaseException:
            for store, block in reversed(made):
                store.remove(block)
            raise
        return obj

    @staticmethod
    def _object(name: str, mesh_of: Any, image: bpy.types.Image, made: list[tuple[Any, Any]], alpha: bool = False) -> bpy.types.Object:
        """A mesh object of ``mesh_of``'s arrays wearing ``image``; each block made is added to ``made``."""
        mesh = mesh_from_sphere(name, mesh_of)
        made.append((bpy.data.meshes, mesh))
        material = emission_material(name, image, alpha)
        made.append((bpy.data.materials, material))
        mesh.materials.append(material)
        obj = bpy.data.objects.new(name, mesh)
        made.append((bpy.data.objects, obj))
        obj.visible_shadow = False  # an emitting backdrop casts no shadows
        return obj

    def discard(self, context: bpy.types.Context) -> None:
        for image in self._loaded:
            if image.name in bpy.data.images and image.users == 0:
                bpy.data.images.remove(image)
        self._loaded = []


class DIFFUSION3D_OT_build_world_sphere(WorldSphereOperator, bpy.types.Operator):
    """Build a sphere whose vertices sit at each pixel's depth, textured with the panorama, centred where it was captured"""

    bl_idname = "diffusion3d.build_world_sphere"
    bl_label = "Build World Sphere"
    job_label = "Building world sphere"
    __annotations__ = declared.properties(WorldSphereRequest)


class DIFFUSION3D_OT_build_layered_world(WorldSphereOperator, bpy.types.Operator):
    """Build a world in layers: the foreground at depth edges as meshes of their own in front of a background filled
    behind them (by an LDM3D model, or geometrically), so a viewpoint off the centre sees no stretched curtains"""

    bl_idname = "diffusion3d.build_layered_world"
    bl_label = "Build Layered World"
    job_label = "Building layered world"
    __annotations__ = declared.properties(LayeredWorldRequest)

    @classmethod
    def request_type(cls) -> type:
        return LayeredWorldRequest
