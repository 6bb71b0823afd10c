"""The "Diffusion 3D" tab in the 3D viewport's sidebar: one panel per capability, a subpanel per job.

Each subpanel draws its job's declared parameters in their declared order
(:func:`draw_params`, Blender's two-column layout), leaving out the ones that
do not apply to the current choices; its button passes the settings to the
operator; under it, the last result of that job (thumbnail, output folder).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import bpy

from ..engine import params
from ..engine.diffusion.sources import RGBD_SR
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
from ..operators.machinery.declared import request as declared_request
from ..operators.machinery.job import current, progress_text
from ..operators.machinery.readiness import model_job_blocker
from ..operators.stereo_rig import RIG_KEY
from .presets import preset_header
from .settings import GEN, KCF, NVS, TRAIN
from .thumbnails import draw_last_result


class _SidebarPanel:
    """A panel of the sidebar's tab (its ``bl_idname``: the class name, as Blender gives a panel without one)."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Diffusion 3D"


class _Section(_SidebarPanel):
    """A job's (sub)panel, or a few jobs' that share its settings: Blender's two-column layout, its presets in the header."""

    preset = ""  # its job's presets (panels/presets.py)

    def draw_header_preset(self, context: bpy.types.Context) -> None:
        if self.preset and self.layout is not None:
            preset_header(self.layout, self.preset)


def split(layout: bpy.types.UILayout | None) -> bpy.types.UILayout:
    """Blender's property layout: labels in a column on the left, values on the right, no animation dots."""
    assert layout is not None  # a panel's, while it draws
    layout.use_property_split = True
    layout.use_property_decorate = False
    return layout


def placeholder(p: params.Param) -> str:
    """What an empty text field means, from its help ("…; empty: the panorama's own prompt" → "The panorama's own prompt")."""
    found = re.search(r"[Ee]mpty: ([^;.]+)", p.help)
    return found[1][:1].upper() + found[1][1:] if found else ""


def suggestions(p: params.Param) -> str:
    """The window manager's list of found models a model field suggests (*Find Models* fills them); "" for none."""
    if RGBD_SR in p.finds:
        return "diffusion3d_upscalers"
    return "diffusion3d_models" if p.finds else ""


def model_row(layout: bpy.types.UILayout, settings: Any, name: str, p: params.Param) -> None:
    """A model field: any folder or repo id typed (the found models only suggested), a folder browsed, models found."""
    row = layout.row(align=True)
    found = suggestions(p)
    if found:
        row.prop_search(settings, name, bpy.context.window_manager, found, results_are_suggestions=True)
        row.operator("diffusion3d.find_models", text="", icon="FILE_REFRESH")
    else:
        row.prop(settings, name, placeholder=placeholder(p))
    row.operator("diffusion3d.choose_model_folder", text="", icon="FILE_FOLDER").setting = f"{settings.path_from_id()}.{name}"


def draw_params(layout: bpy.types.UILayout, settings: Any, cls: type, prefix: str = "", skip: Iterable[str] = ()) -> None:
    """A row for each declared parameter of ``cls`` shown in panels, in declared order, except ``skip`` (field names)."""
    hidden = set(skip)
    for leaf in params.leaves(cls, from_preferences):
        if not leaf.param.ui or leaf.name in hidden:
            continue
        if leaf.param.model:
            model_row(layout, settings, prefix + leaf.prop, leaf.param)
        elif leaf.kind is str and leaf.param.choices is None:
            layout.prop(settings, prefix + leaf.prop, placeholder=placeholder(leaf.param))
        else:
            layout.prop(settings, prefix + leaf.prop)


def job_button(layout: bpy.types.UILayout, idname: str, settings: Any, cls: type, prefix: str = "", result: bool = True, **how: Any) -> Any:
    """The job's button, its options taken from the section's settings; under it (``result``), the job's last result."""
    button = layout.operator(idname, **how)
    pass_settings(button, settings, cls, prefix)
    if result:
        draw_last_result(layout, idname)
    return button


def draw_job_progress(layout: bpy.types.UILayout | None) -> None:
    assert layout is not None
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


