"""A scene of its own for rendering chosen objects, so the user's scene and its settings are never touched.

The objects are linked in, not copied (they stay where they are, with their
materials and modifiers), with the user's render-visible lights, world, colour
management and Cycles device; a perspective camera of its own; a transparent
film (a solid background is composited afterwards, by the engine).
:meth:`IsolatedScene.close` removes the scene and everything made for it, and
is safe to call twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from . import compat
from .render_setup import render_result, stamp_nothing


class IsolatedScene:
    def __init__(self, name: str) -> None:
        self.name = name
        self.scene: bpy.types.Scene | None = None
        self.camera: bpy.types.Object | None = None
        self._made: list[tuple[Any, Any]] = []

    def open(self, user: bpy.types.Scene, objects: list[bpy.types.Object], width: int, height: int, samples: int) -> bpy.types.Scene:
        scene = self.scene = bpy.data.scenes.new(self.name)
        self._made = [(bpy.data.scenes, scene)]
        for obj in [*objects, *(o for o in user.objects if o.type == "LIGHT" and not o.hide_render and o not in objects)]:
            scene.collection.objects.link(obj)
        data = bpy.data.cameras.new(self.name)
        camera = self.camera = bpy.data.objects.new(self.name, data)
        self._made += [(bpy.data.cameras, data), (bpy.data.objects, camera)]
        scene.collection.objects.link(camera)
        scene.camera = camera
        scene.world = user.world
        if user.world is None and not any(o.type == "LIGHT" for o in scene.objects):  # a light from the camera, or all is black
            light_data = bpy.data.lights.new(self.name, "SUN")
            light = bpy.data.objects.new(f"{self.name} Light", light_data)
            self._made += [(bpy.data.lights, light_data), (bpy.data.objects, light)]
            light.parent = camera  # it follows the camera from view to view
            scene.collection.objects.link(light)
        render = scene.render
        render.engine = "CYCLES"  # type: ignore[assignment]  # the stubs list only the default engine
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.film_transparent = True
        stamp_nothing(render)
        scene.cycles.samples, scene.cycles.device = samples, user.cycles.device  # the user's GPU, if they render on one
        scene.view_settings.view_transform, scene.view_settings.look = user.view_settings.view_transform, user.view_settings.look
        return scene

    def place_camera(self, camera_to_world: np.ndarray, fov_deg: float | None = None, lens_mm: float | None = None) -> None:
        assert self.camera is not None
        data = self.camera.data
        if fov_deg is not None:
            data.sensor_fit, data.angle = "VERTICAL", float(np.radians(fov_deg))
        if lens_mm is not None:
            data.lens = lens_mm
        self.camera.matrix_world = Matrix(np.asarray(camera_to_world).tolist())

    def save_render(self, path: Path) -> None:
        """The last render as a 16-bit RGBA PNG (clean alpha edges for the engine's cut-out)."""
        assert self.scene is not None
        settings = self.scene.render.image_settings
        compat.set_image_format(settings, "PNG")
        settings.color_mode, settings.color_depth = "RGBA", "16"
        render_result().save_render(str(path), scene=self.scene)

    def close(self) -> None:
        made, self._made, self.scene, self.camera = self._made, [], None, None
        for store, block in reversed(made):  # objects before their data; the linked-in objects stay in the user's scene
            store.remove(block)
