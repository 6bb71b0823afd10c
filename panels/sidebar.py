"""The "Diffusion 3D" tab in the 3D viewport's sidebar: one panel per capability.

Each box draws its job's declared parameters in their declared order
(:func:`draw_params`), leaving out the ones that do not apply to the current
choices; its button passes the box's settings to the operator.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import bpy

from ..engine import params
from ..engine.dst.dataset import DSTAnnotateRequest
from ..engine.dst.filter import KCFRequest
from ..engine.dst.generate import EdgeGenerationRequest
from ..engine.multiview.job import ViewsRequest
from ..engine.viewneti.posed import PosedSetRequest
from ..engine.viewneti.render import RenderViewRequest
from ..engine.viewneti.single_image import ImageViewsRequest
from ..engine.viewneti.train import PRETRAIN, SINGLE_VIEW, TrainRequest
from ..engine.world.capture import CaptureRequest
from ..engine.world.export import ExportRequest
from ..engine.world.inpaint import InpaintOptions
from ..engine.world.ldm3d import EQUIRECTANGULAR, RGBDRequest
from ..engine.world.ldm3d import FLAT as FLAT_IMAGE
from ..engine.world.stereo_rig import FLAT, MoveRequest, RigRequest
from ..engine.world.stereo_video import VideoRequest
from ..engine.world.upscale import UpscaleRequest
from ..engine.world.world_sphere import WorldSphereRequest
from ..operators.dst.dataset import CLASS_KEY, TAGS_KEY
from ..operators.engine_ops import last_check
from ..operators.machinery import compat, session
from ..operators.machinery.declared import from_preferences, pass_settings
from ..operators.machinery.job import current, progress_text
from ..operators.machinery.readiness import model_job_blocker
from ..operators.stereo_rig import RIG_KEY
from .settings import GEN, KCF, NVS, TRAIN


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Diffusion 3D"


def draw_params(layout: bpy.types.UILayout, settings: Any, cls: type, prefix: str = "", skip: Iterable[str] = ()) -> None:
    """A row for each declared parameter of ``cls`` shown in panels, in declared order, except ``skip`` (field names)."""
    hidden = set(skip)
    for leaf in params.leaves(cls, from_preferences):
        if leaf.param.ui and leaf.name not in hidden:
            layout.prop(settings, prefix + leaf.prop)


def job_button(layout: bpy.types.UILayout, idname: str, settings: Any, cls: type, prefix: str = "", **how: Any) -> Any:
    """The job's button, its options taken from the box's settings."""
    button = layout.operator(idname, **how)
    pass_settings(button, settings, cls, prefix)
    return button


def draw_job_progress(layout: bpy.types.UILayout) -> None:
    handle = current.running()
    if handle is not None:
        fraction = handle.progress.fraction if handle.progress is not None else 0.0
        text = f"{current.label}: {progress_text(handle)}"
    elif current.in_blender_stage:
        fraction, text = current.fraction, current.label
    else:
        return
    row = layout.row(align=True)
    row.progress(factor=fraction, type="BAR", text=text)
    row.operator("diffusion3d.cancel_job", text="", icon="CANCEL")


def model_job_fix(layout: bpy.types.UILayout, model: str) -> None:
    """Where a model job's button is: why it cannot run now, and the buttons that fix it (nothing when it can)."""
    blocker = model_job_blocker(bpy.context, model)
    if blocker is None:
        return
    layout.label(text=blocker.text, icon="ERROR")
    row = layout.row(align=True)
    for fix in blocker.fixes:
        row.operator(fix.operator, text=fix.text, icon=fix.icon)


def model_picker(layout: bpy.types.UILayout, settings: Any, name: str, found: str) -> None:
    row = layout.row(align=True)
    row.prop_search(settings, name, bpy.context.window_manager, found, text="")
    row.operator("diffusion3d.find_models", text="", icon="FILE_REFRESH")


