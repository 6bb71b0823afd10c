"""Rendering from a temporary equirectangular camera, leaving the scene as it was; render threads for a cluster task."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy

from ...engine.imagefiles import strip_run_metadata
from ...engine.world import equirect
from . import compat
from .settings_restore import TemporarySettings

RENDER_THREADS = "DIFFUSION3D_RENDER_THREADS"  # set by a cluster task: the CPUs it was given


def cap_render_threads(scene: bpy.types.Scene) -> None:
    """A scene made for rendering renders on the CPUs a cluster task was given (else Cycles takes every core)."""
    threads = int(os.environ.get(RENDER_THREADS, "0") or 0)
    if threads > 0:
        scene.render.threads_mode, scene.render.threads = "FIXED", threads


def stamp_nothing(render: bpy.types.RenderSettings) -> None:
    """No date, time, render time, memory, host or path in what a scene made for writing files writes.

    Blender writes its stamp fields into images and videos as metadata (an MP4 gets the date and time of
    writing as its ``©day``): the same request must give the same bytes on any machine, at any second.
    """
    for name in dir(render):
        if name.startswith("use_stamp"):
            setattr(render, name, False)


class PanoramaSetup:
    """A panoramic Cycles camera at ``origin`` and clean render settings.

    :meth:`apply` makes the changes and :meth:`undo` reverts every one of them,
    so a modal render can keep them across event-loop steps. The camera has
    :data:`equirect.CAPTURE_ROTATION`, so its images follow the engine's
    equirectangular convention. Callers may change more settings through
    :attr:`temp`; they are restored too.
    """

    def __init__(self, scene: bpy.types.Scene, origin: tuple[float, float, float], width: int, samples: int, denoise: bool):
        self.scene, self.origin, self.width, self.samples, self.denoise = scene, origin, width, samples, denoise
        self.temp = TemporarySettings()
        self._camera: tuple[bpy.types.Object, bpy.types.Camera] | None = None

    def apply(self) -> TemporarySettings:
        scene, render = self.scene, self.scene.render
        cam_data = bpy.data.cameras.new("Diffusion3D panorama")
        cam_obj = bpy.data.objects.new("Diffusion3D panorama", cam_data)
        self._camera = cam_obj, cam_data
        try:
            cam_data.type = "PANO"
            cam_data.panorama_type = "EQUIRECTANGULAR"
            cam_data.clip_start, cam_data.clip_end = 1e-3, 1e6
            cam_obj.location = self.origin
            cam_obj.rotation_euler = equirect.CAPTURE_ROTATION
            scene.collection.objects.link(cam_obj)
            temp = self.temp
            temp.set(scene, "camera", cam_obj)
            temp.set(render, "engine", "CYCLES")
            for name, value in (
                ("resolution_x", self.width),
                ("resolution_y", self.width // 2),
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
            temp.set(scene.cycles, "samples", self.samples)
            temp.set(scene.cycles, "use_denoising", self.denoise)
        except BaseException:
            self.undo()
            raise
        return self.temp

    def undo(self) -> None:
        """Restore the settings and remove the camera; safe to call twice."""
        camera, self._camera = self._camera, None
        try:
            self.temp.restore()
        finally:
            if camera is not None:
                bpy.data.objects.remove(camera[0])
                bpy.data.cameras.remove(camera[1])


@contextmanager
def equirect_render(
    scene: bpy.types.Scene, origin: tuple[float, float, float], width: int, samples: int, denoise: bool
) -> Iterator[TemporarySettings]:
    """:class:`PanoramaSetup` for the length of a ``with`` block (blocking renders)."""
    setup = PanoramaSetup(scene, origin, width, samples, denoise)
    temp = setup.apply()
    try:
        yield temp
    finally:
        setup.undo()


def _render_handler(state: str) -> Any:
    def handler(*_args: Any) -> None:
        _modal_render["state"] = state  # only a flag: handlers may run on the render thread

    return handler


# A modal render job (capture, video frames) reports its end here.
_modal_render: dict[str, Any] = {"state": None}
_RENDER_HANDLERS = (("render_complete", _render_handler("COMPLETE")), ("render_cancel", _render_handler("CANCELLED")))


def watch_render(on: bool) -> None:
    _modal_render["state"] = None
    for name, handler in _RENDER_HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if handler in handlers:
            handlers.remove(handler)
        if on:
            handlers.append(handler)


#: How Blender's render statistics (the text of its ``Fra:1 Mem:… | Sample 12/128`` log) count a render's samples, 4.5 and 5.2 alike.
_SAMPLES = re.compile(r"\| Sample (\d+)/(\d+)")


@contextmanager
def render_progress(show: Callable[[float, str], None]) -> Iterator[None]:
    """While the block renders: ``show(fraction, "sample 12/128")`` from Blender's statistics (called from its render thread)."""

    def stats(text: object, *_: object) -> None:
        found = _SAMPLES.search(str(text))
        if found and int(found[2]) > 0:
            show(int(found[1]) / int(found[2]), f"sample {found[1]}/{found[2]}")

    bpy.app.handlers.render_stats.append(stats)
    try:
        yield
    finally:
        bpy.app.handlers.render_stats.remove(stats)


def render_state() -> str | None:
    """How the watched render job ended: "COMPLETE", "CANCELLED", or None while it runs."""
    return _modal_render["state"]  # type: ignore[no-any-return]


def render_result() -> bpy.types.Image:
    return next(img for img in bpy.data.images if img.type == "RENDER_RESULT")


def save_render_png(scene: bpy.types.Scene, temp: TemporarySettings, path: Path) -> None:
    """Save the last render as an 8-bit RGB PNG, colour-managed like the scene's view, without Blender's per-run metadata."""
    settings = scene.render.image_settings
    compat.set_image_format(settings, "PNG", temp.set)
    for name, value in (("color_mode", "RGB"), ("color_depth", "8"), ("compression", 15)):
        temp.set(settings, name, value)
    render_result().save_render(str(path), scene=scene)
    strip_run_metadata(path)
