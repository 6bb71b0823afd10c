"""Rendering from a temporary equirectangular camera, leaving the scene as it was."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import bpy

from ..engine import equirect
from .settings_restore import TemporarySettings


@contextmanager
def equirect_render(
    scene: bpy.types.Scene, origin: tuple[float, float, float], width: int, samples: int, denoise: bool
) -> Iterator[TemporarySettings]:
    """A panoramic Cycles camera at ``origin`` and clean render settings, all undone on exit.

    The camera has :data:`equirect.CAPTURE_ROTATION`, so its images follow the
    engine's equirectangular convention. Callers may change more settings through
    the yielded :class:`TemporarySettings`; they are restored too.
    """
    cam_data = bpy.data.cameras.new("Diffusion3D panorama")
    cam_obj = bpy.data.objects.new("Diffusion3D panorama", cam_data)
    try:
        cam_data.type = "PANO"
        cam_data.panorama_type = "EQUIRECTANGULAR"
        cam_data.clip_start, cam_data.clip_end = 1e-3, 1e6
        cam_obj.location = origin
        cam_obj.rotation_euler = equirect.CAPTURE_ROTATION
        scene.collection.objects.link(cam_obj)
        render = scene.render
        with TemporarySettings() as temp:
            temp.set(scene, "camera", cam_obj)
            temp.set(render, "engine", "CYCLES")
            for name, value in (
                ("resolution_x", width),
                ("resolution_y", width // 2),
                ("resolution_percentage", 100),
                ("pixel_aspect_x", 1.0),
                ("pixel_aspect_y", 1.0),
                ("use_border", False),
                ("use_multiview", False),
                ("use_single_layer", True),
                ("use_compositing", False),
                ("use_sequencer", False),
                ("film_transparent", False),
            ):
                temp.set(render, name, value)
            temp.set(scene.cycles, "samples", samples)
            temp.set(scene.cycles, "use_denoising", denoise)
            yield temp
    finally:
        bpy.data.objects.remove(cam_obj)
        bpy.data.cameras.remove(cam_data)


def render_result() -> bpy.types.Image:
    return next(img for img in bpy.data.images if img.type == "RENDER_RESULT")


def save_render_png(scene: bpy.types.Scene, temp: TemporarySettings, path: Path) -> None:
    """Save the last render as an 8-bit RGB PNG, colour-managed like the scene's view."""
    settings = scene.render.image_settings
    for name, value in (("file_format", "PNG"), ("color_mode", "RGB"), ("color_depth", "8"), ("compression", 15)):
        temp.set(settings, name, value)
    render_result().save_render(str(path), scene=scene)