def model_job_fix(layout: bpy.types.UILayout, settings: Any, cls: type) -> None:
    """Where a model job's button is: why it cannot run now, and the buttons that fix it (nothing when it can). The
    models are the ones the job's request names (``models()``: an empty field's published default, the upscaler when
    it upscales)."""
    needed = [name for _, name, _ in declared_request(settings, cls).models()]
    blocker = next(filter(None, (model_job_blocker(bpy.context, name) for name in needed)), None)
    if blocker is None:
        return
    layout.label(text=blocker.text, icon="ERROR")
    row = layout.row(align=True)
    for fix in blocker.fixes:
        row.operator(fix.operator, text=fix.text, icon=fix.icon)


class _JobPanel(_SidebarPanel):
    """A capability's panel: the running job's progress and Cancel on top; its jobs in the subpanels below."""

    def draw(self, context: bpy.types.Context) -> None:
        draw_job_progress(self.layout)


# World ------------------------------------------------------------------------------------------------------------


class DIFFUSION3D_PT_world(_JobPanel, bpy.types.Panel):
    bl_label = "World"


class DIFFUSION3D_PT_world_capture(_Section, bpy.types.Panel):
    bl_label = "Capture RGBD Panorama"
    bl_parent_id = "DIFFUSION3D_PT_world"
    preset = "capture"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        settings = context.scene.diffusion3d
        draw_params(layout.column(), settings, CaptureRequest, skip=() if settings.origin == "LOCATION" else ("location",))
        job_button(layout, "diffusion3d.capture_panorama", settings, CaptureRequest, icon="RENDER_STILL")


class DIFFUSION3D_PT_world_generate(_Section, bpy.types.Panel):
    bl_label = "Generate RGBD (LDM3D)"
    bl_parent_id = "DIFFUSION3D_PT_world"
    preset = "generate"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        gen = context.scene.diffusion3d.generate
        skip = set() if int(gen.upscale) > 1 else {"upscaler", "upscale_steps"}
        if gen.init != "FILES":
            skip |= {"init_rgb_path", "init_depth_path", "depth_estimator"}
        elif gen.init_depth_path:
            skip.add("depth_estimator")
        if gen.init == "NONE":
            skip.add("strength")
        if gen.projection != EQUIRECTANGULAR:
            skip |= {"seamless", "build_sphere"}
        draw_params(layout.column(), gen, RGBDRequest, skip=skip)
        layout.operator("diffusion3d.random_seed", icon="FILE_REFRESH")
        model_job_fix(layout, gen, RGBDRequest)
        job_button(layout, "diffusion3d.generate_panorama", gen, RGBDRequest, text="Generate", icon="PLAY")


class DIFFUSION3D_PT_world_upscale(_Section, bpy.types.Panel):
    bl_label = "Upscale RGBD (LDM3D-sr)"
    bl_parent_id = "DIFFUSION3D_PT_world"
    bl_options = {"DEFAULT_CLOSED"}
    preset = "upscale"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        up = context.scene.diffusion3d.upscale
        skip = {"rgb", "depth"} if up.source != "FILES" else set()
        if up.projection == FLAT_IMAGE:
            skip.add("build_sphere")
        draw_params(layout.column(), up, UpscaleRequest, skip=skip)
        model_job_fix(layout, up, UpscaleRequest)
        job_button(layout, "diffusion3d.upscale_panorama", up, UpscaleRequest, text="Upscale", icon="PLAY")


class DIFFUSION3D_PT_world_sphere(_Section, bpy.types.Panel):
    bl_label = "World Sphere"
    bl_parent_id = "DIFFUSION3D_PT_world"
    preset = "world_sphere"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        settings = context.scene.diffusion3d
        col = layout.column()
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
        job_button(layout, idname, settings, WorldSphereRequest, icon="OUTLINER_COLLECTION" if layered else "SPHERE")


