"""Quick renders of a world sphere: what a viewer sees from a point inside it."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..machinery.render_setup import equirect_render, save_render_png


def render_equirect(scene: bpy.types.Scene, origin: tuple[float, float, float], path: Path, width: int = 1024) -> Path:
    """An equirectangular view from ``origin``, with settings for emission-only spheres.

    The sphere's material only emits its texture, so one bounce-free sample per
    pixel (a few for anti-aliasing) reproduces it; the "Standard" view transform
    shows the texture's colours unchanged (the capture was already tone-mapped).
    """
    with equirect_render(scene, origin, width, samples=4, denoise=False) as temp:
        temp.set(scene.cycles, "max_bounces", 0)
        temp.set(scene.view_settings, "view_transform", "Standard")
        temp.set(scene.view_settings, "look", "None")
        temp.set(scene.view_settings, "exposure", 0.0)
        temp.set(scene.view_settings, "gamma", 1.0)
        bpy.ops.render.render()
        save_render_png(scene, temp, path)
    return path
