"""Seconds per stereo 360° frame of the demo world sphere: the fast defaults vs Cycles' defaults, and how it scales.

Run from the repo root with the venv that has the ``bpy`` module::

    .venv/bin/python bench/bench_stereo_video.py                       # builds the demo world (1024×512 capture, 32 spp)
    .venv/bin/python bench/bench_stereo_video.py --world out/demo/world.blend
    .venv/bin/python bench/bench_stereo_video.py --quick               # smoke run, tiny sizes

One frame of the rig's dolly (off centre, both eyes, top-bottom) is rendered
with ``render_stereo_video``'s own settings (``apply_video_settings``):

* ``fast``: the product's default for an emission-only sphere;
* ``cycles_default``: the scene's factory Cycles settings (4096 adaptive
  samples, OpenImageDenoise, 12 bounces);
* ``reference``: ``--reference-samples`` samples, no adaptive sampling, no
  denoising, the image both are compared with (PSNR over the 8-bit frame).

All three use the Standard view transform, so they differ only in sampling.
Times are Cycles' render time for the frame (render_pre → render_post), cold
(first render of that configuration) and, for ``fast``, warm (persistent data,
as in an animation). Then the fast frame time against the sphere's grid
resolution (¼, ½, full) and the output resolution. The last stdout line is
one JSON object.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "stereo_video"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", help="a .blend with a world sphere (default: build the demo world)")
    p.add_argument("--eye-width", type=int, default=2048, help="per-eye width of the headline frame (default 2048: 2048×2048 top-bottom)")
    p.add_argument("--reference-samples", type=int, default=512)
    p.add_argument("--sample-counts", default="1,2,4,8,16", help="fast-preset sample counts to report PSNR for")
    p.add_argument("--eye-widths", default="512,1024,2048,4096", help="output resolutions for the scaling series")
    p.add_argument("--repeats", type=int, default=3, help="warm fast renders per point (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny world and frames")
    return p.parse_args()


def build_demo_world(bpy: Any, width: int, samples: int) -> float:
    from diffusion3d.operators.demo import scene as demo_scene  # type: ignore[import-not-found]

    scene = bpy.context.scene
    room = demo_scene.build_demo_room(scene)
    start = time.perf_counter()
    bpy.ops.diffusion3d.capture_panorama(
        output_dir=tempfile.mkdtemp(prefix="d3d-bench-capture-"), width=width, samples=samples, origin="LOCATION", location=demo_scene.EYE
    )
    seconds = time.perf_counter() - start
    bpy.context.view_layer.layer_collection.children[room.name].exclude = True
    return seconds


class FrameTimer:
    """Cycles' time per rendered frame, from the render_pre/render_post handlers."""

    def __init__(self, bpy: Any) -> None:
        self.bpy, self.starts, self.seconds = bpy, [], []  # type: ignore[var-annotated]

    def __enter__(self) -> FrameTimer:
        self.bpy.app.handlers.render_pre.append(self._pre)
        self.bpy.app.handlers.render_post.append(self._post)
        return self

    def __exit__(self, *_: Any) -> None:
        self.bpy.app.handlers.render_pre.remove(self._pre)
        self.bpy.app.handlers.render_post.remove(self._post)

    def _pre(self, *_: Any) -> None:
        self.starts.append(time.perf_counter())

    def _post(self, *_: Any) -> None:
        self.seconds.append(time.perf_counter() - self.starts[-1])