class DIFFUSION3D_PT_world_export(_Section, bpy.types.Panel):
    bl_label = "Export"
    bl_parent_id = "DIFFUSION3D_PT_world"
    bl_options = {"DEFAULT_CLOSED"}
    preset = "export"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        ex = context.scene.diffusion3d.export
        splats = ex.format == "SPLAT_PLY" or ex.format == "AUTO" and ex.filepath.lower().endswith(".ply")
        skip = {"object_name", *(("target_faces", "camera_path") if splats else ("splat_step",))}
        draw_params(layout.column(), ex, ExportRequest, skip=skip)
        job_button(layout, "diffusion3d.export_world", ex, ExportRequest, icon="EXPORT")


# Stereo video -----------------------------------------------------------------------------------------------------


class DIFFUSION3D_PT_stereo(_JobPanel, bpy.types.Panel):
    bl_label = "Stereo Video"


class DIFFUSION3D_PT_stereo_rig(_Section, bpy.types.Panel):
    bl_label = "Stereo Rig"
    bl_parent_id = "DIFFUSION3D_PT_stereo"
    preset = "stereo_rig"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        st = context.scene.diffusion3d.stereo
        skip = {"sphere", "name", "make_active"} | ({"pole_merge"} if st.mode == FLAT else {"convergence_mode", "focal_length"})
        draw_params(layout.column(), st, RigRequest, skip=skip)
        job_button(layout, "diffusion3d.add_stereo_rig", st, RigRequest, icon="ADD")


class DIFFUSION3D_PT_stereo_move(_Section, bpy.types.Panel):
    bl_label = "Camera Move"
    bl_parent_id = "DIFFUSION3D_PT_stereo"
    preset = "camera_move"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        st = context.scene.diffusion3d.stereo
        rig = context.scene.camera.parent if context.scene.camera is not None else None
        if rig is not None and rig.get(RIG_KEY) is not None:
            layout.label(text=f"{rig.name}: safe radius {rig[RIG_KEY]['safe_radius']:.3g}", icon="INFO")
        skip = {"rig"} | ({"seconds", "amplitude", "easing", "loop", "look_degrees"} if st.move == "CUSTOM" else set())
        if st.move != "LOOK":
            skip.add("look_degrees")
        draw_params(layout.column(), st, MoveRequest, skip=skip)
        job_button(layout, "diffusion3d.animate_rig", st, MoveRequest, icon="PLAY")


class DIFFUSION3D_PT_stereo_render(_Section, bpy.types.Panel):
    bl_label = "Render"
    bl_parent_id = "DIFFUSION3D_PT_stereo"
    preset = "stereo_video"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        st = context.scene.diffusion3d.stereo
        skip = {"rig", "still"} | ({"eye_width"} if st.resolution != "CUSTOM" else set())
        if st.file_format != "MP4":
            skip.add("keep_frames")
        draw_params(layout.column(), st, VideoRequest, skip=skip)
        job_button(layout, "diffusion3d.render_stereo_video", st, VideoRequest, result=False, icon="RENDER_ANIMATION").still = False
        still = job_button(
            layout, "diffusion3d.render_stereo_video", st, VideoRequest, text="Render Still (Current Frame)", icon="RENDER_STILL"
        )
        still.still = True


# 3D-DST -----------------------------------------------------------------------------------------------------------


class DIFFUSION3D_PT_dst(_JobPanel, bpy.types.Panel):
    bl_label = "3D-DST Data"
    bl_options = {"DEFAULT_CLOSED"}


class DIFFUSION3D_PT_dst_objects(_Section, bpy.types.Panel):
    bl_label = "CAD Models"
    bl_parent_id = "DIFFUSION3D_PT_dst"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        obj = context.active_object
        if obj is not None and obj.get(CLASS_KEY) is not None:
            col = layout.column()
            col.prop(obj, f'["{CLASS_KEY}"]', text="Class")
            col.prop(obj, f'["{TAGS_KEY}"]', text="Tags")
        layout.operator("diffusion3d.set_object_class", icon="BOOKMARKS")


