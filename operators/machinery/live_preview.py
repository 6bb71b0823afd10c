"""A job's live preview as a Blender image, shown in any open Image Editor while the job runs.

The image exists only while the job runs: it is removed when the job ends, so
a cancelled job leaves nothing behind.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

NAME = "Diffusion3D Preview"


def show(pixels: np.ndarray, screen: Any = None) -> bpy.types.Image:
    """Write an H×W×3 uint8 preview into the preview image (bulk) and point Image Editors at it."""
    height, width = pixels.shape[:2]
    image = bpy.data.images.get(NAME)
    if image is None:
        image = bpy.data.images.new(NAME, width, height)
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :3] = pixels[..., :3] / 255.0
    image.pixels.foreach_set(rgba[::-1].ravel())  # type: ignore[arg-type]  # any buffer; rows bottom-up in Blender
    image.update()
    for area in screen.areas if screen is not None else ():
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = image
            area.tag_redraw()
    return image


def clear() -> None:
    image = bpy.data.images.get(NAME)
    if image is not None:
        bpy.data.images.remove(image)
