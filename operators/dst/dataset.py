"""``diffusion3d.render_edge_maps``: scene objects as 3D-DST "CAD models" → rendered views → an annotated data set.

Each chosen mesh is copied, normalized as 3D-DST does (bbox centre at the
origin, largest extent 1), and rendered alone in a temporary scene with their
recipe: a 35 mm lens on a 32 mm sensor, one large area light above, Cycles
with transparent film, depth and normal passes. The user's scene is never
touched. Viewpoints are sampled by the engine (seeded); the engine then turns
the render files into edge maps, masks and COCO annotations. Rendering is one
view per step: modal with progress and Esc from the UI, blocking in scripts.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from mathutils import Matrix

from ...engine import viewpoints as vp
from ...engine.cameras import blender_camera_matrix
from ...engine.choices import EDGE_METHODS
from ...engine.dst.dataset import DSTAnnotateRequest, DSTAnnotateResult, DSTObject, DSTView
from ...engine.dst.normalize import box_corners, keypoint_centres, normalization, normalize_points, to_world
from ...engine.errors import BadInput
from ...engine.shards import parse_shard, shard_indices
from ..machinery import compat, session
from ..machinery.blender_data import evaluated_vertices
from ..machinery.job import EngineJobOperator, Stage, UserError
from ..machinery.render_setup import cap_render_threads, render_result

CLASS_KEY, TAGS_KEY = "diffusion3d_class", "diffusion3d_tags"
KEYPOINT_PREFIX = "kp_"
LENS_MM, SENSOR_MM = 35.0, 32.0  # 3D-DST's camera
LIGHT_ENERGY, LIGHT_HEIGHT, LIGHT_SIZE = 30000.0, 0.5, 100.0  # their one large area light

DST_OPTIONS: dict[str, Any] = {
    "source": EnumProperty(
        name="Objects",
        items=[("SELECTED", "Selected", "The selected mesh objects"), ("COLLECTION", "Collection", "Every mesh object in a collection")],
        default="SELECTED",
    ),
    "collection": StringProperty(name="Collection", description="Collection: its mesh objects are the CAD models", default=""),
    "views_per_object": IntProperty(name="Views", description="Viewpoints sampled per object", default=8, min=0, soft_max=1000),
    "azimuth_range": EnumProperty(
        name="Azimuth",
        items=[
            ("FULL", "Full Circle", "Uniform on [0°, 360°)"),
            ("HALF", "Half Circle", "Uniform on [0°, 180°): for objects whose two sides look alike"),
        ],
        default="FULL",
    ),
    "polar_preset": EnumProperty(
        name="Elevation",
        items=[
            ("WIDE", "Around the Horizon", "3D-DST: polar angle ~ N(90°, 30°) on [0°, 180°]"),
            ("HIGH", "From Above", "3D-DST: polar angle ~ N(60°, 20°) on [0°, 180°]"),
            ("CUSTOM", "Custom", "Truncated normal with the mean, spread and range below"),
        ],
        default="WIDE",
    ),
    "polar_mean": FloatProperty(name="Polar Mean", default=90.0, min=0.0, max=180.0),
    "polar_sd": FloatProperty(name="Polar Spread", default=30.0, min=0.0, max=180.0),
    "polar_min": FloatProperty(name="Polar Min", default=0.0, min=0.0, max=180.0),
    "polar_max": FloatProperty(name="Polar Max", default=180.0, min=0.0, max=180.0),
    "inplane_max": FloatProperty(
        name="In-Plane", description="In-plane rotation uniform on ±this (0: none, as 3D-DST)", default=0.0, min=0.0, max=180.0
    ),
    "distance": FloatProperty(
        name="Distance", description="Camera distance in normalized object sizes", default=2.0, min=0.1, soft_max=20.0
    ),
    "distance_jitter": BoolProperty(
        name="Jitter Distance", description="3D-DST: truncated normal, sd 0.5 on [d − 0.5, d + 1.5]", default=False
    ),
    "seed": IntProperty(name="Seed", default=0, min=0),
    "viewpoints": StringProperty(
        name="Viewpoints",
        description="Explicit views instead of sampling: 'azimuth polar in-plane distance' per view, separated by ';' (degrees)",
        default="",
    ),
    "resolution": IntProperty(name="Resolution", description="Square render size (3D-DST: 512)", default=512, min=16, max=4096),
    "samples": IntProperty(name="Samples", description="Cycles samples for the Canny path (3D-DST: 32)", default=32, min=1),
    "denoise": BoolProperty(name="Denoise", default=True),
    "edge_method": EnumProperty(name="Edges", items=EDGE_METHODS.items(), default=EDGE_METHODS.default),
    "dataset_dir": StringProperty(
        name="Dataset", description="Dataset folder; empty: a new one under the default output folder", subtype="DIR_PATH", default=""
    ),
    "shard": StringProperty(name="Shard", description="'I/N': render only this machine's share of the views (1-based I)", default=""),
    "overwrite": BoolProperty(name="Overwrite", default=False),
}


DATASET = StringProperty(name="Dataset", description="A data set folder made by Render Edge Maps", subtype="DIR_PATH", default="")
SHARD = StringProperty(name="Shard", description="'I/N': only this machine's share (1-based I)", default="")


def dataset_path(path: str) -> str:
    if not path:
        raise UserError("Choose the data set folder (made by Render Edge Maps)")
    return bpy.path.abspath(path)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "object"


def class_name(obj: bpy.types.Object) -> str:
    """The object's class: its ``diffusion3d_class`` property, else its name without Blender's ``.001`` suffix."""
    return str(obj.get(CLASS_KEY) or re.sub(r"\.\d{3}$", "", obj.name))


def tags(obj: bpy.types.Object) -> list[str]:
    return [t.strip() for t in str(obj.get(TAGS_KEY, "")).split(",") if t.strip()]


def parse_viewpoints(text: str) -> list[vp.Viewpoint]:
    items = [part.split() for part in text.replace(",", " ").split(";") if part.strip()]
    try:
        return vp.viewpoints_from_list([[float(x) for x in item] for item in items])
    except (ValueError, BadInput) as exc:
        raise UserError(f"Viewpoints: {exc} (expected 'azimuth polar in-plane distance; …')") from None


class _CadModel:
    """One object's evaluated geometry, normalized: the copy to render and its annotations' 3D points."""

    def __init__(self, context: bpy.types.Context, obj: bpy.types.Object) -> None:
        groups = [g.name for g in obj.vertex_groups if g.name.startswith(KEYPOINT_PREFIX)]
        local, weights, faces = evaluated_vertices(context, obj, groups)
        if faces == 0:
            raise UserError(f"{obj.name} has no faces to render")
        world = to_world(local, np.array(obj.matrix_world))
        lo, hi = world.min(axis=0), world.max(axis=0)
        self.scale, self.offset = normalization(lo, hi)
        self.corners = box_corners(normalize_points(lo, self.scale, self.offset), normalize_points(hi, self.scale, self.offset))
        self.keypoints = keypoint_centres(
            normalize_points(world, self.scale, self.offset), weights, groups
        )  # each kp_* group's weighted centre
        self.source = obj

    def make_copy(self, depsgraph: Any) -> bpy.types.Object:
        mesh = bpy.data.meshes.new_from_object(self.source.evaluated_get(depsgraph))
        copy = bpy.data.objects.new(f"DST {self.source.name}", mesh)
        placement = Matrix.Diagonal((self.scale,) * 3).to_4x4() @ Matrix.Translation(self.offset.tolist())
        copy.matrix_world = placement @ self.source.matrix_world
        return copy


class DIFFUSION3D_OT_set_object_class(bpy.types.Operator):
    """Give the selected objects a 3D-DST class name and tags (stored as custom properties, editable in the panel)"""

    bl_idname = "diffusion3d.set_object_class"
    bl_label = "Set Class and Tags"
    bl_options = {"REGISTER", "UNDO"}
    __annotations__ = {
        "class_name": StringProperty(name="Class", description="Empty: each object's name without its .001 suffix", default=""),
        "tags": StringProperty(name="Tags", description="Comma-separated words for the prompt (e.g. wooden, antique)", default=""),
    }

    def execute(self, context: bpy.types.Context) -> set[str]:
        chosen = list(context.selected_objects or ())
        if not chosen:
            self.report({"ERROR"}, "Nothing selected")
            return {"CANCELLED"}
        for obj in chosen:
            obj[CLASS_KEY] = self.class_name.strip() or class_name(obj)
            obj[TAGS_KEY] = ", ".join(t.strip() for t in self.tags.split(",") if t.strip())
        self.report({"INFO"}, f"{len(chosen)} object(s): class {chosen[0][CLASS_KEY]!r}, tags {chosen[0][TAGS_KEY]!r}")
        return {"FINISHED"}


class ViewRender(Stage):
    """Every planned view, one per step, in a scene of its own: 3D-DST's camera, light and render settings, one object copy at a time.

    The user's scene is never touched: the render scene and everything made
    for it (copies, camera, light) are removed again by :meth:`undo`.
    """

    label = "Rendering views"

    def __init__(
        self, models: list[_CadModel], queue: list[tuple[DSTView, int]], resolution: int, samples: int, denoise: bool, scratch: Path
    ) -> None:
        self.models, self.queue, self.resolution, self.samples, self.denoise, self.scratch = (
            models,
            queue,
            resolution,
            samples,
            denoise,
            scratch,
        )
        self._scene: bpy.types.Scene | None = None
        self._made: list[tuple[Any, Any]] = []  # (bpy.data collection, datablock) in the order they were made
        self._copies: list[bpy.types.Object] = []

    def start(self, context: bpy.types.Context) -> int:
        scene = self._scene = bpy.data.scenes.new("Diffusion3D DST")
        self._made = [(bpy.data.scenes, scene)]
        camera_data = bpy.data.cameras.new("DST Camera")
        camera_data.lens, camera_data.sensor_width, camera_data.sensor_fit = LENS_MM, SENSOR_MM, "AUTO"
        camera_data.clip_start, camera_data.clip_end = 0.01, 1000.0
        camera = bpy.data.objects.new("DST Camera", camera_data)
        light_data = bpy.data.lights.new("DST Light", "AREA")
        light_data.energy, light_data.size = LIGHT_ENERGY, LIGHT_SIZE
        light = bpy.data.objects.new("DST Light", light_data)
        light.location = (0.0, 0.0, LIGHT_HEIGHT)
        self._made += [
            (bpy.data.cameras, camera_data),
            (bpy.data.objects, camera),
            (bpy.data.lights, light_data),
            (bpy.data.objects, light),
        ]
        for obj in (camera, light):
            scene.collection.objects.link(obj)
        scene.camera = camera
        depsgraph = context.evaluated_depsgraph_get()
        for model in self.models:
            copy = model.make_copy(depsgraph)
            self._made += [(bpy.data.meshes, copy.data), (bpy.data.objects, copy)]
            self._copies.append(copy)
        render = scene.render
        render.engine = "CYCLES"  # type: ignore[assignment]  # the stubs list only the default engine
        render.resolution_x = render.resolution_y = self.resolution
        render.resolution_percentage, render.film_transparent = 100, True
        render.use_persistent_data = True
        # No write time, render time, memory or host in the files' metadata: the same views give the same bytes on any node
        render.use_stamp_date = render.use_stamp_render_time = render.use_stamp_memory = render.use_stamp_hostname = False
        cap_render_threads(scene)
        scene.view_settings.view_transform = "Standard"
        scene.cycles.samples, scene.cycles.use_denoising = self.samples, self.denoise
        layer = scene.view_layers[0]
        layer.use_pass_z = layer.use_pass_normal = True
        return len(self.queue)

    def step(self, context: bpy.types.Context, index: int) -> None:
        """Render view ``index`` (blocking: one view per step) and save it as a multilayer EXR and a PNG."""
        scene = self._scene
        assert scene is not None and scene.camera is not None
        view, model_index = self.queue[index]
        for i, copy in enumerate(self._copies):  # only this view's object is in the scene
            linked = copy.name in scene.collection.objects
            if i == model_index and not linked:
                scene.collection.objects.link(copy)
            elif i != model_index and linked:
                scene.collection.objects.unlink(copy)
        scene.camera.matrix_world = Matrix(view.camera_matrix)
        bpy.ops.render.render(scene=scene.name)
        result = render_result()
        settings = scene.render.image_settings
        compat.set_image_format(settings, "OPEN_EXR_MULTILAYER")
        settings.color_depth, settings.exr_codec = "32", "NONE"
        result.save_render(str(self.scratch / f"{view.name}.exr"), scene=scene)
        compat.set_image_format(settings, "PNG")
        settings.color_mode, settings.color_depth = "RGBA", "8"
        result.save_render(str(self.scratch / f"{view.name}.png"), scene=scene)

    def undo(self) -> None:
        made, self._made, self._scene, self._copies = self._made, [], None, []
        for store, block in reversed(made):  # objects go before their data
            store.remove(block)


class DIFFUSION3D_OT_render_edge_maps(EngineJobOperator, bpy.types.Operator):
    """Render scene objects from sampled viewpoints into a 3D-DST data set: images, edge maps, masks, depth, COCO annotations"""

    bl_idname = "diffusion3d.render_edge_maps"
    bl_label = "Render Edge Maps"
    bl_options = {"REGISTER"}
    job_label = "Annotating views"
    __annotations__ = dict(DST_OPTIONS)

    _render: ViewRender | None = None
    _scratch: Path | None = None
    _objects: list[DSTObject] = []
    _total = 0
    _out: Path | None = None

    def stage(self, context: bpy.types.Context) -> ViewRender:
        """Check the input, plan every view (sharded), prove the dataset folder is writable."""
        chosen = self._chosen_objects(context)
        if not self.viewpoints.strip() and self.views_per_object < 1:
            raise UserError("Zero views per object: nothing to render")
        shard_index, shard_count = 0, 1
        if self.shard:
            try:
                shard_index, shard_count = parse_shard(self.shard)
            except BadInput as exc:
                raise UserError(str(exc)) from None
        models = [_CadModel(context, obj) for obj in chosen]
        self._objects = [DSTObject(obj.name, class_name(obj), tags(obj), sorted(model.keypoints)) for obj, model in zip(chosen, models)]
        planned: list[tuple[DSTView, int]] = []
        for index, model in enumerate(models):
            for k, view in enumerate(self._viewpoints(index)):
                matrix = blender_camera_matrix(view)
                planned.append(
                    (
                        DSTView(
                            name=f"{_file_stem(model.source.name)}_{k:04d}",
                            object_index=index,
                            azimuth=view.azimuth,
                            polar=view.polar,
                            inplane=view.inplane,
                            distance=view.distance,
                            lens_mm=LENS_MM,
                            sensor_mm=SENSOR_MM,
                            camera_matrix=matrix.tolist(),
                            corners=model.corners.tolist(),
                            keypoints=model.keypoints,
                            index=len(planned),
                        ),
                        index,
                    )
                )
        self._total = len(planned)
        queue = [planned[i] for i in shard_indices(self._total, shard_index, shard_count)]
        if not queue:
            raise UserError(f"Shard {self.shard} has no views (only {self._total} in all)")
        self._out = self._dataset_folder()
        self._scratch = Path(tempfile.mkdtemp(prefix="diffusion3d-dst-"))
        geometric_only = self.edge_method == "GEOMETRIC"
        self._render = ViewRender(
            models, queue, self.resolution, 1 if geometric_only else self.samples, self.denoise and not geometric_only, self._scratch
        )
        return self._render

    def _chosen_objects(self, context: bpy.types.Context) -> list[bpy.types.Object]:
        if self.source == "COLLECTION":
            collection = bpy.data.collections.get(self.collection)
            if collection is None:
                raise UserError(f"No collection named {self.collection!r}")
            chosen = [o for o in collection.all_objects if o.type == "MESH"]
            if not chosen:
                raise UserError(f"Collection {collection.name!r} holds no mesh objects")
            return sorted(chosen, key=lambda o: o.name)
        chosen = sorted(context.selected_objects or (), key=lambda o: o.name)
        if not chosen:
            raise UserError("Nothing selected: select the mesh objects to render (or choose a collection)")
        others = [o.name for o in chosen if o.type != "MESH"]
        if others:
            raise UserError(f"Only mesh objects can be rendered as CAD models; not {', '.join(others)}")
        return chosen

    def _viewpoints(self, index: int) -> list[vp.Viewpoint]:
        if self.viewpoints.strip():
            return parse_viewpoints(self.viewpoints)
        polar = {"WIDE": vp.POLAR_WIDE, "HIGH": vp.POLAR_HIGH}.get(self.polar_preset) or vp.TruncatedNormal(
            self.polar_mean, self.polar_sd, self.polar_min, self.polar_max
        )
        distribution = vp.ViewDistribution(
            distance=vp.distance_jitter(self.distance) if self.distance_jitter else self.distance,
            azimuth=vp.AZIMUTH_FULL if self.azimuth_range == "FULL" else vp.AZIMUTH_HALF,
            polar=polar,
            inplane=vp.Uniform(-self.inplane_max, self.inplane_max) if self.inplane_max > 0 else 0.0,
        )
        try:
            return vp.sample_viewpoints(self.views_per_object, distribution, self.seed + index)
        except (ValueError, BadInput) as exc:
            raise UserError(f"Viewpoint sampling: {exc}") from None

    def _dataset_folder(self) -> Path:
        out = session.output_folder(self.dataset_dir, "dataset")
        if (out / "annotations.json").exists() and not self.overwrite:
            raise UserError(f"{out} already holds a data set; turn on Overwrite or choose another folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=out):
                pass
        except OSError as exc:
            raise UserError(f"Cannot write to {out}: {exc.strerror or exc}") from None
        return out

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        assert self._render is not None and self._out is not None
        parameters = {name: getattr(self, name) for name in DST_OPTIONS if name not in ("dataset_dir", "overwrite", "shard")}
        parameters.update(lens_mm=LENS_MM, sensor_mm=SENSOR_MM, light={"energy": LIGHT_ENERGY, "height": LIGHT_HEIGHT, "size": LIGHT_SIZE})
        request = DSTAnnotateRequest(
            render_dir=str(self._render.scratch),
            dataset_dir=str(self._out),
            objects=self._objects,
            views=[view for view, _ in self._render.queue],
            edge_method=self.edge_method,
            parameters=parameters,
            total_views=self._total,
            shard=self.shard,
            overwrite=self.overwrite,
        )
        return "annotate_views", request

    def finish(self, context: bpy.types.Context, result: DSTAnnotateResult) -> None:
        session.remove_scratch(self._scratch)
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Data set {result.dataset_dir}: {result.views} views, {result.annotations} annotations")

    def discard(self, context: bpy.types.Context) -> None:
        session.remove_scratch(self._scratch)
        session.remove_if_empty(self._out)
