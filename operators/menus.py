"""Entries in Blender's own menus: *Add › Camera › Stereo Rig* and *Render › Render Stereo Video*."""

from typing import Any

import bpy

from .stereo_rig import DIFFUSION3D_OT_add_stereo_rig
from .stereo_video import DIFFUSION3D_OT_render_stereo_video


def add_stereo_rig(menu: Any, context: bpy.types.Context) -> None:
    menu.layout.operator(DIFFUSION3D_OT_add_stereo_rig.bl_idname, text="Stereo Rig", icon="CAMERA_STEREO")


def render_stereo_video(menu: Any, context: bpy.types.Context) -> None:
    menu.layout.separator()
    menu.layout.operator(DIFFUSION3D_OT_render_stereo_video.bl_idname, icon="RENDER_ANIMATION")


#: Each Blender menu and the entry appended to it.
ENTRIES = (("VIEW3D_MT_camera_add", add_stereo_rig), ("TOPBAR_MT_render", render_stereo_video))


def register() -> None:
    for menu, draw in ENTRIES:
        getattr(bpy.types, menu).append(draw)


def unregister() -> None:
    for menu, draw in ENTRIES:
        getattr(bpy.types, menu).remove(draw)
