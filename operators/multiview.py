"""``diffusion3d.generate_views``: one object image (or the selected object) → four views with their cameras, in the scene.

The engine prepares the image, runs ImageDream (MVDream for text alone) and
writes the views, ``transforms.json`` and ``meta.json`` (and the quick mesh).
Blender's part: for a selected object, a front render with a transparent film
(a scene of its own, so the user's scene is never touched); afterwards, the
views as images and a collection of four cameras at their poses around the
object, each showing its view as a camera background, plus the quick mesh.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from ..engine.multiview import cameras
from ..engine.multiview.job import HullArrays, ViewsRequest, ViewsResult
from .machinery import declared, session
from .machinery.blender_data import image_pixels, load_image, mesh_from_arrays, vertex_colour_material
from .machinery.isolated_scene import IsolatedScene
from .machinery.job import EngineJobOperator, Stage, UserError
from .machinery.selection import chosen_objects, world_bounds

FRONT_OVERSAMPLING = 2  # the front render is this many times the views' size; the engine cuts the object out and resizes it
FRONT_SAMPLES = 32


class FrontRender(Stage):
    """The chosen objects from the front (−Y) with a transparent film, in a scene of their own (the user's is not touched).

    The camera is where view 1 (the input's view) will be placed, so the
    render and the generated views agree.
    """

    label = "Rendering the front view"
    render_name = "The front render"

    def __init__(self, objects: list[bpy.types.Object], placement: np.ndarray, elevation: float, resolution: int, png: Path) -> None:
        self.objects, self.placement, self.elevation, self.resolution, self.png = objects, placement, elevation, resolution, png
        self._isolated = IsolatedScene("Diffusion3D Front")

    def start(self, context: bpy.types.Context) -> int:
        scene = context.scene
        assert scene is not None
        self._isolated.open(scene, self.objects, self.resolution, self.resolution, FRONT_SAMPLES)
        self._isolated.place_camera(cameras.scene_cameras(self.placement, self.elevation)[cameras.FRONT_VIEW], fov_deg=cameras.FOV_DEG)
        scale = float(np.linalg.norm(self.placement[:3, 0]))
        data = self._isolated.camera.data  # type: ignore[union-attr]
        data.clip_start, data.clip_end = 0.01 * scale, 100.0 * scale
        return 1

    def step(self, context: bpy.types.Context, index: int) -> dict[str, Any]:
        assert self._isolated.scene is not None
        return {"scene": self._isolated.scene.name}

    def done(self, context: bpy.types.Context) -> None:
        self._isolated.save_render(self.png)

    def undo(self) -> None:
        self._isolated.close()


class DIFFUSION3D_OT_generate_views(EngineJobOperator, bpy.types.Operator):
    """Make four consistent views of an object from one image (ImageDream), with their cameras around it"""

    bl_idname = "diffusion3d.generate_views"
    bl_label = "Generate Object Views"
    bl_options = {"REGISTER", "UNDO"}  # it adds a collection, cameras, images and a mesh
    job = "generate_views"
    job_label = "Generating views"
    __annotations__ = declared.properties(ViewsRequest)

    _placement: np.ndarray | None = None
    _scratch: Path | None = None
    _front: FrontRender | None = None
    _objects: list[bpy.types.Object] = []

    def read(self, context: bpy.types.Context, request: ViewsRequest) -> ViewsRequest:
        """The image (a file, or a loaded image's pixels), or the objects to render; the output folder."""
        pixels = None
        if request.source == "IMAGE":
            image = bpy.data.images.get(request.image_name)
            if image is None:
                raise UserError(f"No image named {request.image_name!r} in this .blend" if request.image_name else "Choose an image")
            try:
                pixels = image_pixels(image)
            except ValueError as exc:
                raise UserError(str(exc)) from None
        elif request.source == "OBJECT":
            if not hasattr(context.scene, "cycles"):
                raise UserError("Cycles is not available in this Blender (the front view renders with it)")
            self._objects = chosen_objects(context, request.object_name)
        image_path = request.image_path if request.source == "FILE" else ""
        out_dir = str(session.output_folder(request.out_dir, "views"))
        return dataclasses.replace(request, image=pixels, image_path=image_path, out_dir=out_dir)

    def stage(self, context: bpy.types.Context, request: ViewsRequest) -> FrontRender | None:
        """Where the views go (around the object, else the 3D cursor); for an object, its front render."""
        if request.source != "OBJECT":
            cursor = context.scene.cursor.location
            self._placement = cameras.scene_placement((cursor.x, cursor.y, cursor.z))  # one unit of the views' world per metre
            return None
        low, high = world_bounds(context, self._objects)
        half = float(max(high[0] - low[0], high[2] - low[2])) / 2  # the front view sees X and Z
        if not half > 0:
            raise UserError(f"{self._objects[0].name} has no extent to render")
        self._placement = cameras.scene_placement(tuple((low + high) / 2), cameras.object_scale(half))
        self._scratch = session.new_scratch("views")
        resolution = FRONT_OVERSAMPLING * request.size
        self._front = FrontRender(self._objects, self._placement, request.elevation, resolution, self._scratch / "front.png")
        return self._front

    def prepare(self, context: bpy.types.Context, request: ViewsRequest) -> ViewsRequest:
        if self._front is None:
            return request
        return dataclasses.replace(request, image_path=str(self._front.png))

    def finish(self, context: bpy.types.Context, result: ViewsResult) -> dict[str, Any]:
        session.remove_scratch(self._scratch)
        assert self._placement is not None
        made: list[tuple[Any, Any]] = []
        try:
            folder = Path(result.paths[0]["meta.json"]).parent
            collection = bpy.data.collections.new(f"Views {folder.name}")
            made.append((bpy.data.collections, collection))
            views = self._view_images(result.paths[0], folder.name, made)
            self._add_cameras(collection, views, made)
            if result.hulls:
                self._add_hull(collection, result.hulls[0], folder.name, made)
            context.scene.collection.children.link(collection)
        except BaseException:
            for store, block in reversed(made):
                store.remove(block)
            raise
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        where = folder.parent if len(result.paths) > 1 else folder
        self.report({"INFO"}, f"Made {len(result.paths)} × 4 views ({result.kind}) in {result.seconds:.1f} s into {where}")
        return {"paths": [dict(sorted(paths.items())) for paths in result.paths]}

    def discard(self, context: bpy.types.Context) -> None:
        session.remove_scratch(self._scratch)

    @staticmethod
    def _view_images(paths: dict[str, str], stem: str, made: list[tuple[Any, Any]]) -> list[bpy.types.Image]:
        images = []
        for i in range(4):
            image, new = load_image(paths[f"view_{i}.png"])
            if new:
                made.append((bpy.data.images, image))
            image.name = f"{stem} view {i}"
            images.append(image)
        return images

    def _add_cameras(self, collection: bpy.types.Collection, views: list[bpy.types.Image], made: list[tuple[Any, Any]]) -> None:
        """Four cameras at the views' poses, each showing its view over the scene."""
        assert self._placement is not None
        scale = float(np.linalg.norm(self._placement[:3, 0]))
        for i, (matrix, image) in enumerate(zip(cameras.scene_cameras(self._placement, self._request.elevation), views)):  # degrees
            data = bpy.data.cameras.new(f"View {i}")
            made.append((bpy.data.cameras, data))
            data.sensor_fit, data.angle = "VERTICAL", np.radians(cameras.FOV_DEG)
            data.clip_start, data.clip_end = 0.01 * scale, 100.0 * scale
            data.show_background_images = True
            background = data.background_images.new()
            background.image, background.alpha, background.display_depth = image, 0.6, "FRONT"
            camera = bpy.data.objects.new(f"View {i}", data)
            made.append((bpy.data.objects, camera))
            camera.matrix_world = Matrix(matrix.tolist())
            camera["diffusion3d_view"] = i
            collection.objects.link(camera)

    def _add_hull(self, collection: bpy.types.Collection, hull: HullArrays, stem: str, made: list[tuple[Any, Any]]) -> None:
        """The quick mesh, placed like the cameras, coloured from the views."""
        assert self._placement is not None
        vertices = hull.vertices.astype(np.float64) @ self._placement[:3, :3].T + self._placement[:3, 3]
        faces = np.asarray(hull.faces, np.int32)
        mesh = mesh_from_arrays(f"{stem} hull", vertices, np.arange(len(faces), dtype=np.int32) * 3, faces.ravel())
        made.append((bpy.data.meshes, mesh))
        material = vertex_colour_material(f"{stem} hull", mesh, hull.colours)
        made.append((bpy.data.materials, material))
        obj = bpy.data.objects.new(f"{stem} hull", mesh)
        made.append((bpy.data.objects, obj))
        collection.objects.link(obj)