class DIFFUSION3D_PT_dst_render(_Section, bpy.types.Panel):
    bl_label = "Viewpoints and Render"
    bl_parent_id = "DIFFUSION3D_PT_dst"
    preset = "dst_views"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        dst = context.scene.diffusion3d.dst
        skip = set() if dst.source == "COLLECTION" else {"collection"}
        sampling = {"views_per_object", "azimuth_range", "polar_preset", "inplane_max", "distance", "distance_jitter", "seed"}
        custom = {"polar_mean", "polar_sd", "polar_min", "polar_max"}
        skip |= sampling | custom if dst.viewpoints else custom if dst.polar_preset != "CUSTOM" else set()
        if dst.edge_method == "GEOMETRIC":
            skip |= {"samples", "denoise"}
        draw_params(layout.column(), dst, DSTAnnotateRequest, skip=skip)
        job_button(layout, "diffusion3d.render_edge_maps", dst, DSTAnnotateRequest, icon="RENDER_STILL")


class DIFFUSION3D_PT_dst_generate(_Section, bpy.types.Panel):
    bl_label = "Generate (ControlNet)"
    bl_parent_id = "DIFFUSION3D_PT_dst"
    preset = "dst_images"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        dst = context.scene.diffusion3d.dst
        draw_params(layout.column(), dst, EdgeGenerationRequest, GEN, skip=("dataset_dir",))
        job_button(layout, "diffusion3d.generate_from_edges", dst, EdgeGenerationRequest, GEN, icon="PLAY").dataset_dir = dst.dataset_dir


class DIFFUSION3D_PT_dst_filter(_Section, bpy.types.Panel):
    bl_label = "K-Fold Consistency Filter"
    bl_parent_id = "DIFFUSION3D_PT_dst"
    bl_options = {"DEFAULT_CLOSED"}
    preset = "dst_filter"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        dst = context.scene.diffusion3d.dst
        draw_params(layout.column(), dst, KCFRequest, KCF, skip=("dataset_dir",))
        job_button(layout, "diffusion3d.filter_dataset", dst, KCFRequest, KCF, icon="FILTER").dataset_dir = dst.dataset_dir


# Object views -----------------------------------------------------------------------------------------------------


class DIFFUSION3D_PT_views(_Section, bpy.types.Panel):
    """One job: its fields in the panel itself."""

    bl_label = "Object Views"
    bl_options = {"DEFAULT_CLOSED"}
    preset = "views"

    def draw(self, context: bpy.types.Context) -> None:
        draw_job_progress(self.layout)
        layout = split(self.layout)
        views = context.scene.diffusion3d.views
        source_fields = {"FILE": "image_path", "IMAGE": "image_name", "OBJECT": "object_name"}
        skip = set(source_fields.values()) - {source_fields.get(views.source, "")}
        if views.source == "TEXT":
            skip.add("preparation")
        if views.source == "OBJECT" and not views.object_name:
            selected = len(context.selected_objects or ())
            layout.label(text=f"{selected} selected object{'s' if selected != 1 else ''}", icon="RESTRICT_SELECT_OFF")
        draw_params(layout.column(), views, ViewsRequest, skip=skip)
        model_job_fix(layout, views, ViewsRequest)
        job_button(layout, "diffusion3d.generate_views", views, ViewsRequest, text="Generate Views", icon="PLAY")


# ViewNeTI ---------------------------------------------------------------------------------------------------------


class DIFFUSION3D_PT_viewneti(_JobPanel, bpy.types.Panel):
    bl_label = "ViewNeTI"
    bl_options = {"DEFAULT_CLOSED"}


class DIFFUSION3D_PT_viewneti_views(_Section, bpy.types.Panel):
    bl_label = "Training Views"
    bl_parent_id = "DIFFUSION3D_PT_viewneti"
    preset = "viewneti_views"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        vn = context.scene.diffusion3d.viewneti
        skip = ({"background"} if vn.transparent else set()) | ({"seed"} if vn.layout != "HEMISPHERE" else set())
        draw_params(layout.column(), vn, PosedSetRequest, skip=skip)
        job_button(layout, "diffusion3d.render_training_views", vn, PosedSetRequest, icon="RENDER_STILL")


