"""``diffusion3d.generate_views``: one object image (or the selected object) → four views with their cameras, in the scene.

The engine prepares the image, runs ImageDream (MVDream for text alone) and
writes the views, ``transforms.json`` and ``meta.json`` (and the quick mesh).
Blender's part: for a selected object, a front render with a transparent film
(a scene of its own, so the user's scene is never touched); afterwards, the
views as images and a collection of four cameras at their poses around the
object, each showing its view as a camera background, plus the quick mesh.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from mathutils import Matrix

from ..engine.choices import IMAGE_PREPARATIONS, SCHEDULERS, VIEW_SOURCES
from ..engine.multiview import cameras
from ..engine.multiview.job import MAX_COUNT, HullArrays, ViewsRequest, ViewsResult
from .machinery import session
from .machinery.blender_data import image_pixels, load_image, mesh_from_arrays, vertex_colour_material
from .machinery.isolated_scene import IsolatedScene
from .machinery.job import EngineJobOperator, Stage, UserError
from .machinery.selection import chosen_objects, world_bounds

FRONT_OVERSAMPLING = 2  # the front render is this many times the views' size; the engine cuts the object out and resizes it
FRONT_SAMPLES = 32

VIEWS_OPTIONS: dict[str, Any] = {
    "source": EnumProperty(name="From", items=VIEW_SOURCES.items(), default=VIEW_SOURCES.default),
    "image_path": StringProperty(
        name="Image File", description="The object image (best with a transparent background)", subtype="FILE_PATH"
    ),
    "image_name": StringProperty(name="Image", description="An image in this .blend"),
    "object_name": StringProperty(
        name="Object", description="An object or collection to render from the front; empty: the selected objects"
    ),
    "model": StringProperty(
        name="Model",
        description="An ImageDream (image → views) or MVDream (text → views) folder or repo id; empty: the published one for the source",
        default="",
    ),
    "prompt": StringProperty(name="Prompt", description="What the object is (optional with an image)", default=""),
    "negative_prompt": StringProperty(name="Negative", description="What the views should not show", default=""),
    "steps": IntProperty(name="Steps", description="Denoising steps", default=50, soft_min=1, soft_max=200),
    "guidance": FloatProperty(name="Guidance", description="Classifier-free guidance", default=5.0, soft_min=1.0, soft_max=20.0),
    "seed": IntProperty(name="Seed", description="Same seed and settings give the same views; set i uses seed + i", default=0, min=0),
    "count": IntProperty(name="Count", description="Object sets (four views each)", default=1, min=1, max=MAX_COUNT),
    "elevation": FloatProperty(
        name="Elevation", description="The views' camera elevation (the models were trained on 0–30°)", default=0.0, min=-89.0, max=89.0
    ),
    "size": IntProperty(
        name="Size", description="The views' size in pixels (the models were trained at 256)", default=256, min=64, max=1024, step=64
    ),
    "preparation": EnumProperty(name="Prepare", items=IMAGE_PREPARATIONS.items(), default=IMAGE_PREPARATIONS.default),
    "scheduler": EnumProperty(name="Sampler", items=SCHEDULERS.items(), default=SCHEDULERS.default),
    "reconstruct": BoolProperty(
        name="Quick Mesh", description="Carve the four silhouettes' visual hull into a coloured mesh", default=False
    ),
    "output_dir": StringProperty(
        name="Output Folder", description="Empty: a new folder under the default output folder", subtype="DIR_PATH", default=""
    ),
    "overwrite": BoolProperty(name="Overwrite", description="Replace files already in the output folder", default=False),
}


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
    bl_options = {"REGISTER"}
    job_label = "Generating views"
    __annotations__ = dict(VIEWS_OPTIONS)

    _placement: np.ndarray | None = None
    _scratch: Path | None = None
    _front: FrontRender | None = None

    def stage(self, context: bpy.types.Context) -> FrontRender | None:
        """Where the views go (around the object, else the 3D cursor); for an object, its front render."""
        if self.source != "OBJECT":
            cursor = context.scene.cursor.location
            self._placement = cameras.scene_placement((cursor.x, cursor.y, cursor.z))  # one unit of the views' world per metre
            return None
        if not hasattr(context.scene, "cycles"):
            raise UserError("Cycles is not available in this Blender (the front view renders with it)")
        objects = chosen_objects(context, self.object_name)
        low, high = world_bounds(context, objects)
        half = float(max(high[0] - low[0], high[2] - low[2])) / 2  # the front view sees X and Z
        if not half > 0:
            raise UserError(f"{objects[0].name} has no extent to render")
        self._placement = cameras.scene_placement(tuple((low + high) / 2), cameras.object_scale(half))
        self._scratch = Path(tempfile.mkdtemp(prefix="diffusion3d-views-"))
        resolution = FRONT_OVERSAMPLING * self.size
        self._front = FrontRender(objects, self._placement, self.elevation, resolution, self._scratch / "front.png")
        return self._front

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        pixels, path = None, ""
        if self.source == "FILE":
            if not self.image_path:
                raise UserError("Choose an image file of the object")
            path = bpy.path.abspath(self.image_path)
        elif self.source == "IMAGE":
            image = bpy.data.images.get(self.image_name)
            if image is None:
                raise UserError(f"No image named {self.image_name!r} in this .blend" if self.image_name else "Choose an image")
            try:
                pixels = image_pixels(image)
            except ValueError as exc:
                raise UserError(str(exc)) from None
        elif self.source == "OBJECT":
            assert self._front is not None
            path = str(self._front.png)
        request = ViewsRequest(
            out_dir=str(session.output_folder(self.output_dir, "views")),
            model=self.model,
            image=pixels,
            image_path=path,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            steps=self.steps,
            guidance=self.guidance,
            seed=self.seed,
            count=self.count,
            elevation=self.elevation,
            size=self.size,
            preparation=self.preparation,
            scheduler=self.scheduler,
            reconstruct=self.reconstruct,
            access=session.model_access(session.preferences(context)),
            overwrite=self.overwrite,
        )
        return "generate_views", request

    def finish(self, context: bpy.types.Context, result: ViewsResult) -> None:
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
        for i, (matrix, image) in enumerate(zip(cameras.scene_cameras(self._placement, self.elevation), views)):
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
