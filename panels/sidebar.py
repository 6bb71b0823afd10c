"""The "Diffusion 3D" tab in the 3D viewport's sidebar: one panel per capability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from ..engine.world import ldm3d
from ..operators.capture import CAPTURE_OPTIONS
from ..operators.dst.dataset import CLASS_KEY, DST_OPTIONS, TAGS_KEY
from ..operators.dst.filter import FILTER_OPTIONS
from ..operators.dst.generate import GENERATE_EDGES_OPTIONS
from ..operators.engine_ops import last_check
from ..operators.ldm3d import GENERATE_OPTIONS
from ..operators.machinery import compat, session
from ..operators.machinery.job import current, progress_text
from ..operators.multiview import VIEWS_OPTIONS
from ..operators.stereo_rig import ANIMATE_OPTIONS, FLAT, RIG_KEY, RIG_OPTIONS
from ..operators.stereo_video import VIDEO_OPTIONS
from ..operators.upscale import UPSCALE_OPTIONS
from ..operators.viewneti import GENERATE_VIEW_OPTIONS, IMAGE_VIEWS_OPTIONS, TRAIN_OPTIONS, TRAINING_VIEWS_OPTIONS
from ..operators.world_sphere import SPHERE_OPTIONS
from .settings import pass_options


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Diffusion 3D"


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


def draw_generate(box: bpy.types.UILayout, context: bpy.types.Context, settings: Any) -> None:
    gen = settings.generate
    box.label(text="Generate RGBD (LDM3D)", icon="IMAGE_RGB")
    row = box.row(align=True)
    row.prop_search(gen, "model", context.window_manager, "diffusion3d_models", text="")
    row.operator("diffusion3d.find_models", text="", icon="FILE_REFRESH")
    col = box.column(align=True)
    col.prop(gen, "prompt", text="", icon="TEXT")
    col.prop(gen, "negative_prompt", text="", icon="REMOVE")
    col = box.column(align=True)
    col.prop(gen, "projection", text="")
    row = col.row(align=True)
    row.prop(gen, "width")
    row.prop(gen, "height")
    row = col.row(align=True)
    row.prop(gen, "steps")
    row.prop(gen, "guidance")
    row = col.row(align=True)
    row.prop(gen, "seed")
    row.operator("diffusion3d.random_seed", text="", icon="FILE_REFRESH")
    row.prop(gen, "count")
    col.prop(gen, "scheduler")
    col = box.column(align=True)
    col.prop(gen, "init")
    if gen.init == "FILES":
        col.prop(gen, "init_rgb_path", text="")
        col.prop(gen, "init_depth_path", text="")
        if not gen.init_depth_path:
            col.prop(gen, "depth_estimator")
    if gen.init != "NONE":
        col.prop(gen, "strength", slider=True)
    col = box.column(heading="Options", align=True)
    if gen.projection == ldm3d.EQUIRECTANGULAR:
        col.prop(gen, "seamless")
        col.prop(gen, "build_sphere")
    col.prop(gen, "upscale")
    if gen.upscale > 1:
        col.prop(gen, "upscaler", text="")
    col.prop(gen, "vae_tiling")
    col.prop(gen, "attention_slicing")
    col.prop(gen, "cpu_offload")
    col.prop(gen, "output_dir", text="")
    col.prop(gen, "overwrite")
    options = {k: v for k, v in GENERATE_OPTIONS.items() if k != "seamless" or gen.projection == ldm3d.EQUIRECTANGULAR}
    pass_options(box.operator("diffusion3d.generate_panorama", text="Generate", icon="PLAY"), gen, options)


def draw_upscale(box: bpy.types.UILayout, up: Any) -> None:
    box.label(text="Upscale RGBD (LDM3D-sr)", icon="FULLSCREEN_ENTER")
    col = box.column(align=True)
    col.prop(up, "source", text="")
    if up.source == "FILES":
        col.prop(up, "rgb_path", text="")
        col.prop(up, "depth_path", text="")
    row = col.row(align=True)
    row.prop_search(up, "model", bpy.context.window_manager, "diffusion3d_upscalers", text="")
    row.operator("diffusion3d.find_models", text="", icon="FILE_REFRESH")
    col.prop(up, "projection", text="")
    row = col.row(align=True)
    row.prop(up, "scale")
    row.prop(up, "seed")
    row = col.row(align=True)
    row.prop(up, "steps")
    row.prop(up, "guidance")
    col.prop(up, "noise_level")
    row = col.row(align=True)
    row.prop(up, "window")
    row.prop(up, "overlap")
    col = box.column(heading="Options", align=True)
    col.prop(up, "vae_tiling")
    if up.projection == "EQUIRECTANGULAR":
        col.prop(up, "build_sphere")
    col.prop(up, "output_dir", text="")
    col.prop(up, "overwrite")
    pass_options(box.operator("diffusion3d.upscale_panorama", text="Upscale", icon="PLAY"), up, UPSCALE_OPTIONS)


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
        col = box.column(align=True)
        col.prop(settings, "origin")
        if settings.origin == "LOCATION":
            col.prop(settings, "location", text="")
        col.prop(settings, "width")
        row = col.row(align=True)
        row.prop(settings, "samples")
        row.prop(settings, "denoise", toggle=True)
        col.prop(settings, "output_dir", text="")
        col.prop(settings, "overwrite")
        pass_options(box.operator("diffusion3d.capture_panorama", icon="RENDER_STILL"), settings, CAPTURE_OPTIONS)

        draw_generate(layout.box(), context, settings)
        draw_upscale(layout.box(), settings.upscale)

        box = layout.box()
        box.label(text="World Sphere", icon="MESH_UVSPHERE")
        col = box.column(align=True)
        if settings.last_capture and not (settings.rgb_path or settings.depth_path):
            col.label(text=f"From last capture: {Path(settings.last_capture).name}", icon="FILE_FOLDER")
        col.prop(settings, "rgb_path")
        col.prop(settings, "depth_path")
        col.prop(settings, "depth_mode")
        if settings.depth_mode != "METRIC":  # Auto reads 8/16-bit images as relative disparity
            col.prop(settings, "relative_mapping")
            if settings.relative_mapping == "OFFSET":
                col.prop(settings, "radius")
                col.prop(settings, "strength")
            else:
                col.prop(settings, "near")
                col.prop(settings, "far")
        col.prop(settings, "grid_step")
        col.prop(settings, "discontinuity")
        col.prop(settings, "place")
        pass_options(box.operator("diffusion3d.build_world_sphere", icon="SPHERE"), settings, SPHERE_OPTIONS)


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
        col = box.column(align=True)
        col.prop(st, "mode")
        col.prop(st, "place")
        col.prop(st, "interocular")
        col.prop(st, "scene_scale")
        col.prop(st, "convergence")
        if st.mode == FLAT:
            col.prop(st, "convergence_mode")
            col.prop(st, "focal_length")
        else:
            col.prop(st, "pole_merge")
        col.prop(st, "safe_radius")
        pass_options(box.operator("diffusion3d.add_stereo_rig", icon="ADD"), st, RIG_OPTIONS)

        box = layout.box()
        box.label(text="Camera Move", icon="ANIM")
        rig = context.scene.camera.parent if context.scene.camera is not None else None
        if rig is not None and rig.get(RIG_KEY) is not None:
            box.label(text=f"{rig.name}: safe radius {rig[RIG_KEY]['safe_radius']:.3g}", icon="INFO")
        col = box.column(align=True)
        col.prop(st, "move")
        if st.move != "CUSTOM":
            col.prop(st, "seconds")
            col.prop(st, "amplitude", slider=True)
            col.prop(st, "easing")
            col.prop(st, "loop")
            if st.move == "LOOK":
                col.prop(st, "look_degrees")
        pass_options(box.operator("diffusion3d.animate_rig", icon="PLAY"), st, ANIMATE_OPTIONS)

        box = layout.box()
        box.label(text="Render", icon="RENDER_ANIMATION")
        col = box.column(align=True)
        col.prop(st, "filepath", text="")
        col.prop(st, "file_format")
        col.prop(st, "projection")
        col.prop(st, "stereo_layout")
        col.prop(st, "resolution")
        if st.resolution == "CUSTOM":
            col.prop(st, "eye_width")
        col.prop(st, "quality")
        col.prop(st, "overwrite")
        if st.file_format == "MP4":
            col.prop(st, "keep_frames")
        pass_options(box.operator("diffusion3d.render_stereo_video", icon="RENDER_ANIMATION"), st, VIDEO_OPTIONS)
        still = box.operator("diffusion3d.render_stereo_video", text="Render Still (Current Frame)", icon="RENDER_STILL")
        pass_options(still, st, VIDEO_OPTIONS)
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
        col = box.column(align=True)
        col.prop(dst, "source")
        if dst.source == "COLLECTION":
            col.prop_search(dst, "collection", bpy.data, "collections", text="")

        box = layout.box()
        box.label(text="Viewpoints", icon="CAMERA_DATA")
        col = box.column(align=True)
        col.prop(dst, "viewpoints", text="", icon="TEXT")
        if not dst.viewpoints:
            col.prop(dst, "views_per_object")
            col.prop(dst, "azimuth_range")
            col.prop(dst, "polar_preset")
            if dst.polar_preset == "CUSTOM":
                for name in ("polar_mean", "polar_sd", "polar_min", "polar_max"):
                    col.prop(dst, name)
            col.prop(dst, "inplane_max")
            col.prop(dst, "distance")
            col.prop(dst, "distance_jitter")
            col.prop(dst, "seed")

        box = layout.box()
        box.label(text="Render", icon="RENDER_STILL")
        col = box.column(align=True)
        col.prop(dst, "edge_method")
        col.prop(dst, "resolution")
        if dst.edge_method != "GEOMETRIC":
            col.prop(dst, "samples")
            col.prop(dst, "denoise")
        col.prop(dst, "dataset_dir", text="")
        col.prop(dst, "shard")
        col.prop(dst, "overwrite")
        pass_options(box.operator("diffusion3d.render_edge_maps", icon="RENDER_STILL"), dst, DST_OPTIONS)

        box = layout.box()
        box.label(text="Generate (ControlNet)", icon="IMAGE_DATA")
        col = box.column(align=True)
        for name in (
            "base_model",
            "controlnet",
            "vae",
            "images_per_view",
            "seed",
            "steps",
            "guidance",
            "control_strength",
            "style",
            "prompt_model",
            "shard",
            "overwrite",
        ):
            col.prop(dst, f"gen_{name}")
        _prefixed_button(box, "diffusion3d.generate_from_edges", "PLAY", dst, "gen_", GENERATE_EDGES_OPTIONS, shared=("dataset_dir",))

        box = layout.box()
        box.label(text="K-Fold Consistency Filter", icon="FILTER")
        col = box.column(align=True)
        for name in ("fraction", "folds", "seed", "backbone", "epochs", "image_size", "shard"):
            col.prop(dst, f"kcf_{name}")
        _prefixed_button(box, "diffusion3d.filter_dataset", "FILTER", dst, "kcf_", FILTER_OPTIONS, shared=("dataset_dir",))


def _prefixed_button(
    layout: bpy.types.UILayout, idname: str, icon: str, settings: Any, prefix: str, options: dict[str, Any], shared: tuple[str, ...] = ()
) -> None:
    """A button whose options come from the panel's prefixed copies (``shared`` ones unprefixed, e.g. the data set it works on)."""
    op = layout.operator(idname, icon=icon)  # type: ignore[arg-type]  # the stubs take only literal icon names
    for name in options:
        setattr(op, name, getattr(settings, name if name in shared else prefix + name))


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
        col = box.column(align=True)
        col.prop(views, "source")
        if views.source == "FILE":
            col.prop(views, "image_path", text="")
        elif views.source == "IMAGE":
            col.prop_search(views, "image_name", bpy.data, "images", text="")
        elif views.source == "OBJECT":
            col.prop_search(views, "object_name", bpy.data, "objects", text="", icon="OBJECT_DATA")
            if not views.object_name:
                selected = len(context.selected_objects or ())
                col.label(text=f"{selected} selected object{'s' if selected != 1 else ''}", icon="RESTRICT_SELECT_OFF")
        col.prop(views, "model", text="", icon="FILE_FOLDER")
        col = box.column(align=True)
        col.prop(views, "prompt", text="", icon="TEXT")
        col.prop(views, "negative_prompt", text="", icon="REMOVE")
        col = box.column(align=True)
        row = col.row(align=True)
        row.prop(views, "steps")
        row.prop(views, "guidance")
        row = col.row(align=True)
        row.prop(views, "seed")
        row.prop(views, "count")
        col.prop(views, "elevation")
        col.prop(views, "size")
        if views.source != "TEXT":
            col.prop(views, "preparation")
        col.prop(views, "scheduler")
        col = box.column(align=True)
        col.prop(views, "reconstruct")
        col.prop(views, "output_dir", text="")
        col.prop(views, "overwrite")
        pass_options(box.operator("diffusion3d.generate_views", text="Generate Views", icon="PLAY"), views, VIEWS_OPTIONS)


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
        col = box.column(align=True)
        col.prop_search(vn, "object_name", bpy.data, "collections", text="", icon="OUTLINER_COLLECTION")
        for name in ("views", "layout", "elevation", "distance", "fov", "width", "height", "samples", "transparent"):
            col.prop(vn, name)
        if not vn.transparent:
            col.prop(vn, "background")
        if vn.layout == "HEMISPHERE":
            col.prop(vn, "seed")
        col.prop(vn, "output_dir", text="")
        col.prop(vn, "overwrite")
        pass_options(box.operator("diffusion3d.render_training_views", icon="RENDER_STILL"), vn, TRAINING_VIEWS_OPTIONS)

        box = layout.box()
        box.label(text="Train", icon="SHADERFX")
        col = box.column(align=True)
        col.prop(vn, "train_mode")
        first = ("data_dir", "view_mapper") if vn.train_mode == "SINGLE_VIEW" else ("data_dir", "parameterisation", "width", "height")
        for name in (*first, "model", "output_dir", "steps", "save_every", "seed", "resume", "overwrite"):
            col.prop(vn, f"train_{name}")
        _prefixed_button(box, "diffusion3d.train_viewneti", "PLAY", vn, "train_", TRAIN_OPTIONS)

        box = layout.box()
        box.label(text="Generate View", icon="VIEW_CAMERA")
        col = box.column(align=True)
        for name in ("checkpoint", "model", "camera_name", "animation", "object_name", "width", "height", "steps", "guidance", "seed"):
            col.prop(vn, f"gen_{name}")
        col.prop(vn, "gen_scheduler")
        col.prop(vn, "gen_output_dir", text="")
        col.prop(vn, "gen_overwrite")
        _prefixed_button(box, "diffusion3d.generate_view", "PLAY", vn, "gen_", GENERATE_VIEW_OPTIONS)

        box = layout.box()
        box.label(text="Views From One Image", icon="IMAGE_DATA")
        col = box.column(align=True)
        for name in ("image", "view_mapper", "model", "image_camera", "target", "fit_steps", "camera_name", "animation"):
            col.prop(vn, f"nvs_{name}")
        for name in ("width", "height", "steps", "guidance", "seed", "scheduler"):
            col.prop(vn, f"nvs_{name}")
        col.prop(vn, "nvs_output_dir", text="")
        col.prop(vn, "nvs_overwrite")
        _prefixed_button(box, "diffusion3d.views_from_image", "PLAY", vn, "nvs_", IMAGE_VIEWS_OPTIONS)


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
