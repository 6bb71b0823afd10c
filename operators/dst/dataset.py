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

import dataclasses
import re
import tempfile
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.props import StringProperty
from mathutils import Matrix

from ...engine.cameras import blender_camera_matrix
from ...engine.dst.dataset import EVERY_VISIBLE_MESH, DSTAnnotateRequest, DSTAnnotateResult, DSTObject, DSTView
from ...engine.dst.normalize import box_corners, keypoint_centres, normalization, normalize_points, to_world
from ...engine.shards import parse_shard, shard_indices
from ..machinery import compat, declared, session
from ..machinery.blender_data import evaluated, evaluated_vertices
from ..machinery.job import EngineJobOperator, ExplainedPoll, Stage, UserError, ask_first
from ..machinery.render_setup import cap_render_threads, render_result, stamp_nothing

CLASS_KEY, TAGS_KEY = "diffusion3d_class", "diffusion3d_tags"
KEYPOINT_PREFIX = "kp_"
LENS_MM, SENSOR_MM = 35.0, 32.0  # 3D-DST's camera
LIGHT_ENERGY, LIGHT_HEIGHT, LIGHT_SIZE = 30000.0, 0.5, 100.0  # their one large area light

#: Options that say where and how much, not how the data set looks: left out of dataset.json's parameters.
NOT_RECORDED = ("dataset_dir", "overwrite", "shard", "source", "collection", "object_names")


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "object"


def class_name(obj: bpy.types.Object) -> str:
    """The object's class: its ``diffusion3d_class`` property, else its name without Blender's ``.001`` suffix."""
    return str(obj.get(CLASS_KEY) or re.sub(r"\.\d{3}$", "", obj.name))


def tags(obj: bpy.types.Object) -> list[str]:
    return [t.strip() for t in str(obj.get(TAGS_KEY, "")).split(",") if t.strip()]


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