class DIFFUSION3D_PT_viewneti_train(_Section, bpy.types.Panel):
    bl_label = "Train"
    bl_parent_id = "DIFFUSION3D_PT_viewneti"
    preset = "viewneti_train"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        vn = context.scene.diffusion3d.viewneti
        single = vn.train_mode == SINGLE_VIEW
        skip = {"parameterisation", "width", "height"} if single else {"view_mapper"}
        draw_params(layout.column(), vn, TrainRequest, TRAIN, skip=skip)
        if vn.train_mode == PRETRAIN:
            layout.label(text="Pre-training reads every posed set in the folder", icon="INFO")
        job_button(layout, "diffusion3d.train_viewneti", vn, TrainRequest, TRAIN, icon="PLAY")


class DIFFUSION3D_PT_viewneti_generate(_Section, bpy.types.Panel):
    bl_label = "Generate View"
    bl_parent_id = "DIFFUSION3D_PT_viewneti"
    preset = "viewneti_generate"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        vn = context.scene.diffusion3d.viewneti
        draw_params(layout.column(), vn, RenderViewRequest, GEN)
        job_button(layout, "diffusion3d.generate_view", vn, RenderViewRequest, GEN, icon="PLAY")


class DIFFUSION3D_PT_viewneti_image(_Section, bpy.types.Panel):
    bl_label = "Views From One Image"
    bl_parent_id = "DIFFUSION3D_PT_viewneti"
    bl_options = {"DEFAULT_CLOSED"}
    preset = "viewneti_image"

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        vn = context.scene.diffusion3d.viewneti
        draw_params(layout.column(), vn, ImageViewsRequest, NVS)
        job_button(layout, "diffusion3d.views_from_image", vn, ImageViewsRequest, NVS, icon="PLAY")


# Engine -----------------------------------------------------------------------------------------------------------


class DIFFUSION3D_PT_engine(_SidebarPanel, bpy.types.Panel):
    bl_label = "Engine"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = split(self.layout)
        untested = compat.untested_version()
        if untested:
            layout.label(text=untested, icon="ERROR")
        prefs = session.preferences(context)
        if prefs is not None:
            layout.prop(prefs, "engine_mode")
        layout.label(text=session.status(), icon="SETTINGS")
        if last_check.text:
            layout.label(text=last_check.text)
        if last_check.problems:  # what is wrong, and the buttons that mend it
            layout.label(text=last_check.problems, icon="ERROR")
            row = layout.row(align=True)
            row.operator("diffusion3d.setup_engine", text="Repair", icon="TOOL_SETTINGS").upgrade = True
            row.operator("diffusion3d.setup_engine", text="Remove", icon="TRASH").remove = True
        row = layout.row(align=True)
        row.operator("diffusion3d.check_engine", icon="CHECKMARK")
        row.operator("diffusion3d.release_engine", icon="X")


#: Registration order: each panel before its subpanels, in the order the sidebar shows them.
classes: tuple[type, ...] = (
    DIFFUSION3D_PT_world,
    DIFFUSION3D_PT_world_capture,
    DIFFUSION3D_PT_world_generate,
    DIFFUSION3D_PT_world_upscale,
    DIFFUSION3D_PT_world_sphere,
    DIFFUSION3D_PT_world_export,
    DIFFUSION3D_PT_stereo,
    DIFFUSION3D_PT_stereo_rig,
    DIFFUSION3D_PT_stereo_move,
    DIFFUSION3D_PT_stereo_render,
    DIFFUSION3D_PT_dst,
    DIFFUSION3D_PT_dst_objects,
    DIFFUSION3D_PT_dst_render,
    DIFFUSION3D_PT_dst_generate,
    DIFFUSION3D_PT_dst_filter,
    DIFFUSION3D_PT_views,
    DIFFUSION3D_PT_viewneti,
    DIFFUSION3D_PT_viewneti_views,
    DIFFUSION3D_PT_viewneti_train,
    DIFFUSION3D_PT_viewneti_generate,
    DIFFUSION3D_PT_viewneti_image,
    DIFFUSION3D_PT_engine,
)