def draw_generate(box: bpy.types.UILayout, settings: Any) -> None:
    gen = settings.generate
    box.label(text="Generate RGBD (LDM3D)", icon="IMAGE_RGB")
    model_picker(box, gen, "model", "diffusion3d_models")
    skip = {"model", "upscaler"} if int(gen.upscale) > 1 else {"model", "upscaler", "upscale_steps"}
    if gen.init != "FILES":
        skip |= {"init_rgb_path", "init_depth_path", "depth_estimator"}
    elif gen.init_depth_path:
        skip.add("depth_estimator")
    if gen.init == "NONE":
        skip.add("strength")
    if gen.projection != EQUIRECTANGULAR:
        skip |= {"seamless", "build_sphere"}
    draw_params(box.column(align=True), gen, RGBDRequest, skip=skip)
    if int(gen.upscale) > 1:
        model_picker(box, gen, "upscaler", "diffusion3d_upscalers")
    box.operator("diffusion3d.random_seed", icon="FILE_REFRESH")
    model_job_fix(box, gen.model)
    job_button(box, "diffusion3d.generate_panorama", gen, RGBDRequest, text="Generate", icon="PLAY")


def draw_upscale(box: bpy.types.UILayout, up: Any) -> None:
    box.label(text="Upscale RGBD (LDM3D-sr)", icon="FULLSCREEN_ENTER")
    model_picker(box, up, "model", "diffusion3d_upscalers")
    skip = {"model"} | ({"rgb", "depth"} if up.source != "FILES" else set())
    if up.projection == FLAT_IMAGE:
        skip.add("build_sphere")
    draw_params(box.column(align=True), up, UpscaleRequest, skip=skip)
    model_job_fix(box, up.model)
    job_button(box, "diffusion3d.upscale_panorama", up, UpscaleRequest, text="Upscale", icon="PLAY")


class DIFFUSION3D_PT_world(_SidebarPanel, bpy.types.Panel):
    bl_label = "World"
    bl_idname = "DIFFUSION3D_PT_world"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None
        settings = context.scene.diffusion3d
        draw_job_progress(layout)

        box = layout.box()
        box.label(text="Capture RGBD Panorama", icon="SCENE")
        draw_params(box.column(align=True), settings, CaptureRequest, skip=() if settings.origin == "LOCATION" else ("location",))
        job_button(box, "diffusion3d.capture_panorama", settings, CaptureRequest, icon="RENDER_STILL")

        draw_generate(layout.box(), settings)
        draw_upscale(layout.box(), settings.upscale)

        box = layout.box()
        box.label(text="World Sphere", icon="MESH_UVSPHERE")
        col = box.column(align=True)
        if settings.last_capture and not (settings.rgb_path or settings.depth_path):
            col.label(text=f"From last capture: {Path(settings.last_capture).name}", icon="FILE_FOLDER")
        skip = {"rgb_image", "depth_image", "name"}
        if settings.depth_mode == "METRIC":  # Auto reads 8/16-bit images as relative disparity
            skip |= {"relative_mapping", "radius", "strength", "near", "far"}
        else:
            skip |= {"near", "far"} if settings.relative_mapping == "OFFSET" else {"radius", "strength"}
        painting = {leaf.name for leaf in params.leaves(InpaintOptions)} - {"inpaint_model"}
        if settings.layers == 1:
            skip |= {"edge_threshold", "min_region", "reach", "border", "inpaint_model"} | painting
        elif not settings.inpaint_model:
            skip |= painting
        draw_params(col, settings, WorldSphereRequest, skip=skip)
        layered = settings.layers > 1
        idname = "diffusion3d.build_layered_world" if layered else "diffusion3d.build_world_sphere"
        job_button(box, idname, settings, WorldSphereRequest, icon="OUTLINER_COLLECTION" if layered else "SPHERE")

        box = layout.box()
        box.label(text="Export", icon="EXPORT")
        ex = settings.export
        splats = ex.format == "SPLAT_PLY" or ex.format == "AUTO" and ex.filepath.lower().endswith(".ply")
        draw_params(
            box.column(align=True),
            ex,
            ExportRequest,
            skip={"object_name", *(("target_faces", "camera_path") if splats else ("splat_step",))},
        )
        job_button(box, "diffusion3d.export_world", ex, ExportRequest, icon="EXPORT")


