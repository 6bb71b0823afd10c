"""Which objects an operator works on (a named object or collection, or the selection), and where they are."""

from __future__ import annotations

import bpy
import numpy as np

from .blender_data import evaluated
from .job import UserError

#: Object types that show up in a render.
RENDERABLE = {"MESH", "CURVE", "CURVES", "SURFACE", "META", "FONT", "VOLUME", "POINTCLOUD", "GPENCIL", "GREASEPENCIL"}


def chosen_objects(context: bpy.types.Context, names: str) -> list[bpy.types.Object]:
    """The named objects and collections' objects (comma-separated), else the selected ones: those that render."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    missing = [n for n in wanted if n not in bpy.data.objects and n not in bpy.data.collections]
    if missing:
        raise UserError(f"No object or collection named {', '.join(repr(n) for n in missing)}")
    if wanted:
        candidates = list(
            dict.fromkeys(
                obj for n in wanted for obj in ([bpy.data.objects[n]] if n in bpy.data.objects else bpy.data.collections[n].all_objects)
            )
        )
    else:
        candidates = list(context.selected_objects or ())
        if not candidates:
            raise UserError("Select the object to make views of (or choose an image)")
    renderable = [o for o in candidates if o.type in RENDERABLE and not o.hide_render]
    if not renderable:
        raise UserError(f"{', '.join(o.name for o in candidates[:3])}: nothing to render (no visible geometry)")
    return renderable


def world_bounds(context: bpy.types.Context, objects: list[bpy.types.Object]) -> tuple[np.ndarray, np.ndarray]:
    """(min corner, max corner) of the objects' evaluated bounding boxes in world space."""
    corners = []
    with evaluated(context, objects) as depsgraph:
        for obj in objects:
            shown = obj.evaluated_get(depsgraph)
            matrix = np.array(shown.matrix_world)
            box = np.array([tuple(c) for c in shown.bound_box], np.float64)
            corners.append(box @ matrix[:3, :3].T + matrix[:3, 3])
    points = np.concatenate(corners)
    return points.min(axis=0), points.max(axis=0)
