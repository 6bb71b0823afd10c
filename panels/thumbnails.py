"""The last result's thumbnail and *Open Output Folder*, drawn under the button of the job that made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
import bpy.utils.previews

from ..operators.machinery.last_result import last

_previews: Any = None  # Blender's preview collection: one icon per result image, made once


def register() -> None:
    global _previews
    _previews = bpy.utils.previews.new()


def unregister() -> None:
    global _previews
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None


def icon(image: str) -> int:
    """The preview icon of an image file (0 when there is none to show)."""
    if _previews is None or not image or not Path(image).is_file():
        return 0
    key = f"{image}@{Path(image).stat().st_mtime_ns}"  # a file written again (Overwrite) gets a new one
    preview = _previews.get(key) or _previews.load(key, image, "IMAGE")
    return int(preview.icon_id)


def draw_last_result(layout: bpy.types.UILayout, *operators: str) -> None:
    """Under a job's button: the last result of one of ``operators`` (its thumbnail, its folder), nothing otherwise."""
    if not last.of(*operators):
        return
    icon_id = icon(last.image)
    if icon_id:
        layout.template_icon(icon_value=icon_id, scale=6.0)
    layout.operator("diffusion3d.open_output_folder", icon="FILE_FOLDER")