class DIFFUSION3D_OT_set_object_class(ExplainedPoll, bpy.types.Operator):
    """Give the selected objects a 3D-DST class name and tags (stored as custom properties, editable in the panel)"""

    bl_idname = "diffusion3d.set_object_class"
    bl_label = "Set Class and Tags"
    bl_options = {"REGISTER", "UNDO"}
    __annotations__ = {
        "class_name": StringProperty(name="Class", description="Empty: each object's name without its .001 suffix", default=""),
        "tags": StringProperty(name="Tags", description="Comma-separated words for the prompt (e.g. wooden, antique)", default=""),
    }

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return "" if context.selected_objects else "Nothing selected: select the objects to give a class"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Ask first when an empty Tags field would clear tags the selected objects have (a script's call does not ask)."""
        tagged = [obj.name for obj in context.selected_objects or () if tags(obj)]
        if self._tags() or not tagged:
            return self.execute(context)
        named = f"{', '.join(tagged[:3])}{', …' * (len(tagged) > 3)}"
        message = f"Tags is empty: this clears the tags of {len(tagged)} object(s) ({named})"
        return ask_first(self, context, event, "Clear their tags?", message, "Set and Clear Tags")

    def _tags(self) -> str:
        return ", ".join(t.strip() for t in self.tags.split(",") if t.strip())

    def execute(self, context: bpy.types.Context) -> set[str]:
        chosen = list(context.selected_objects or ())
        for obj in chosen:
            obj[CLASS_KEY] = self.class_name.strip() or class_name(obj)
            obj[TAGS_KEY] = self._tags()
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
        with evaluated(context, [model.source for model in self.models]) as depsgraph:
            for model in self.models:
                copy = model.make_copy(depsgraph)
                self._made += [(bpy.data.meshes, copy.data), (bpy.data.objects, copy)]
                self._copies.append(copy)
        render = scene.render
        render.engine = "CYCLES"  # type: ignore[assignment]  # the stubs list only the default engine
        render.resolution_x = render.resolution_y = self.resolution
        render.resolution_percentage, render.film_transparent = 100, True
        render.use_persistent_data = True
        stamp_nothing(render)
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
    job = "annotate_views"
    job_label = "Annotating views"
    __annotations__ = declared.properties(DSTAnnotateRequest)

    _render: ViewRender | None = None
    _scratch: Path | None = None
    _objects: list[DSTObject] = []
    _total = 0
    _out: Path | None = None
    _models: list[_CadModel] = []

    def read(self, context: bpy.types.Context, request: DSTAnnotateRequest) -> DSTAnnotateRequest:
        """The CAD models (named, a collection's, or the selection) and the data set folder."""
        chosen = self._chosen_objects(context, request)
        self._models = [_CadModel(context, obj) for obj in chosen]
        self._objects = [DSTObject(obj.name, class_name(obj), tags(obj), sorted(m.keypoints)) for obj, m in zip(chosen, self._models)]
        return dataclasses.replace(request, dataset_dir=str(session.output_folder(request.dataset_dir, "dataset")))

    def stage(self, context: bpy.types.Context, request: DSTAnnotateRequest) -> ViewRender:
        """Plan every view (sharded), prove the dataset folder is writable."""
        shard_index, shard_count = parse_shard(request.shard) if request.shard else (0, 1)
        planned: list[tuple[DSTView, int]] = []
        for index, model in enumerate(self._models):
            for k, view in enumerate(request.planned_viewpoints(index)):
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
                            camera_matrix=blender_camera_matrix(view).tolist(),
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
            raise UserError(f"Shard {request.shard} has no views (only {self._total} in all)")
        self._out = self._dataset_folder(Path(request.dataset_dir))
        self._scratch = session.new_scratch("dst")
        geometric_only = request.edge_method == "GEOMETRIC"
        self._render = ViewRender(
            self._models,
            queue,
            request.resolution,
            1 if geometric_only else request.samples,
            request.denoise and not geometric_only,
            self._scratch,
        )
        return self._render

    @staticmethod
    def _chosen_objects(context: bpy.types.Context, request: DSTAnnotateRequest) -> list[bpy.types.Object]:
        scene = context.scene
        names = [n.strip() for n in request.object_names.split(",") if n.strip()]
        if request.source == "COLLECTION":
            collection = bpy.data.collections.get(request.collection)
            if collection is None:
                raise UserError(f"No collection named {request.collection!r}")
            chosen = sorted((o for o in collection.all_objects if o.type == "MESH"), key=lambda o: o.name)
            if not chosen:
                raise UserError(f"Collection {collection.name!r} holds no mesh objects")
        elif names == [EVERY_VISIBLE_MESH]:
            chosen = sorted((o for o in scene.objects if o.type == "MESH" and o.visible_get()), key=lambda o: o.name)
            if not chosen:
                raise UserError(f"Scene {scene.name!r} has no visible mesh objects")
        elif names:
            missing = [n for n in names if scene.objects.get(n) is None]
            if missing:
                raise UserError(f"No object named {', '.join(missing)} in scene {scene.name!r}")
            chosen = sorted((scene.objects[n] for n in names), key=lambda o: o.name)
        else:
            chosen = sorted(context.selected_objects or (), key=lambda o: o.name)
            if not chosen:
                raise UserError("Nothing selected: select the mesh objects to render (or choose a collection)")
        others = [o.name for o in chosen if o.type != "MESH"]
        if others:
            raise UserError(f"Only mesh objects can be rendered as CAD models; not {', '.join(others)}")
        return chosen

    @staticmethod
    def _dataset_folder(out: Path) -> Path:
        try:
            out.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=out):
                pass
        except OSError as exc:
            raise UserError(f"Cannot write to {out}: {exc.strerror or exc}") from None
        return out

    def prepare(self, context: bpy.types.Context, request: DSTAnnotateRequest) -> DSTAnnotateRequest:
        assert self._render is not None and self._out is not None
        parameters = {name: value for name, value in declared.values(self, DSTAnnotateRequest).items() if name not in NOT_RECORDED}
        parameters.update(lens_mm=LENS_MM, sensor_mm=SENSOR_MM, light={"energy": LIGHT_ENERGY, "height": LIGHT_HEIGHT, "size": LIGHT_SIZE})
        return dataclasses.replace(
            request,
            render_dir=str(self._render.scratch),
            dataset_dir=str(self._out),
            objects=self._objects,
            views=[view for view, _ in self._render.queue],
            parameters=parameters,
            total_views=self._total,
        )

    def finish(self, context: bpy.types.Context, result: DSTAnnotateResult) -> dict[str, Any]:
        session.remove_scratch(self._scratch)
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Data set {result.dataset_dir}: {result.views} views, {result.annotations} annotations")
        return {"paths": {"dataset": result.dataset_dir}, "views": result.views, "annotations": result.annotations}

    def discard(self, context: bpy.types.Context) -> None:
        session.remove_scratch(self._scratch)
        session.remove_if_empty(self._out)