class DIFFUSION3D_PT_stereo(_SidebarPanel, bpy.types.Panel):
    bl_label = "Stereo Video"
    bl_idname = "DIFFUSION3D_PT_stereo"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None
        st = context.scene.diffusion3d.stereo
        draw_job_progress(layout)

        box = layout.box()
        box.label(text="Stereo Rig", icon="CAMERA_STEREO")
        skip = {"sphere", "name", "make_active"} | ({"pole_merge"} if st.mode == FLAT else {"convergence_mode", "focal_length"})
        draw_params(box.column(align=True), st, RigRequest, skip=skip)
        job_button(box, "diffusion3d.add_stereo_rig", st, RigRequest, icon="ADD")

        box = layout.box()
        box.label(text="Camera Move", icon="ANIM")
        rig = context.scene.camera.parent if context.scene.camera is not None else None
        if rig is not None and rig.get(RIG_KEY) is not None:
            box.label(text=f"{rig.name}: safe radius {rig[RIG_KEY]['safe_radius']:.3g}", icon="INFO")
        skip = {"rig"} | ({"seconds", "amplitude", "easing", "loop", "look_degrees"} if st.move == "CUSTOM" else set())
        if st.move != "LOOK":
            skip.add("look_degrees")
        draw_params(box.column(align=True), st, MoveRequest, skip=skip)
        job_button(box, "diffusion3d.animate_rig", st, MoveRequest, icon="PLAY")

        box = layout.box()
        box.label(text="Render", icon="RENDER_ANIMATION")
        skip = {"rig", "still"} | ({"eye_width"} if st.resolution != "CUSTOM" else set())
        if st.file_format != "MP4":
            skip.add("keep_frames")
        draw_params(box.column(align=True), st, VideoRequest, skip=skip)
        job_button(box, "diffusion3d.render_stereo_video", st, VideoRequest, icon="RENDER_ANIMATION").still = False
        still = job_button(
            box, "diffusion3d.render_stereo_video", st, VideoRequest, text="Render Still (Current Frame)", icon="RENDER_STILL"
        )
        still.still = True


class DIFFUSION3D_PT_dst(_SidebarPanel, bpy.types.Panel):
    bl_label = "3D-DST Data"
    bl_idname = "DIFFUSION3D_PT_dst"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None
        dst = context.scene.diffusion3d.dst
        draw_job_progress(layout)

        box = layout.box()
        box.label(text="CAD Models", icon="MESH_MONKEY")
        obj = context.active_object
        if obj is not None and obj.get(CLASS_KEY) is not None:
            col = box.column(align=True)
            col.prop(obj, f'["{CLASS_KEY}"]', text="Class")
            col.prop(obj, f'["{TAGS_KEY}"]', text="Tags")
        box.operator("diffusion3d.set_object_class", icon="BOOKMARKS")

        box = layout.box()
        box.label(text="Viewpoints and Render", icon="CAMERA_DATA")
        skip = set() if dst.source == "COLLECTION" else {"collection"}
        sampling = {"views_per_object", "azimuth_range", "polar_preset", "inplane_max", "distance", "distance_jitter", "seed"}
        custom = {"polar_mean", "polar_sd", "polar_min", "polar_max"}
        skip |= sampling | custom if dst.viewpoints else custom if dst.polar_preset != "CUSTOM" else set()
        if dst.edge_method == "GEOMETRIC":
            skip |= {"samples", "denoise"}
        draw_params(box.column(align=True), dst, DSTAnnotateRequest, skip=skip)
        job_button(box, "diffusion3d.render_edge_maps", dst, DSTAnnotateRequest, icon="RENDER_STILL")

        box = layout.box()
        box.label(text="Generate (ControlNet)", icon="IMAGE_DATA")
        draw_params(box.column(align=True), dst, EdgeGenerationRequest, GEN, skip=("dataset_dir",))
        job_button(box, "diffusion3d.generate_from_edges", dst, EdgeGenerationRequest, GEN, icon="PLAY").dataset_dir = dst.dataset_dir

        box = layout.box()
        box.label(text="K-Fold Consistency Filter", icon="FILTER")
        draw_params(box.column(align=True), dst, KCFRequest, KCF, skip=("dataset_dir",))
        job_button(box, "diffusion3d.filter_dataset", dst, KCFRequest, KCF, icon="FILTER").dataset_dir = dst.dataset_dir


