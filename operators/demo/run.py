"""The offline demo as one run: a furnished room → RGBD capture (or LDM3D, given a model) → world sphere and its two
previews → layered world (its background painted by the model, if given) and the same two previews → world.blend and a
2 s top-bottom stereo 360° video in the layered world, through the same operators the panel runs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy

from ...engine.world.demo import DemoRequest
from ...engine.world.ldm3d import RGBDRequest
from ..machinery.declared import keywords
from . import previews
from . import scene as demo_scene

OFF_CENTRE = (0.6, -0.4, -0.3)  # the second preview's offset from the sphere's centre
LAYERED_PREVIEWS = ("preview_center_layered", "preview_offcenter_layered")  # the layered world's, beside the sphere's


def run_demo(settings: DemoRequest, generation: RGBDRequest, timed: Callable[[str, Callable[[], Any]], Any]) -> dict[str, Any]:
    """The demo into ``settings.out_dir`` (refused if it holds a demo, unless overwriting); ``timed(name, work)`` times each part."""
    out = Path(settings.out_dir).resolve()
    first = out / ("generated" if generation.model else "capture")
    layered = settings.layers > 1
    paths = {name: out / f"{name}.png" for name in ("preview_center", "preview_offcenter", *(LAYERED_PREVIEWS if layered else ()))}
    targets = [first, out / "world.blend", *paths.values(), out / "stereo360.mp4"]
    existing = [p.name for p in targets if p.exists()]
    if existing and not settings.overwrite:
        raise RuntimeError(f"{out} already holds {', '.join(existing)} (use --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    scene = bpy.context.scene
    assert scene is not None
    if generation.model:  # text → RGBD with a real LDM3D-pano model, then the sphere from its relative depth
        made = dict(output_dir=str(first), build_sphere=False, overwrite=settings.overwrite)
        timed("generate", lambda: bpy.ops.diffusion3d.generate_panorama(**{**keywords(generation), **made}))
        sphere_input = dict(rgb_path=str(first / "rgb.png"), depth_path=str(first / "depth16.png"))
    else:
        room = timed("scene", lambda: demo_scene.build_demo_room(scene))
        capture = dict(output_dir=str(first), width=settings.width, samples=settings.samples, origin="LOCATION", location=demo_scene.EYE)
        timed("capture", lambda: bpy.ops.diffusion3d.capture_panorama(**capture, overwrite=settings.overwrite))
        bpy.context.view_layer.layer_collection.children[room.name].exclude = True  # the sphere replaces the room
        sphere_input = dict(rgb_path=str(first / "rgb.png"), depth_path=str(first / "depth.exr"))
    timed("sphere", lambda: bpy.ops.diffusion3d.build_world_sphere(grid_step=settings.step, **sphere_input))
    sphere = bpy.context.view_layer.objects.active
    assert sphere is not None
    x, y, z = sphere.matrix_world.translation  # where the panorama was taken (the capture's EYE)
    centre = (x, y, z)
    offcentre = (centre[0] + OFF_CENTRE[0], centre[1] + OFF_CENTRE[1], centre[2] + OFF_CENTRE[2])
    width = min(settings.width, 1024)
    timed("preview_center", lambda: previews.render_equirect(scene, centre, paths["preview_center"], width))
    timed("preview_offcenter", lambda: previews.render_equirect(scene, offcentre, paths["preview_offcenter"], width))
    skipped = ""
    if layered:
        painter = (
            dict(inpaint_model=generation.model, steps=generation.steps, seed=generation.seed, inpaint_width=0) if generation.model else {}
        )
        build = dict(grid_step=settings.step, layers=settings.layers, **sphere_input, **painter)
        sphere, skipped = timed("layered_world", functools.partial(layered_world, sphere, build))
        if skipped:
            paths = {name: path for name, path in paths.items() if name not in LAYERED_PREVIEWS}
        else:
            timed("preview_center_layered", lambda: previews.render_equirect(scene, centre, paths["preview_center_layered"], width))
            timed(
                "preview_offcenter_layered", lambda: previews.render_equirect(scene, offcentre, paths["preview_offcenter_layered"], width)
            )
    video = dict(filepath=str(out / "stereo360.mp4"), resolution="CUSTOM", eye_width=settings.video_width, overwrite=settings.overwrite)
    timed("stereo_video", lambda: stereo_video(video))
    timed("save", lambda: bpy.ops.wm.save_as_mainfile(filepath=str(out / "world.blend"), check_existing=False))
    return {
        "source": f"ldm3d:{generation.model}" if generation.model else "capture",
        "paths": {
            first.name: str(first),
            "blend": str(out / "world.blend"),
            **{k: str(p) for k, p in paths.items()},
            "stereo_video": video["filepath"],
        },
        "sphere": {
            "object": sphere.name,
            "vertices": len(sphere.data.vertices),
            "location": list(centre),
            "layers": [child.name for child in sphere.children],
        },
        "offcenter_view": list(OFF_CENTRE),
        **({"layered_world_skipped": skipped} if skipped else {}),
    }


def layered_world(sphere: bpy.types.Object, build: dict[str, Any]) -> tuple[bpy.types.Object, str]:
    """(The layered world, "") — now the demo's world (the active object), the single ``sphere`` kept in the file,
    hidden, for comparison — or (``sphere``, why not in one line) for a panorama the layers refuse (its foreground would
    be most of it)."""
    try:
        bpy.ops.diffusion3d.build_layered_world(**build)
    except RuntimeError as exc:
        return sphere, str(exc).strip().splitlines()[-1].removeprefix("Error: ")
    sphere.hide_render = True
    sphere.hide_set(True)
    world = bpy.context.view_layer.objects.active
    assert world is not None
    return world, ""


def stereo_video(video: dict[str, Any]) -> None:
    """A 360° rig at the sphere's centre, a 2 s dolly, the video."""
    bpy.ops.diffusion3d.add_stereo_rig()
    bpy.ops.diffusion3d.animate_rig(move="DOLLY", seconds=2.0, amplitude=0.5)
    bpy.ops.diffusion3d.render_stereo_video(**video)