def main() -> None:
    args = parse_args()
    bpy = _common.load_addon()
    from diffusion3d.engine.world.stereo_video import eye_size  # type: ignore[import-not-found]
    from diffusion3d.operators import stereo_rig, stereo_video  # type: ignore[import-not-found]

    if args.quick:
        args.eye_width, args.reference_samples, args.repeats = 64, 16, 1
        args.sample_counts, args.eye_widths = "1,4", "32,64"
    timings: dict[str, Any] = {}
    if args.world:
        bpy.ops.wm.open_mainfile(filepath=str(Path(args.world).resolve()))
        timings["world"] = args.world
    else:
        timings["capture_s"] = build_demo_world(bpy, 128 if args.quick else 1024, 1 if args.quick else 32)
    scene = bpy.context.scene
    scene.view_settings.view_transform = "Standard"  # every configuration shows the same colours
    spheres = stereo_rig.world_spheres(scene)
    if spheres:
        capture = dict(spheres[0]["diffusion3d_world"])
    elif scene.diffusion3d.last_capture:
        folder = Path(scene.diffusion3d.last_capture)
        capture = {"rgb": str(folder / "rgb.png"), "depth": str(folder / "depth.exr"), "depth_mode": "METRIC"}
    else:
        raise RuntimeError("no world sphere in the scene")
    out = Path(tempfile.mkdtemp(prefix="d3d-bench-video-"))

    def sphere_at(step: int) -> None:
        for obj in stereo_rig.world_spheres(scene):
            bpy.data.objects.remove(obj)
        bpy.ops.diffusion3d.build_world_sphere(
            rgb_path=capture["rgb"], depth_path=capture["depth"], depth_mode=capture["depth_mode"], grid_step=step
        )

    sphere_at(1)
    bpy.ops.diffusion3d.add_stereo_rig()
    bpy.ops.diffusion3d.animate_rig(move="DOLLY", seconds=2.0, amplitude=0.5)
    rig = bpy.context.view_layer.objects.active
    camera = stereo_rig.rig_camera(rig)
    frame = (scene.frame_start + scene.frame_end) // 4  # a quarter of the way: off centre, moving
    scene.frame_set(frame)

    def render(name: str, eye_width: int, quality: str, cycles: dict[str, Any], times: int = 1) -> tuple[list[float], np.ndarray]:
        path = out / f"{name}.png"
        eye = eye_size(eye_width, spherical=True)
        temp = stereo_video.apply_video_settings(scene, camera, eye, stereo_video.TOP_BOTTOM, stereo_video.PNG, quality)
        try:
            for key, value in cycles.items():
                temp.set(scene.cycles, key, value)
            scene.render.filepath = str(path.with_suffix(""))
            with FrameTimer(bpy) as timer:
                for _ in range(times):
                    bpy.ops.render.render(write_still=True)
        finally:
            temp.restore()
        import cv2

        return timer.seconds, cv2.imread(str(path)).astype(np.float64)

    def psnr(image: np.ndarray, reference: np.ndarray) -> float:
        mse = float(np.mean((image - reference) ** 2))
        return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)

    w = args.eye_width
    fast_s, fast_img = render("fast", w, stereo_video.FAST, {}, times=1 + args.repeats)
    default_s, default_img = render("default", w, stereo_video.SCENE, {})
    reference_s, reference_img = render(
        "reference", w, stereo_video.SCENE, {"samples": args.reference_samples, "use_adaptive_sampling": False, "use_denoising": False}
    )
    sweep = {}
    for samples in (int(s) for s in args.sample_counts.split(",")):
        seconds, image = render(f"fast{samples}", w, stereo_video.FAST, {"samples": samples}, times=2)
        sweep[str(samples)] = {"warm_s": seconds[-1], "psnr_db": psnr(image, reference_img)}
    grid = {}
    for label, step in (("quarter", 4), ("half", 2), ("full", 1)):
        sphere_at(step)
        seconds, _ = render(f"grid{step}", w, stereo_video.FAST, {}, times=1 + args.repeats)
        grid[label] = {
            "grid_step": step,
            "vertices": len(stereo_rig.world_spheres(scene)[0].data.vertices),
            "cold_s": seconds[0],
            "warm_s": float(np.median(seconds[1:])),
        }
    output = {}
    for eye_width in (int(s) for s in args.eye_widths.split(",")):
        seconds, _ = render(f"eye{eye_width}", eye_width, stereo_video.FAST, {}, times=1 + args.repeats)
        output[f"{eye_width}x{eye_width}"] = {"cold_s": seconds[0], "warm_s": float(np.median(seconds[1:]))}

    fast_psnr = psnr(fast_img, reference_img)
    speedup = default_s[0] / fast_s[0]
    _common.finish_bpy(
        {
            "benchmark": NAME,
            "frame": f"{w}x{w} top-bottom 360° stereo, demo world sphere at full grid, frame {frame} of the dolly",
            "fast": {
                "samples": stereo_video.FAST_SAMPLES,
                "cold_s": fast_s[0],
                "warm_median_s": float(np.median(fast_s[1:])),
                "psnr_db": fast_psnr,
            },
            "cycles_default": {"cold_s": default_s[0], "psnr_db": psnr(default_img, reference_img)},
            "reference": {"samples": args.reference_samples, "s": reference_s[0]},
            "speedup_fast_vs_default_cold": speedup,
            "speedup_fast_warm_vs_default": default_s[0] / float(np.median(fast_s[1:])),
            "meets_targets": {"speedup_ge_10": speedup >= 10, "psnr_ge_35_db": fast_psnr >= 35},
            "fast_samples_sweep": sweep,
            "by_sphere_grid": grid,
            "by_output_resolution": output,
            "timings": timings,
            "machine": _common.machine_info(bpy),
            "command": _common.command_line(),
        }
    )


if __name__ == "__main__":
    _common.run_main(main, NAME)