class DIFFUSION3D_PT_views(_SidebarPanel, bpy.types.Panel):
    bl_label = "Object Views"
    bl_idname = "DIFFUSION3D_PT_views"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None
        views = context.scene.diffusion3d.views
        draw_job_progress(layout)
        box = layout.box()
        box.label(text="Four Views (ImageDream / MVDream)", icon="VIEW_CAMERA")
        source_fields = {"FILE": "image_path", "IMAGE": "image_name", "OBJECT": "object_name"}
        skip = set(source_fields.values()) - {source_fields.get(views.source, "")}
        if views.source == "TEXT":
            skip.add("preparation")
        if views.source == "OBJECT" and not views.object_name:
            selected = len(context.selected_objects or ())
            box.label(text=f"{selected} selected object{'s' if selected != 1 else ''}", icon="RESTRICT_SELECT_OFF")
        draw_params(box.column(align=True), views, ViewsRequest, skip=skip)
        model_job_fix(box, views.model)
        job_button(box, "diffusion3d.generate_views", views, ViewsRequest, text="Generate Views", icon="PLAY")


class DIFFUSION3D_PT_viewneti(_SidebarPanel, bpy.types.Panel):
    bl_label = "ViewNeTI"
    bl_idname = "DIFFUSION3D_PT_viewneti"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        assert layout is not None
        vn = context.scene.diffusion3d.viewneti
        draw_job_progress(layout)

        box = layout.box()
        box.label(text="Training Views", icon="CAMERA_DATA")
        skip = ({"background"} if vn.transparent else set()) | ({"seed"} if vn.layout != "HEMISPHERE" else set())
        draw_params(box.column(align=True), vn, PosedSetRequest, skip=skip)
        job_button(box, "diffusion3d.render_training_views", vn, PosedSetRequest, icon="RENDER_STILL")

        box = layout.box()
        box.label(text="Train", icon="SHADERFX")
        single = vn.train_mode == SINGLE_VIEW
        skip = {"parameterisation", "width", "height"} if single else {"view_mapper"}
        draw_params(box.column(align=True), vn, TrainRequest, TRAIN, skip=skip)
        if vn.train_mode == PRETRAIN:
            box.label(text="Pre-training reads every posed set in the folder", icon="INFO")
        job_button(box, "diffusion3d.train_viewneti", vn, TrainRequest, TRAIN, icon="PLAY")

        box = layout.box()
        box.label(text="Generate View", icon="VIEW_CAMERA")
        draw_params(box.column(align=True), vn, RenderViewRequest, GEN)
        job_button(box, "diffusion3d.generate_view", vn, RenderViewRequest, GEN, icon="PLAY")

        box = layout.box()
        box.label(text="Views From One Image", icon="IMAGE_DATA")
        draw_params(box.column(align=True), vn, ImageViewsRequest, NVS)
        job_button(box, "diffusion3d.views_from_image", vn, ImageViewsRequest, NVS, icon="PLAY")


class DIFFUSION3D_PT_engine(_SidebarPanel, bpy.types.Panel):
    bl_label = "Engine"
    bl_idname = "DIFFUSION3D_PT_engine"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        untested = compat.untested_version()
        if untested:
            layout.label(text=untested, icon="ERROR")
        prefs = session.preferences(context)
        if prefs is not None:
            layout.prop(prefs, "engine_mode", text="")
        layout.label(text=session.status(), icon="SETTINGS")
        if last_check.text:
            layout.label(text=last_check.text)
        row = layout.row(align=True)
        row.operator("diffusion3d.check_engine", icon="CHECKMARK")
        row.operator("diffusion3d.release_engine", icon="X")
