"""Operators only, one module per capability (3D-DST in dst/, mirroring engine/dst/); what they share is in machinery/, the demo scene in demo/."""

import bpy

from . import menus, panel_ops
from .capture import DIFFUSION3D_OT_capture_panorama
from .drop import DIFFUSION3D_FH_panorama, DIFFUSION3D_OT_drop_panorama
from .dst.dataset import DIFFUSION3D_OT_render_edge_maps, DIFFUSION3D_OT_set_object_class
from .dst.filter import DIFFUSION3D_OT_filter_dataset
from .dst.generate import DIFFUSION3D_OT_generate_from_edges
from .engine_ops import (
    DIFFUSION3D_OT_allow_downloads,
    DIFFUSION3D_OT_cancel_job,
    DIFFUSION3D_OT_check_engine,
    DIFFUSION3D_OT_release_engine,
    DIFFUSION3D_OT_setup_engine,
    DIFFUSION3D_OT_show_preferences,
)
from .export import DIFFUSION3D_OT_export_world
from .ldm3d import DIFFUSION3D_OT_find_models, DIFFUSION3D_OT_generate_panorama, DIFFUSION3D_OT_random_seed
from .machinery import compat, session
from .machinery.render_setup import watch_render
from .multiview import DIFFUSION3D_OT_generate_views
from .stereo_rig import DIFFUSION3D_OT_add_stereo_rig, DIFFUSION3D_OT_animate_rig
from .stereo_video import DIFFUSION3D_OT_render_stereo_video
from .upscale import DIFFUSION3D_OT_upscale_panorama
from .viewneti import (
    DIFFUSION3D_OT_generate_view,
    DIFFUSION3D_OT_render_training_views,
    DIFFUSION3D_OT_train_viewneti,
    DIFFUSION3D_OT_views_from_image,
)
from .world_sphere import DIFFUSION3D_OT_build_layered_world, DIFFUSION3D_OT_build_world_sphere

classes: tuple[type[bpy.types.Operator], ...] = (
    DIFFUSION3D_OT_capture_panorama,
    DIFFUSION3D_OT_build_world_sphere,
    DIFFUSION3D_OT_build_layered_world,
    DIFFUSION3D_OT_drop_panorama,
    DIFFUSION3D_OT_generate_panorama,
    DIFFUSION3D_OT_upscale_panorama,
    DIFFUSION3D_OT_add_stereo_rig,
    DIFFUSION3D_OT_animate_rig,
    DIFFUSION3D_OT_render_stereo_video,
    DIFFUSION3D_OT_export_world,
    DIFFUSION3D_OT_render_edge_maps,
    DIFFUSION3D_OT_set_object_class,
    DIFFUSION3D_OT_generate_from_edges,
    DIFFUSION3D_OT_filter_dataset,
    DIFFUSION3D_OT_generate_views,
    DIFFUSION3D_OT_render_training_views,
    DIFFUSION3D_OT_train_viewneti,
    DIFFUSION3D_OT_views_from_image,
    DIFFUSION3D_OT_generate_view,
    DIFFUSION3D_OT_find_models,
    DIFFUSION3D_OT_random_seed,
    DIFFUSION3D_OT_check_engine,
    DIFFUSION3D_OT_setup_engine,
    DIFFUSION3D_OT_allow_downloads,
    DIFFUSION3D_OT_show_preferences,
    DIFFUSION3D_OT_release_engine,
    DIFFUSION3D_OT_cancel_job,
    *panel_ops.classes,
)
#: What Blender calls them from: panoramas dropped onto the 3D viewport (menu entries: ``menus``).
handlers: tuple[type[bpy.types.FileHandler], ...] = (DIFFUSION3D_FH_panorama,)
_registered: tuple[type[bpy.types.Operator] | type[bpy.types.FileHandler], ...] = (*classes, *handlers)


def register() -> None:
    compat.use_bundled_packages()  # the engine reads image files with Blender's OpenImageIO
    for cls in _registered:
        bpy.utils.register_class(cls)
    menus.register()


def unregister() -> None:
    session.release()  # no worker outlives the add-on
    watch_render(False)  # nor a handler of a modal render
    menus.unregister()
    for cls in reversed(_registered):
        bpy.utils.unregister_class(cls)
